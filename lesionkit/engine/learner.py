"""A fastai Learner for any lesionkit/timm model: the loss, metrics and optimiser a recipe names, nothing implicit."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from fastai.learner import Learner
from torch import nn

from lesionkit.engine.optim import OptimizerSpec


def param_groups_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Backbone / head parameter groups for discriminative learning rates (head = the classifier)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    body = [p for p in model.parameters() if id(p) not in head_ids]
    head_params = [p for p in model.parameters() if id(p) in head_ids]
    return [body, head_params] if head_params and body else [list(model.parameters())]


def make_learner(dls: Any, model: nn.Module, loss_func: Callable | None = None, metrics: Sequence[Any] = (),
                 optimizer: OptimizerSpec | None = None, cbs: Sequence[Any] = ()) -> Learner:
    """A plain fastai Learner (custom and multi-input models work). ``optimizer`` defaults to torch's AdamW with
    its own defaults (the quickstart's). Precision and memory format are the fit's
    (:mod:`lesionkit.engine.speed`)."""
    optimizer = optimizer or OptimizerSpec("adamw", weight_decay=0.01)
    learn = Learner(dls, model, loss_func=loss_func or nn.CrossEntropyLoss(), metrics=list(metrics),
                    opt_func=optimizer.opt_func(), splitter=param_groups_splitter, cbs=list(cbs),
                    wd_bn_bias=True)
    return learn


def gpu_precision() -> str:
    """Mixed precision on this GPU: bf16 where it has bf16 units (no loss scaling needed), else fp16 with fastai's
    GradScaler."""
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
