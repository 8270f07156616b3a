"""Label-based metrics (argmax decisions): balanced accuracy as ISIC 2018/2019 rank it, F1, kappa, confusion matrix.

ISIC's scorer turns confidences into a label by argmax and counts a row with several maxima as *undecided*, i.e. wrong
for every class. `predict_labels` does the same (``UNDECIDED = -1``); every function here that takes probabilities
uses it, so the numbers agree with the official scorer even when scores tie.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import sklearn.metrics as skm
from numpy.typing import ArrayLike

from lesionkit.metrics._validate import as_labels, as_probs, check_label_range

UNDECIDED = -1


def predict_labels(probs: ArrayLike, ties: Literal["wrong", "first"] = "wrong") -> np.ndarray:
    """Argmax labels; rows with several maxima become ``UNDECIDED`` (ISIC rule) unless ``ties="first"`` (numpy rule)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (n_samples, n_classes), got shape {p.shape}")
    labels = p.argmax(axis=1)
    if ties == "wrong":
        n_max = (p == p.max(axis=1, keepdims=True)).sum(axis=1)
        labels = np.where(n_max > 1, UNDECIDED, labels)
    elif ties != "first":
        raise ValueError(f"ties must be 'wrong' or 'first', got {ties!r}")
    return labels.astype(np.int64)


def _labels_and_preds(y_true: ArrayLike, probs: ArrayLike, ties: str) -> tuple[np.ndarray, np.ndarray, int]:
    y = as_labels(y_true)
    p = as_probs(probs, len(y))
    check_label_range(y, p.shape[1])
    return y, predict_labels(p, ties), p.shape[1]  # type: ignore[arg-type]


def per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class absent from ``y_true``); undecided predictions count as misses."""
    y, yp = as_labels(y_true), as_labels(y_pred, "y_pred")
    check_label_range(y, n_classes)
    recall = np.full(n_classes, np.nan)
    for k in range(n_classes):
        mask = y == k
        if mask.any():
            recall[k] = np.mean(yp[mask] == k)
    return recall


def balanced_accuracy_labels(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in ``y_true`` (sklearn's balanced_accuracy_score; SE-LCN's metric)."""
    y = as_labels(y_true)
    if n_classes is None:
        n_classes = int(max(y.max(initial=-1), as_labels(y_pred, "y_pred").max(initial=-1)) + 1)
    n = int(n_classes)
    return float(np.nanmean(per_class_recall(y, y_pred, n)))


def balanced_accuracy(y_true: ArrayLike, probs: ArrayLike, ties: Literal["wrong", "first"] = "wrong") -> float:
    """Balanced multiclass accuracy, the ISIC 2018/2019 ranking metric (ties in the argmax count as wrong).

    Classes absent from ``y_true`` are left out of the mean, as in ``isic-challenge-scoring``.
    """
    y, yp, k = _labels_and_preds(y_true, probs, ties)
    return float(np.nanmean(per_class_recall(y, yp, k)))


def accuracy(y_true: ArrayLike, probs: ArrayLike, ties: Literal["wrong", "first"] = "wrong") -> float:
    """Plain accuracy of the argmax label (tied rows are wrong)."""
    y, yp, _ = _labels_and_preds(y_true, probs, ties)
    return float(np.mean(y == yp))


def f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    average: Literal["macro", "weighted"] = "weighted",
    labels: Sequence[int] | None = None,
    support: Literal["true", "predicted"] = "true",
) -> float:
    """F1 averaged over ``labels`` (default: the classes seen in either array, as sklearn's classification_report).

    Undecided predictions (-1) count as misses for their true class. ``average="weighted"`` weights each class by
    its true support (sklearn; "Going Smaller" and SE-LCN report it). ``support="predicted"`` reproduces Gessert et
    al.'s utils.py, which calls ``f1_score(pred, target)`` with swapped arguments and so weights by *predicted*
    support; for macro F1 the swap changes nothing.
    """
    y, yp = as_labels(y_true), as_labels(y_pred, "y_pred")
    if len(y) != len(yp):
        raise ValueError(f"y_true has {len(y)} entries but y_pred has {len(yp)}")
    if labels is None:
        labels = sorted(set(np.unique(y).tolist()) | set(np.unique(yp).tolist()) - {UNDECIDED})
    if support == "predicted":
        y, yp = yp, y
    elif support != "true":
        raise ValueError(f"support must be 'true' or 'predicted', got {support!r}")
    return float(skm.f1_score(y, yp, labels=list(labels), average=average, zero_division=0))


def cohen_kappa(y_true: ArrayLike, y_pred: ArrayLike, weights: Literal["linear", "quadratic"] | None = None) -> float:
    """Cohen's kappa between true and predicted labels (SE-LCN reports the unweighted one)."""
    y, yp = as_labels(y_true), as_labels(y_pred, "y_pred")
    return float(skm.cohen_kappa_score(y, yp, weights=weights))


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, n_classes: int, normalize: Literal["true", "pred", "all"] | None = None
) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = truth; undecided predictions fall in no column (they are misses).

    With ``normalize="true"`` each row is divided by the class's total (undecided rows included), so the diagonal
    is exactly the per-class recall and its mean is the ISIC balanced accuracy.
    """
    y, yp = as_labels(y_true), as_labels(y_pred, "y_pred")
    check_label_range(y, n_classes)
    cm = np.zeros((n_classes, n_classes), dtype=np.float64)
    ok = yp >= 0
    np.add.at(cm, (y[ok], yp[ok]), 1.0)
    if normalize is None:
        return cm.astype(np.int64)
    if normalize == "true":
        totals = np.bincount(y, minlength=n_classes).astype(np.float64)[:, None]
    elif normalize == "pred":
        totals = cm.sum(axis=0, keepdims=True)
    elif normalize == "all":
        totals = np.array([[float(len(y))]])
    else:
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, cm / np.where(totals > 0, totals, 1.0), 0.0)


def per_class_sens_spec(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest sensitivity and specificity of argmax labels, per class (Gessert et al.'s eval; NaN if undefined)."""
    y, yp = as_labels(y_true), as_labels(y_pred, "y_pred")
    check_label_range(y, n_classes)
    sens, spec = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for k in range(n_classes):
        pos, neg = y == k, y != k
        if pos.any():
            sens[k] = np.mean(yp[pos] == k)
        if neg.any():
            spec[k] = np.mean(yp[neg] != k)
    return sens, spec
