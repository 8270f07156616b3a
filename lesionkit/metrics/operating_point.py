"""Sensitivity/specificity at a threshold or at a target sensitivity, and the bootstrap "Going Smaller" reports.

"Going Smaller" (iToBoS, test_isic_metrics.py) reports "sensitivity at a predefined threshold of 95 %": among the ROC
points with TPR >= 0.95, the one with the best specificity, averaged over 1000 bootstrap resamples. Its bootstrap has
no seed, so its figures cannot be reproduced exactly; `bootstrap_operating_point` takes a seed and is deterministic.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Literal

import numpy as np
import sklearn.metrics as skm
from numpy.typing import ArrayLike
from scipy import stats

from lesionkit.metrics._validate import as_binary, as_scores


@dataclass(frozen=True)
class OperatingPoint:
    """One point of the ROC curve: decide positive when ``score >= threshold``."""

    threshold: float
    sensitivity: float
    specificity: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def sens_spec_at_threshold(
    y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5, inclusive: bool = True
) -> tuple[float, float]:
    """Sensitivity and specificity of ``score >= threshold`` (``inclusive=False``: ``score > threshold``).

    ``>=`` is what the papers do (ARL-CNN, "Going Smaller"); the ISIC scorer's per-category stats use ``> 0.5``.
    A rate with no samples to count is NaN (the ISIC scorer scores it 1.0).
    """
    y = as_binary(y_true)
    s = as_scores(scores, len(y))
    pred = s >= threshold if inclusive else s > threshold
    pos, neg = y == 1, y == 0
    sens = float(np.mean(pred[pos])) if pos.any() else float("nan")
    spec = float(np.mean(~pred[neg])) if neg.any() else float("nan")
    return sens, spec


def operating_point_at_sensitivity(y_true: ArrayLike, scores: ArrayLike, target: float = 0.95) -> OperatingPoint:
    """Best-specificity ROC point among those with sensitivity >= ``target`` (the "Going Smaller" rule, no bootstrap).

    Uses sklearn's ``roc_curve`` with its default ``drop_intermediate=True`` as the original does; with that, a
    vertical run of the curve keeps its top point, so the sensitivity reported is the highest one at that specificity.
    """
    y = as_binary(y_true)
    s = as_scores(scores, len(y))
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("an operating point needs both classes in y_true")
    return _best_point(y, s, target)


def _best_point(y: np.ndarray, s: np.ndarray, target: float) -> OperatingPoint:
    fpr, tpr, thr = skm.roc_curve(y, s)
    idx = np.flatnonzero(tpr >= target)
    best = idx[np.argmax(1.0 - fpr[idx])]
    return OperatingPoint(float(thr[best]), float(tpr[best]), float(1.0 - fpr[best]))


@dataclass(frozen=True)
class BootstrapResult:
    """Mean, standard deviation and 95 % interval of bootstrapped values; ``n_used`` resamples had both classes."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n_used: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _summarise(values: np.ndarray, ci: Literal["normal", "percentile"]) -> BootstrapResult:
    mean, std = float(np.mean(values)), float(np.std(values))
    if ci == "normal":
        low, high = stats.norm.interval(0.95, loc=mean, scale=std) if std > 0 else (mean, mean)
    elif ci == "percentile":
        low, high = np.percentile(values, [2.5, 97.5])
    else:
        raise ValueError(f"ci must be 'normal' or 'percentile', got {ci!r}")
    return BootstrapResult(mean, std, float(low), float(high), int(len(values)))


def _resample_indices(y: np.ndarray, n_boot: int, seed: int):
    """Yield index arrays of resamples that contain both classes (others are skipped, as a ROC needs both)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), size=len(y))
        yb = y[idx]
        if yb.min() != yb.max():
            yield idx


def bootstrap_operating_point(
    y_true: ArrayLike,
    scores: ArrayLike,
    target: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    ci: Literal["normal", "percentile"] = "normal",
) -> dict[str, BootstrapResult]:
    """Bootstrap mean sensitivity and specificity of the `operating_point_at_sensitivity` rule ("Going Smaller").

    Resamples rows with replacement (numpy ``default_rng(seed)``), so the same seed gives identical figures.
    ``ci="normal"`` is the paper's Normal(mean, sd) interval; ``"percentile"`` the 2.5/97.5 percentiles.
    Returns ``{"sensitivity": BootstrapResult, "specificity": BootstrapResult}``.
    """
    y = as_binary(y_true)
    s = as_scores(scores, len(y))
    sens, spec = [], []
    for idx in _resample_indices(y, n_boot, seed):
        point = _best_point(y[idx], s[idx], target)
        sens.append(point.sensitivity)
        spec.append(point.specificity)
    if not sens:
        raise ValueError("no bootstrap resample contained both classes; need positives and negatives in y_true")
    return {"sensitivity": _summarise(np.array(sens), ci), "specificity": _summarise(np.array(spec), ci)}


def bootstrap_metric(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: ArrayLike,
    scores: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    ci: Literal["normal", "percentile"] = "percentile",
) -> BootstrapResult:
    """Bootstrap any ``metric(y, s)`` of a binary task (e.g. `binary_auc`) with a fixed seed."""
    y = as_binary(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[0] != len(y):
        raise ValueError(f"scores has {s.shape[0]} rows but y_true has {len(y)}")
    values = [metric(y[idx], s[idx]) for idx in _resample_indices(y, n_boot, seed)]
    if not values:
        raise ValueError("no bootstrap resample contained both classes; need positives and negatives in y_true")
    return _summarise(np.array(values, dtype=np.float64), ci)
