"""Array checks shared by the metric functions, so a shape mistake fails with a message instead of a wrong number."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def as_labels(y_true: ArrayLike, name: str = "y_true") -> np.ndarray:
    """Integer class indices, 1-D."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class indices, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


def as_binary(y_true: ArrayLike, name: str = "y_true") -> np.ndarray:
    """0/1 labels, 1-D."""
    y = as_labels(y_true, name)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"{name} must be 0/1; found {sorted(set(y[bad].tolist()))[:5]}")
    return y


def as_scores(scores: ArrayLike, n: int, name: str = "scores") -> np.ndarray:
    """1-D float scores of length n; a (n, 2) probability matrix is reduced to its positive column."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 2:
        s = s[:, 1]
    if s.ndim == 2 and s.shape[1] == 1:
        s = s[:, 0]
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} entries (one per sample), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        rows = np.flatnonzero(~np.isfinite(s))[:10].tolist()
        raise ValueError(f"{name} contains NaN or infinite values at rows {rows}")
    return s


def as_probs(probs: ArrayLike, n: int, name: str = "probs") -> np.ndarray:
    """2-D (n, n_classes) float matrix."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"{name} must have shape (n_samples={n}, n_classes), got {p.shape}")
    if not np.all(np.isfinite(p)):
        rows = np.flatnonzero(~np.isfinite(p).all(axis=1))[:10].tolist()
        raise ValueError(f"{name} contains NaN or infinite values at rows {rows}")
    return p


def check_label_range(y: np.ndarray, n_classes: int, name: str = "y_true") -> None:
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = sorted(set(y[(y < 0) | (y >= n_classes)].tolist()))[:5]
        raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}: {bad}")
