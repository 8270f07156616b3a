"""Segmentation scores as SE-LCN reports them (methods-a §3.5): per image, then the nan-mean over images."""
from __future__ import annotations

import numpy as np


def segmentation_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Mean over images of Dice, Jaccard, sensitivity, specificity and pixel accuracy of (N, H, W) bool masks; an
    image where a score is undefined (no lesion in either mask) is skipped for that score (numpy's nanmean)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"predicted masks {pred.shape} and true masks {truth.shape} differ in shape")
    p, g = pred.reshape(len(pred), -1), truth.reshape(len(truth), -1)
    inter, ps, gs = (p & g).sum(1), p.sum(1), g.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = {"dice": 2 * inter / (ps + gs), "jaccard": inter / (ps + gs - inter),
               "sensitivity": inter / gs, "specificity": (~p & ~g).sum(1) / (~g).sum(1),
               "pixel_accuracy": (p == g).mean(1)}
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per.items()}


__all__ = ["segmentation_scores"]
