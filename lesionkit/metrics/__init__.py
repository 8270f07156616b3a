"""Metrics that match the official ISIC scorers and the papers' own definitions (see each module's docstring).

``fastai_metrics`` is imported lazily so that the score command and plain metric use do not import fastai/torch.
"""
from __future__ import annotations

from typing import Any

from lesionkit.metrics.calibration import brier_score, expected_calibration_error, reliability_curve
from lesionkit.metrics.classification import (
    UNDECIDED,
    accuracy,
    balanced_accuracy,
    balanced_accuracy_labels,
    cohen_kappa,
    confusion_matrix,
    f1,
    per_class_recall,
    per_class_sens_spec,
    predict_labels,
)
from lesionkit.metrics.formats import (
    ScoreFormatError,
    ScoringPair,
    Truth,
    load_pair,
    read_predictions,
    read_truth,
    write_predictions,
)
from lesionkit.metrics.operating_point import (
    BootstrapResult,
    OperatingPoint,
    bootstrap_metric,
    bootstrap_operating_point,
    operating_point_at_sensitivity,
    sens_spec_at_threshold,
)
from lesionkit.metrics.paired import adjust_pvalues, compare_to_reference, delong_test, paired_bootstrap  # noqa: F401
from lesionkit.metrics.ranking import (
    ap_ovr,
    auc_above_sensitivity,
    auc_ovr,
    average_precision,
    binary_auc,
    pauc_above_tpr,
)
from lesionkit.metrics.reports import BINARY_KEYS, MULTICLASS_KEYS, binary_report, multiclass_report
from lesionkit.metrics.summary import fold_summary, mean_std

bma = balanced_accuracy  # the ISIC name ("balanced multiclass accuracy")


def __getattr__(name: str) -> Any:
    if name == "fastai_metrics":
        from lesionkit.metrics.fastai_wrappers import fastai_metrics  # fastai loads only when its metric wrappers are asked for

        return fastai_metrics
    raise AttributeError(f"module 'lesionkit.metrics' has no attribute {name!r}")


__all__ = [
    "UNDECIDED", "BINARY_KEYS", "MULTICLASS_KEYS", "BootstrapResult", "OperatingPoint", "ScoreFormatError",
    "ScoringPair", "Truth", "accuracy", "ap_ovr", "auc_above_sensitivity", "auc_ovr", "average_precision",
    "balanced_accuracy", "balanced_accuracy_labels", "binary_auc", "binary_report", "bma", "bootstrap_metric",
    "bootstrap_operating_point", "brier_score", "cohen_kappa", "confusion_matrix", "expected_calibration_error", "f1",
    "fastai_metrics", "fold_summary", "load_pair", "mean_std", "multiclass_report", "operating_point_at_sensitivity",
    "pauc_above_tpr", "per_class_recall", "per_class_sens_spec", "predict_labels", "read_predictions", "read_truth",
    "reliability_curve", "sens_spec_at_threshold", "write_predictions",
]
