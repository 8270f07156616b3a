"""ARL's validation as the code runs it (train_mel.py, methods-a §2.4): every validation image seen through the 9
multi-scale test views, their logits averaged, and (``monitor="accuracy"``) the epoch kept by accuracy at the
threshold. fastai validates one tensor per image; the callback below lets the same fit validate stacked views.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from fastai.callback.core import Callback
from fastai.metrics import AccumMetric, ActivationType


class MeanOfViews(Callback):
    """Validation batches of stacked views (B, V, 3, S, S): the model sees the B·V views, the loss and the metrics
    each image's mean logit over its V views. Training batches (B, 3, S, S) pass unchanged."""

    order = -2  # before the speed callbacks (order -1), which look at the batch the model will see

    def __init__(self) -> None:
        self.views = 0

    def before_batch(self) -> None:
        x = self.learn.xb[0]
        self.views = int(x.shape[1]) if not self.training and x.ndim == 5 else 0
        if self.views:
            self.learn.xb = (x.flatten(0, 1), *self.learn.xb[1:])

    def after_pred(self) -> None:
        if self.views:
            pred = self.learn.pred.float()
            self.learn.pred = pred.reshape(-1, self.views, *pred.shape[1:]).mean(1)


def _accuracy_at(threshold: float) -> Any:
    def accuracy(preds: Any, targs: Any) -> float:
        p = preds.detach().cpu().numpy().reshape(-1)
        y = targs.detach().cpu().numpy().reshape(-1)
        return float(np.mean((p >= threshold) == (y > 0.5)))
    return accuracy


def accuracy_metric(threshold: float = 0.5) -> AccumMetric:
    """Validation accuracy of one sigmoid logit at `threshold` (predict 1 when p >= threshold: predict2017_mel.py),
    named "accuracy" so that ``monitor="accuracy"`` finds it."""
    return AccumMetric(_accuracy_at(threshold), name="accuracy", activation=ActivationType.Sigmoid, flatten=False)


__all__ = ["MeanOfViews", "accuracy_metric"]
