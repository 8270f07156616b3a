"""Optimisers written out: the torch class and every hyperparameter, so a paper's setting is visible and tested.

fastai's own ``Adam`` defaults to β₂ 0.99 and eps 1e-5 and its Learner silently exempts BN/bias parameters from
weight decay; the papers used torch's optimisers (β₂ 0.999, eps 1e-8, weight decay on every parameter). An
``OptimizerSpec`` builds exactly the torch optimiser it names, wrapped so fastai's schedules can drive its lr.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@dataclass(frozen=True)
class OptimizerSpec:
    """One torch optimiser and its hyperparameters.

    ``name``: "adam" (torch.optim.Adam; its ``weight_decay`` is L2 added to the gradient), "adamw" (decoupled weight
    decay) or "sgd" (``momentum``, L2 ``weight_decay``). ``decay_bn_bias=False`` exempts 1-d parameters (BN/LN
    weights, biases) from weight decay, timm's ``filter_bias_and_bn``; the default decays every parameter as torch
    does.
    """

    name: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    decay_bn_bias: bool = True

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.name!r}: choose one of {sorted(OPTIMIZERS)}")

    @property
    def torch_class(self) -> type[torch.optim.Optimizer]:
        return OPTIMIZERS[self.name]

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments handed to the torch class (besides params and lr)."""
        if self.name == "sgd":
            return {"momentum": self.momentum, "nesterov": self.nesterov, "weight_decay": self.weight_decay}
        return {"betas": tuple(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def describe(self) -> dict[str, Any]:
        """What a run records and a notebook prints: class name and every hyperparameter."""
        return {"class": f"torch.optim.{self.torch_class.__name__}", **self.kwargs(),
                "decay_bn_bias": self.decay_bn_bias}

    def param_groups(self, groups: Sequence[Sequence[nn.Parameter]]) -> list[dict[str, Any]]:
        """Parameter groups (one per splitter group, split in two when BN/bias are exempt from weight decay)."""
        out: list[dict[str, Any]] = []
        for params in groups:
            params = [p for p in params if p.requires_grad]
            if self.decay_bn_bias or self.weight_decay == 0:
                out.append({"params": params})
                continue
            decay = [p for p in params if p.ndim > 1]
            no_decay = [p for p in params if p.ndim <= 1]
            out += [g for g in ({"params": decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
        return [g for g in out if g["params"]]

    def opt_func(self) -> Callable[..., Any]:
        """A fastai ``opt_func``: called by the Learner with the splitter's groups and lr."""
        def make(params: Any, lr: float = 1e-3, **_: Any) -> Any:
            from fastai.optimizer import OptimWrapper

            groups = [list(g) for g in params] if params and isinstance(params[0], (list, tuple)) else [list(params)]
            return OptimWrapper(self.param_groups(groups), opt=self.torch_class, lr=lr, **self.kwargs())

        return make


def adam(weight_decay: float = 0.0, **kw: Any) -> OptimizerSpec:
    """torch's Adam (β 0.9/0.999, eps 1e-8); ``weight_decay`` is coupled L2, as in the papers' code."""
    return OptimizerSpec("adam", weight_decay=weight_decay, **kw)


def adamw(weight_decay: float = 0.01, **kw: Any) -> OptimizerSpec:
    return OptimizerSpec("adamw", weight_decay=weight_decay, **kw)


def sgd(momentum: float = 0.9, weight_decay: float = 0.0, **kw: Any) -> OptimizerSpec:
    return OptimizerSpec("sgd", momentum=momentum, weight_decay=weight_decay, **kw)


def torch_optimizer(learn: Any) -> torch.optim.Optimizer:
    """The torch optimiser inside a fastai Learner (after ``create_opt``), for tests and records."""
    if learn.opt is None:
        learn.create_opt()
    return learn.opt.opt
