"""Threshold-free ranking metrics: ROC-AUC (binary, per class, macro), average precision, and the two partial AUCs.

Two partial AUCs circulate under similar names and differ by a factor of ~5, so they get different names here:

* `pauc_above_tpr` is the ISIC 2024 / SLICE-3D primary metric: the area under the ROC curve *and above* TPR = 0.8,
  range [0, 0.2]. It equals ISIC-Research/Challenge-2024-Metrics ``p_auc_tpr(min_tpr=0.80)``.
* `auc_above_sensitivity` is ``auc_sens_80`` of the ISIC live scorer (isic-challenge-scoring): the area under the ROC
  curve over FPR in [FPR at TPR 0.8, 1], *including* the rectangle below TPR = 0.8, range [0, 1].
"""
from __future__ import annotations

import warnings

import numpy as np
import sklearn.metrics as skm
from numpy.typing import ArrayLike

from lesionkit.metrics._validate import as_binary, as_labels, as_probs, as_scores, check_label_range


def _binary_inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary(y_true)
    s = as_scores(scores, len(y))
    if y.min(initial=1) == y.max(initial=0):
        raise ValueError("ranking metrics need both classes in y_true; it holds only "
                         f"{'positives' if y.size and y[0] == 1 else 'negatives'} ({len(y)} rows)")
    return y, s


def binary_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC-AUC of a binary task (ISIC 2016/2017/2020, ties scored 1/2 as sklearn and the ISIC scorer do)."""
    y, s = _binary_inputs(y_true, scores)
    return float(skm.roc_auc_score(y, s))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise average precision (sklearn; the ISIC scorer's ``ap``, "Going Smaller"'s PR-AUC), not trapezoidal."""
    y, s = _binary_inputs(y_true, scores)
    return float(skm.average_precision_score(y, s))


def _per_class(fn, y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, float]:
    y = as_labels(y_true)
    p = as_probs(probs, len(y))
    check_label_range(y, p.shape[1])
    values = np.full(p.shape[1], np.nan)
    for k in range(p.shape[1]):
        onehot = (y == k).astype(np.int64)
        if 0 < onehot.sum() < len(y):
            values[k] = fn(onehot, p[:, k])
    if np.isnan(values).any():
        missing = np.flatnonzero(np.isnan(values)).tolist()
        warnings.warn(f"classes {missing} have no positive (or no negative) sample; left out of the macro mean",
                      RuntimeWarning, stacklevel=3)
    macro = float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")
    return values, macro


def auc_ovr(y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, float]:
    """One-vs-rest ROC-AUC of each class column and their mean (the scorer's ``per_category``/``macro_average['auc']``).

    A class with no positive sample gets NaN and is left out of the mean (the official scorer raises instead).
    """
    return _per_class(skm.roc_auc_score, y_true, probs)


def ap_ovr(y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, float]:
    """One-vs-rest average precision per class and their mean (the scorer's ``macro_average['ap']``)."""
    return _per_class(skm.average_precision_score, y_true, probs)


def pauc_above_tpr(y_true: ArrayLike, scores: ArrayLike, min_tpr: float = 0.80) -> float:
    """ISIC 2024 partial AUC: area under the ROC curve and above TPR = ``min_tpr``; range [0, 1 - min_tpr].

    Computed directly as the integral of ``max(TPR - min_tpr, 0)`` over FPR along the (linearly interpolated) ROC
    curve, which is the same area as the official flip-the-labels-and-truncate-at-max_fpr formulation.
    The competition used ``min_tpr=0.80`` (its README's "88 %" is a typo per the metric code). Scores are
    compared after ``s - 1``, as the official ``1 - s`` flip does, so float ties match it bit for bit.
    """
    if not 0.0 <= min_tpr < 1.0:
        raise ValueError(f"min_tpr must be in [0, 1), got {min_tpr}")
    y, s = _binary_inputs(y_true, scores)
    # the official code ranks 1 - s; s - 1 ranks identically (and keeps the same float ties near 1)
    fpr, tpr, _ = skm.roc_curve(y, s - 1.0, drop_intermediate=False)
    area = 0.0
    for f0, f1, t0, t1 in zip(fpr[:-1], fpr[1:], tpr[:-1], tpr[1:]):
        if f1 == f0:
            continue
        a, b = t0 - min_tpr, t1 - min_tpr
        if a >= 0 and b >= 0:
            area += 0.5 * (a + b) * (f1 - f0)
        elif a < 0 < b or b < 0 < a:
            # the segment crosses TPR = min_tpr: only the triangle above the line counts
            top = max(a, b)
            area += 0.5 * top * (f1 - f0) * top / (top - min(a, b))
    return float(area)


def auc_above_sensitivity(y_true: ArrayLike, scores: ArrayLike, min_sensitivity: float = 0.80) -> float:
    """The ISIC live scorer's ``auc_sens_80``: ROC area over FPR in [FPR at TPR = min_sensitivity, 1], rectangle in.

    Same algorithm as ``isic_challenge_scoring.metrics.auc_above_sensitivity``: the ROC segment with
    TPR >= min_sensitivity, plus one point interpolated at TPR = min_sensitivity, integrated with the trapezoid rule.
    Not comparable with the ISIC 2024 pAUC (`pauc_above_tpr`), which excludes that rectangle.
    """
    if not 0.0 < min_sensitivity <= 1.0:
        raise ValueError(f"min_sensitivity must be in (0, 1], got {min_sensitivity}")
    y, s = _binary_inputs(y_true, scores)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    i = int(tpr.searchsorted(min_sensitivity, side="left"))
    f_at = float(np.interp(min_sensitivity, tpr[i - 1 : i + 1], fpr[i - 1 : i + 1]))
    seg_f = np.insert(fpr[i:], 0, f_at)
    seg_t = np.insert(tpr[i:], 0, min_sensitivity)
    return float(skm.auc(seg_f, seg_t))
