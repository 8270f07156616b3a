"""Calibration: reliability curve, expected calibration error (ECE) and the Brier score."""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lesionkit.metrics._validate import as_binary, as_labels, as_probs, as_scores, check_label_range


def _confidence_and_hit(y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Binary (1-D scores): P(y=1) vs y. Multiclass (2-D): top-label confidence vs correctness (Guo et al. 2017)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        y = as_binary(y_true)
        return as_scores(p, len(y)), y.astype(np.float64)
    y = as_labels(y_true)
    p = as_probs(p, len(y))
    check_label_range(y, p.shape[1])
    return p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)


def reliability_curve(y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width bins over [0, 1]: columns bin_low, bin_high, confidence (mean), accuracy (observed), count."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, hit = _confidence_and_hit(y_true, probs)
    if conf.size and (conf.min() < 0 or conf.max() > 1):
        raise ValueError("probabilities must lie in [0, 1] for calibration; apply softmax/sigmoid first")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1],
                     "confidence": float(conf[mask].mean()) if n else np.nan,
                     "accuracy": float(hit[mask].mean()) if n else np.nan, "count": n})
    return pd.DataFrame(rows)


def expected_calibration_error(y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15) -> float:
    """ECE = sum over bins of (count / N) * |accuracy - confidence|, equal-width bins (15 as in Guo et al.)."""
    curve = reliability_curve(y_true, probs, n_bins).dropna()
    total = curve["count"].sum()
    if not total:
        return float("nan")
    return float((curve["count"] / total * (curve["accuracy"] - curve["confidence"]).abs()).sum())


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Brier score: mean squared error of P(y=1) (binary, 1-D), or of the whole probability vector vs one-hot (2-D)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        y = as_binary(y_true)
        return float(np.mean((as_scores(p, len(y)) - y) ** 2))
    y = as_labels(y_true)
    p = as_probs(p, len(y))
    check_label_range(y, p.shape[1])
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))
