"""fastai metrics with stable names, so ``SaveModelCallback(monitor="bma")`` and early stopping can find them.

fastai asserts that a monitored name is in the recorder's metric names; these `AccumMetric`s accumulate the whole
validation set and call the same functions as the score command, so the monitored value is the reported value.
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from fastai.metrics import AccumMetric, ActivationType

from lesionkit.metrics.classification import balanced_accuracy, cohen_kappa, f1, predict_labels
from lesionkit.metrics.ranking import auc_ovr, average_precision, binary_auc, pauc_above_tpr

METRIC_NAMES = {
    "multiclass": ("bma", "accuracy", "auc_macro", "f1_macro", "kappa"),
    "binary": ("auc", "ap", "pauc80", "bma"),
    "multilabel": ("auc_macro",),
}


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _positive_scores(preds) -> np.ndarray:
    p = _np(preds).astype(np.float64)
    return p[:, -1] if p.ndim == 2 else p.reshape(-1)


def _two_classes(targs) -> bool:
    t = _np(targs).reshape(-1)
    return t.min() != t.max() if t.size else False


_EXPLAINED: set[tuple[int, int]] = set()  # validation sets whose NaN ranking metrics were explained (forget_nan_notes)


def forget_nan_notes() -> None:
    """Explain NaN ranking metrics again (once per fit: the engine calls this when a fit starts)."""
    _EXPLAINED.clear()


def _explain_nan(targs) -> None:
    """Say once per validation set why the ranking metrics print nan, instead of leaving a bare `nan`."""
    t = _np(targs).reshape(-1)
    key = (t.size, int(t[0]) if t.size else -1)
    if key in _EXPLAINED:
        return
    _EXPLAINED.add(key)
    what = f"all {t.size} images are of class index {key[1]}" if t.size else "it is empty"
    print(f"note: AUC / AP / pAUC print nan because the validation part holds one class only ({what}); ranking "
          "needs both classes (a larger max_images or valid_frac gives it both)", flush=True)


def _nan_if_one_class(fn):
    """A validation set can lack a class (a smoke run's tiny split): NaN, with a note why, instead of a crash."""
    def wrapped(preds, targs) -> float:
        if not _two_classes(targs):
            _explain_nan(targs)
            return float("nan")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(fn(preds, targs))
    wrapped.__name__ = fn.__name__
    return wrapped


def _bma(preds, targs) -> float:
    return balanced_accuracy(_np(targs).reshape(-1), _np(preds))


def _accuracy(preds, targs) -> float:
    return float(np.mean(predict_labels(_np(preds)) == _np(targs).reshape(-1)))


def _f1_macro(preds, targs) -> float:
    return f1(_np(targs).reshape(-1), predict_labels(_np(preds)), average="macro")


def _kappa(preds, targs) -> float:
    return cohen_kappa(_np(targs).reshape(-1), predict_labels(_np(preds)))


def _auc_macro(preds, targs) -> float:
    return auc_ovr(_np(targs).reshape(-1), _np(preds))[1]


def _binary_auc(preds, targs) -> float:
    return binary_auc(_np(targs).reshape(-1), _positive_scores(preds))


def _binary_ap(preds, targs) -> float:
    return average_precision(_np(targs).reshape(-1), _positive_scores(preds))


def _binary_pauc(preds, targs) -> float:
    return pauc_above_tpr(_np(targs).reshape(-1), _positive_scores(preds), 0.80)


def _binary_bma(preds, targs) -> float:
    s = _positive_scores(preds)
    return balanced_accuracy(_np(targs).reshape(-1), np.stack([1.0 - s, s], axis=1))


def _multilabel_auc(preds, targs) -> float:
    p, t = _np(preds).astype(np.float64), _np(targs).astype(np.int64)
    values = [binary_auc(t[:, k], p[:, k]) for k in range(t.shape[1]) if t[:, k].min() != t[:, k].max()]
    return float(np.mean(values)) if values else float("nan")


def fastai_metrics(task: Literal["multiclass", "binary", "multilabel"], n_classes: int) -> list[AccumMetric]:
    """Metrics for ``Learner(metrics=...)``, named as in `METRIC_NAMES` (and as the score command's JSON keys).

    ``multiclass``: logits (n, n_classes), softmax applied. ``binary``: one logit (sigmoid) when ``n_classes == 1``,
    two logits (softmax, positive = column 1) when ``n_classes == 2``. ``multilabel``: one sigmoid logit per label;
    the macro AUC skips labels with a single class in the validation set.
    """
    if task == "multiclass":
        if n_classes < 2:
            raise ValueError(f"multiclass needs n_classes >= 2, got {n_classes}")
        soft = dict(activation=ActivationType.Softmax, dim_argmax=-1, flatten=False)
        return [AccumMetric(_bma, name="bma", **soft), AccumMetric(_accuracy, name="accuracy", **soft),
                AccumMetric(_nan_if_one_class(_auc_macro), name="auc_macro", **soft),
                AccumMetric(_f1_macro, name="f1_macro", **soft), AccumMetric(_kappa, name="kappa", **soft)]
    if task == "binary":
        if n_classes == 1:
            act = dict(activation=ActivationType.Sigmoid, flatten=False)
        elif n_classes == 2:
            act = dict(activation=ActivationType.Softmax, dim_argmax=-1, flatten=False)
        else:
            raise ValueError(f"binary needs n_classes 1 (one sigmoid logit) or 2 (two softmax logits), got {n_classes}")
        return [AccumMetric(_nan_if_one_class(_binary_auc), name="auc", **act),
                AccumMetric(_nan_if_one_class(_binary_ap), name="ap", **act),
                AccumMetric(_nan_if_one_class(_binary_pauc), name="pauc80", **act),
                AccumMetric(_binary_bma, name="bma", **act)]
    if task == "multilabel":
        return [AccumMetric(_multilabel_auc, name="auc_macro", activation=ActivationType.Sigmoid, flatten=False)]
    raise ValueError(f"task must be 'multiclass', 'binary' or 'multilabel', got {task!r}")
