"""Class weights for imbalanced data (Gessert et al.'s options 5 and 1/2/7; "Going Smaller"'s normalised weights)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def class_counts(labels: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Samples per class; every class must be present (an absent class has no finite weight)."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), found {y.min()}..{y.max()}")
    counts = np.bincount(y, minlength=n_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(f"class(es) {missing.tolist()} have no samples: cannot weight them; drop the class or "
                         f"pass explicit weights")
    return counts


def inverse_frequency_weights(labels: Sequence[int] | np.ndarray, n_classes: int, power: float = 1.0,
                              normalise: bool = False) -> torch.Tensor:
    """w_c = (N / n_c)^power (Gessert option 5 with ``power`` = extra_fac); ``normalise`` divides by Σ_c w_c, which
    with counts [867, 3320, ...] gives "Going Smaller"'s [.0976, .0255, ...]."""
    counts = class_counts(labels, n_classes).astype(np.float64)
    weights = (counts.sum() / counts) ** power
    if normalise:
        weights = weights / weights.sum()
    return torch.tensor(weights, dtype=torch.float32)


def balanced_class_weights(labels: Sequence[int] | np.ndarray, n_classes: int) -> torch.Tensor:
    """sklearn's 'balanced' weights, N / (K · n_c) (Gessert options 1, 2, 7)."""
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(labels, dtype=np.int64).ravel()
    class_counts(y, n_classes)
    weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=y)
    return torch.tensor(weights, dtype=torch.float32)


def class_weights(labels: Sequence[int] | np.ndarray, n_classes: int, scheme: str = "inverse",
                  power: float = 1.0) -> torch.Tensor | None:
    """Dispatch by name: "inverse", "balanced" or "none" (returns None)."""
    if scheme == "none":
        return None
    if scheme == "inverse":
        return inverse_frequency_weights(labels, n_classes, power)
    if scheme == "balanced":
        return balanced_class_weights(labels, n_classes)
    raise ValueError(f"class weight scheme must be 'inverse', 'balanced' or 'none', not {scheme!r}")
