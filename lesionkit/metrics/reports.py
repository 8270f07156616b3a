"""The two metric reports; their keys are exactly the JSON keys of ``python -m lesionkit score --json``."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from lesionkit.metrics._validate import as_binary, as_labels, as_scores
from lesionkit.metrics.classification import (
    accuracy,
    balanced_accuracy,
    cohen_kappa,
    f1,
    per_class_sens_spec,
    predict_labels,
)
from lesionkit.metrics.operating_point import (
    bootstrap_operating_point,
    operating_point_at_sensitivity,
    sens_spec_at_threshold,
)
from lesionkit.metrics.ranking import auc_ovr, average_precision, binary_auc, pauc_above_tpr

BINARY_KEYS = ("auc", "ap", "pauc80", "accuracy", "sensitivity", "specificity", "f1_weighted",
               "spec_at_sens95", "sens_at_sens95")
MULTICLASS_KEYS = ("balanced_accuracy", "accuracy", "f1_macro", "f1_weighted", "kappa", "auc_macro", "per_class")


def binary_report(y_true: ArrayLike, p: ArrayLike, threshold: float = 0.5, n_bootstrap: int = 0,
                  seed: int = 0) -> dict:
    """Binary melanoma metrics: ranking (AUC, AP, ISIC 2024 pAUC above TPR 0.8), decisions at ``threshold`` (>=),
    and the best-specificity operating point with sensitivity >= 0.95 ("Going Smaller"'s rule, point estimate).

    ``n_bootstrap > 0`` adds a ``"bootstrap"`` entry with the seeded bootstrap mean/std/CI of that operating point.
    """
    if not 0 <= threshold <= 1:  # NaN fails too
        raise ValueError(f"threshold={threshold}: a decision threshold on probabilities must be in [0, 1]")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap={n_bootstrap}: give 0 (no bootstrap) or a positive number of resamples")
    y = as_binary(y_true)
    s = as_scores(p, len(y))
    pred = (s >= threshold).astype(np.int64)
    sens, spec = sens_spec_at_threshold(y, s, threshold)
    point = operating_point_at_sensitivity(y, s, 0.95)
    report = {
        "auc": binary_auc(y, s),
        "ap": average_precision(y, s),
        "pauc80": pauc_above_tpr(y, s, 0.80),
        "accuracy": float(np.mean(pred == y)),
        "sensitivity": sens,
        "specificity": spec,
        "f1_weighted": f1(y, pred, average="weighted", labels=[0, 1]),
        "spec_at_sens95": point.specificity,
        "sens_at_sens95": point.sensitivity,
    }
    if n_bootstrap > 0:
        boot = bootstrap_operating_point(y, s, 0.95, n_boot=n_bootstrap, seed=seed)
        report["bootstrap"] = {"n_boot": n_bootstrap, "seed": seed,
                               **{k: v.to_dict() for k, v in boot.items()}}
    return report


def multiclass_report(y_true: ArrayLike, probs: ArrayLike, classes: Sequence[str]) -> dict:
    """Multiclass metrics from argmax decisions (ties count as wrong, as ISIC does) plus one-vs-rest AUCs.

    ``y_true`` holds class indices or class names from ``classes``. Per-class sensitivity/specificity are one-vs-rest
    rates of the argmax label (Gessert et al.'s evaluation), not 0.5-thresholded columns, which are meaningless for
    softmax outputs.
    """
    classes = [str(c) for c in classes]
    y_arr = np.asarray(y_true)
    if y_arr.dtype.kind in "OUS":
        unknown = sorted(set(y_arr.tolist()) - set(classes))
        if unknown:
            raise ValueError(f"y_true holds labels {unknown[:5]} that are not in classes {classes}")
        lookup = {c: i for i, c in enumerate(classes)}
        y_arr = np.array([lookup[v] for v in y_arr.tolist()], dtype=np.int64)
    y = as_labels(y_arr)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"probs must have shape (n_samples, {len(classes)}) for classes {classes}, got {p.shape}")
    pred = predict_labels(p)
    aucs, auc_macro = auc_ovr(y, p)
    sens, spec = per_class_sens_spec(y, pred, len(classes))
    return {
        "balanced_accuracy": balanced_accuracy(y, p),
        "accuracy": accuracy(y, p),
        "f1_macro": f1(y, pred, average="macro"),
        "f1_weighted": f1(y, pred, average="weighted"),  # Gessert et al.'s F1 (class-frequency weights)
        "kappa": cohen_kappa(y, pred),
        "auc_macro": auc_macro,
        "per_class": {c: {"auc": float(aucs[k]), "sensitivity": float(sens[k]), "specificity": float(spec[k])}
                      for k, c in enumerate(classes)},
    }
