"""Paired comparisons of models scored on the same test rows: bootstrap, DeLong, and multiple-comparison control.

Two models evaluated on one test set are correlated (the same hard images hurt both), so their difference must be
judged *paired*: an unpaired interval per model overstates the noise. Images of one lesion are not independent
either, so the bootstrap resamples whole lesion groups when ``groups`` is given. A notebook comparing many entries
with a reference makes many tests; `compare_to_reference` adjusts the p-values over the whole table and widens the
intervals (Bonferroni) so that they hold simultaneously.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

Metric = Callable[[np.ndarray, np.ndarray], float]
COLUMNS = ["entry", "reference", "metric", "value", "reference_value", "diff", "ci_low", "ci_high", "ci_level",
           "p_value", "p_adjusted", "significant", "test", "n_used"]


@dataclass(frozen=True)
class PairedResult:
    """metric(a) - metric(b) on the full data, its percentile interval at ``level`` and two-sided bootstrap p."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n_used: int
    level: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class DeLongResult:
    """AUCs of two scores on the same rows, their difference (a - b) with DeLong's standard error, z, p and CI."""

    auc_a: float
    auc_b: float
    diff: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _safe(metric: Metric, y: np.ndarray, p: np.ndarray) -> float:
    """The metric, or NaN where it is undefined on these rows (e.g. a resample with one class)."""
    try:
        v = float(metric(y, p))
    except ValueError:
        return math.nan
    return v if math.isfinite(v) else math.nan


def _group_sampler(n: int, groups: ArrayLike | None, rng: np.random.Generator) -> Callable[[], np.ndarray]:
    """A function drawing one resample's row indices: rows, or whole groups (all rows of each drawn group)."""
    if groups is None:
        return lambda: rng.integers(0, n, size=n)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) (one lesion id per row), got {g.shape}")
    codes = np.unique(g, return_inverse=True)[1].reshape(-1)
    order = np.argsort(codes, kind="stable")  # rows of group k are order[starts[k]:starts[k] + counts[k]]
    counts = np.bincount(codes)
    starts = np.cumsum(counts) - counts

    def draw() -> np.ndarray:
        picked = rng.integers(0, len(counts), size=len(counts))
        lengths = counts[picked]
        ends = np.cumsum(lengths)
        offsets = np.repeat(starts[picked] - (ends - lengths), lengths)
        return order[offsets + np.arange(ends[-1])]

    return draw


def paired_bootstrap(metric: Metric, y: ArrayLike, probs_a: ArrayLike, probs_b: ArrayLike,
                     groups: ArrayLike | None = None, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> PairedResult:
    """Paired (optionally lesion-clustered) bootstrap of ``metric(y, a) - metric(y, b)``.

    Each resample draws the same rows for both models, so their correlation cancels out of the difference.
    Resamples where either metric is undefined (NaN or ValueError) are skipped; ``n_used`` counts the rest.
    p is ``min(1, 2 * (k + 1) / (n + 1))`` with k the smaller count of differences <= 0 or >= 0.
    """
    y, a, b = np.asarray(y), np.asarray(probs_a), np.asarray(probs_b)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    for name, p in (("probs_a", a), ("probs_b", b)):
        if p.shape[0] != len(y):
            raise ValueError(f"{name} has {p.shape[0]} rows but y has {len(y)}")
    estimate = _safe(metric, y, a) - _safe(metric, y, b)
    draw = _group_sampler(len(y), groups, np.random.default_rng(seed))
    idxs = (draw() for _ in range(n_boot))
    dd = np.array([_safe(metric, y[i], a[i]) - _safe(metric, y[i], b[i]) for i in idxs], dtype=float)
    dd = dd[~np.isnan(dd)]
    if not dd.size:
        return PairedResult(estimate, math.nan, math.nan, math.nan, 0, level)
    low, high = np.percentile(dd, [50 * (1 - level), 50 * (1 + level)])
    k = min(int(np.sum(dd <= 0)), int(np.sum(dd >= 0)))
    p_value = min(1.0, 2 * (k + 1) / (len(dd) + 1))
    return PairedResult(estimate, float(low), float(high), p_value, len(dd), level)


def _midrank(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given the mean of their ranks (DeLong scores ties 1/2)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.concatenate([[True], xs[1:] != xs[:-1]])
    run = np.cumsum(first) - 1  # run id of each sorted element
    run_start = np.flatnonzero(first)
    run_end = np.concatenate([run_start[1:], [len(x)]])
    ranks = np.empty(len(x))
    ranks[order] = ((run_start + run_end + 1) / 2.0)[run]
    return ranks


def midrank_auc(y: ArrayLike, scores: ArrayLike) -> float:
    """ROC-AUC of 0/1 labels from midranks (ties 1/2, equal to sklearn's); ~15x faster per call, for bootstraps."""
    y, s = np.asarray(y), np.asarray(scores, dtype=float)
    pos = y == 1
    m, n = int(pos.sum()), len(y) - int(pos.sum())
    if m == 0 or n == 0:
        raise ValueError(f"AUC needs both classes in y; it has {m} positives and {n} negatives")
    return float((_midrank(s)[pos].sum() - m * (m + 1) / 2) / (m * n))



def macro_auc_present(y: ArrayLike, probs: ArrayLike) -> float:
    """Mean one-vs-rest AUC over the classes with positives and negatives in ``y`` (two classes: the AUC of the
    second), fast enough for bootstraps; NaN when none qualifies (the comparison's ``auc_macro``)."""
    y, probs = np.asarray(y), np.asarray(probs)
    cols = [1] if probs.shape[1] == 2 else range(probs.shape[1])
    aucs = [midrank_auc(y == c, probs[:, c]) for c in cols if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else float("nan")

def delong_test(y: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike, level: float = 0.95) -> DeLongResult:
    """Paired DeLong test of two correlated ROC AUCs (fast O(N log N) midrank version, Sun & Xu 2014).

    ``y`` holds 0/1 labels; ties count 1/2. The CI is the normal interval ``diff +- z * se`` at ``level``.
    Identical scores give se = 0, and then z = 0 and p = 1.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError("delong_test needs 1-D binary labels y (0/1 or bool)")
    s = [np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)]
    if any(v.shape != y.shape or not np.isfinite(v).all() for v in s):
        raise ValueError(f"scores must be finite and 1-D with {len(y)} entries each, got {[v.shape for v in s]}")
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m < 1 or n < 1:
        raise ValueError(f"delong_test needs both classes in y; it has {m} positives and {n} negatives")
    v01, v10, aucs = np.empty((2, m)), np.empty((2, n)), np.empty(2)
    for r in range(2):
        x, z = s[r][pos], s[r][neg]
        tz = _midrank(np.concatenate([x, z]))
        aucs[r] = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v01[r] = (tz[:m] - _midrank(x)) / n  # per positive: fraction of negatives it outranks
        v10[r] = 1.0 - (tz[m:] - _midrank(z)) / m  # per negative: fraction of positives above it
    cov = np.broadcast_to((np.cov(v01) / m if m > 1 else 0.0) + (np.cov(v10) / n if n > 1 else 0.0), (2, 2))
    se = math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0))
    diff = float(aucs[0] - aucs[1])
    zval = diff / se if se > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(zval))) if se > 0 else 1.0
    half = float(stats.norm.ppf(0.5 + level / 2)) * se
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, se, zval, p_value, diff - half, diff + half)


def adjust_pvalues(p: ArrayLike, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values ("holm", "bonferroni", "fdr_bh", "none"); NaNs are kept and not counted."""
    if method not in ("holm", "bonferroni", "fdr_bh", "none"):
        raise ValueError(f"unknown correction {method!r}; use 'holm', 'bonferroni', 'fdr_bh' or 'none'")
    out = np.array(p, dtype=float)  # a copy
    flat = out.reshape(-1)
    keep = ~np.isnan(flat)
    q, m = flat[keep], int(keep.sum())
    if method == "none" or m == 0:
        return out
    order = np.argsort(q, kind="mergesort")
    rank = np.arange(1, m + 1)
    if method == "bonferroni":
        adj = q * m
    elif method == "holm":
        adj = np.empty(m)
        adj[order] = np.maximum.accumulate((m - rank + 1) * q[order])
    else:  # fdr_bh
        adj = np.empty(m)
        adj[order] = np.minimum.accumulate((q[order] * m / rank)[::-1])[::-1]
    flat[keep] = np.minimum(adj, 1.0)
    return out


def _pairs(probs: Mapping[str, np.ndarray], reference: str | Mapping[str, str]) -> list[tuple[str, str]]:
    if isinstance(reference, str):
        if reference not in probs:
            raise ValueError(f"reference {reference!r} is not an entry of probs ({list(probs)})")
        return [(e, reference) for e in probs if e != reference]
    unknown = sorted({*reference, *reference.values()} - set(probs))
    if unknown:
        raise ValueError(f"reference names entries {unknown} that probs lacks ({list(probs)})")
    return [(e, reference[e]) for e in probs if e in reference and reference[e] != e]


def compare_to_reference(y: ArrayLike, probs: Mapping[str, np.ndarray], reference: str | Mapping[str, str],
                         metrics: Mapping[str, Metric], groups: ArrayLike | None = None, n_boot: int = 1000,
                         seed: int = 0, level: float = 0.95, correction: str = "holm",
                         auc_scores: Callable[[np.ndarray], np.ndarray] | None = None,
                         auc_metric: str | None = None, auc_y: ArrayLike | None = None) -> pd.DataFrame:
    """One row per (entry, metric): the paired difference from its reference, interval, raw and adjusted p.

    ``reference`` is one entry every other is compared with, or ``{entry: its reference}`` (entries absent or mapped
    to themselves are not compared). Intervals come from `paired_bootstrap` (same ``seed`` for every comparison);
    with ``correction != "none"`` they are Bonferroni-simultaneous over the m rows (level ``1 - (1 - level) / m``,
    column ``ci_level``), and ``p_adjusted`` applies ``correction`` over all rows. For the metric named
    ``auc_metric``, p comes from `delong_test` on ``auc_scores(probs)`` against the binary labels ``auc_y``
    (default ``y``, which must then be 0/1), e.g. ``auc_scores=lambda p: p[:, MEL]``, ``auc_y=(y == MEL)``, unless
    ``groups`` puts several rows in one group: DeLong's variance assumes independent rows, so those rows keep the
    clustered bootstrap's p. ``significant`` is ``p_adjusted < 1 - level``.
    """
    y = np.asarray(y)
    for name, p in probs.items():
        if np.shape(p)[0] != len(y):
            raise ValueError(f"entry {name!r} has {np.shape(p)[0]} rows of probabilities but y has {len(y)}")
    if (auc_scores is None) != (auc_metric is None) or (auc_metric is not None and auc_metric not in metrics):
        raise ValueError("auc_scores and auc_metric go together, and auc_metric must name one of metrics")
    y01 = np.asarray(y if auc_y is None else auc_y).astype(int) if auc_scores is not None else None
    clustered = groups is not None and len(np.unique(np.asarray(groups))) < len(y)
    pairs = _pairs(probs, reference)
    m = len(pairs) * len(metrics)
    ci_level = level if correction == "none" or m == 0 else 1 - (1 - level) / m
    rows = []
    for entry, ref in pairs:
        a, b = np.asarray(probs[entry]), np.asarray(probs[ref])
        for mname, fn in metrics.items():
            res = paired_bootstrap(fn, y, a, b, groups=groups, n_boot=n_boot, seed=seed, level=ci_level)
            p_value, test = res.p_value, "paired bootstrap"
            if mname == auc_metric and not clustered:  # DeLong assumes independent rows: one per group
                try:
                    p_value, test = delong_test(y01, auc_scores(a), auc_scores(b)).p_value, "DeLong"
                except ValueError:  # one class only among the rows: no AUC, no test
                    p_value, test = float("nan"), "DeLong"
            rows.append({"entry": entry, "reference": ref, "metric": mname, "value": _safe(fn, y, a),
                         "reference_value": _safe(fn, y, b), "diff": res.estimate, "ci_low": res.ci_low,
                         "ci_high": res.ci_high, "ci_level": ci_level, "p_value": p_value, "test": test,
                         "n_used": res.n_used})
    table = pd.DataFrame(rows, columns=[c for c in COLUMNS if c not in ("p_adjusted", "significant")])
    table["p_adjusted"] = adjust_pvalues(table["p_value"].to_numpy(dtype=float), correction)
    table["significant"] = (table["p_adjusted"] < 1 - level).to_numpy(dtype=bool)
    return table[COLUMNS]


__all__ = ["DeLongResult", "PairedResult", "adjust_pvalues", "compare_to_reference", "delong_test", "macro_auc_present",
           "midrank_auc", "paired_bootstrap"]
