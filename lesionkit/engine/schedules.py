"""Learning-rate schedules as functions of training progress ``pos`` in [0, 1] (fastai's ParamScheduler contract).

One definition per schedule the papers use, so every fit (fresh or resumed) is the same code path:
"one_cycle" and "flat_cos" (fastai's, with the same constants as ``fit_one_cycle`` / ``fit_flat_cos``), "constant",
"step" (Gessert et al.: halve every 10 of 50 epochs after epoch 10; ARL: at 30/60/90 of 100), "warmup_cosine" (the
ISIC 2020 1st place and "Going Smaller": one warmup epoch from lr/10, then cosine to 0) and "poly" (SE-LCN's
segmenter: lr · (1 − pos)^0.9).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

SCHEDULES = ("one_cycle", "flat_cos", "constant", "step", "warmup_cosine", "poly")
Sched = Callable[[float], float]


@dataclass(frozen=True)
class Schedule:
    """A schedule by name plus its shape parameters (fractions of training, so short runs keep the paper's shape).

    step: ``lr · gamma^floor((pos − step_start) / step_every)`` once past the first milestone;
    warmup_cosine: ``warmup_epochs`` linear warmup from lr/``warmup_factor``; poly: power ``poly_power``;
    one_cycle: ``pct_start``, ``div``, ``div_final`` and momentum ``moms`` as fastai's fit_one_cycle.
    """

    name: str = "one_cycle"
    step_start: float = 0.0
    step_every: float = 0.3
    step_gamma: float = 0.5
    warmup_epochs: float = 1.0
    warmup_factor: float = 10.0
    poly_power: float = 0.9
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple[float, float, float] = (0.95, 0.85, 0.95)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule={self.name!r}: choose one of {SCHEDULES}")

    def scheds(self, lr: float, epochs: int) -> dict[str, Sched]:
        """{hyperparameter: f(pos)} for fastai's ParamScheduler."""
        from fastai.callback.schedule import combined_cos

        if self.name == "one_cycle":
            return {"lr": combined_cos(self.pct_start, lr / self.div, lr, lr / self.div_final),
                    "mom": combined_cos(self.pct_start, *self.moms)}
        if self.name == "flat_cos":
            return {"lr": combined_cos(0.75, lr, lr, lr / self.div_final)}
        if self.name == "constant":
            return {"lr": lambda pos: lr}
        if self.name == "step":
            return {"lr": step_schedule(lr, self.step_start, self.step_every, self.step_gamma)}
        if self.name == "warmup_cosine":
            return {"lr": warmup_cosine_schedule(lr, epochs, self.warmup_epochs, self.warmup_factor)}
        return {"lr": poly_schedule(lr, self.poly_power)}

    def describe(self) -> dict:
        """The name and only the shape parameters this schedule uses (what a run records)."""
        used = {"one_cycle": ("pct_start", "div", "div_final", "moms"), "flat_cos": ("div_final",), "constant": (),
                "step": ("step_start", "step_every", "step_gamma"), "warmup_cosine": ("warmup_epochs", "warmup_factor"),
                "poly": ("poly_power",)}[self.name]
        return {"name": self.name, **{k: getattr(self, k) for k in used}}


def step_schedule(lr: float, start: float = 0.0, every: float = 0.3, gamma: float = 0.5) -> Sched:
    """LR at progress ``pos``: ``lr * gamma ** floor((pos - start) / every)`` once pos > start + every."""
    def sched(pos: float) -> float:
        if pos < start + every - 1e-9:
            return lr
        return lr * gamma ** math.floor((pos - start) / every + 1e-9)
    return sched


def warmup_cosine_schedule(lr: float, epochs: int, warmup_epochs: float = 1.0, warmup_factor: float = 10.0) -> Sched:
    """Linear warmup from lr / warmup_factor to lr over ``warmup_epochs``, then cosine to 0."""
    warm = min(warmup_epochs / max(epochs, 1), 0.5) if epochs > 1 else 0.0

    def sched(pos: float) -> float:
        if pos < warm:
            return lr / warmup_factor + (lr - lr / warmup_factor) * pos / warm
        p = (pos - warm) / max(1e-9, 1 - warm)
        return lr * (1 + math.cos(math.pi * min(p, 1.0))) / 2
    return sched


def poly_schedule(lr: float, power: float = 0.9) -> Sched:
    """lr · (1 − pos)^power (DeepLab's poly decay, SE-LCN's segmenter)."""
    return lambda pos: lr * max(0.0, 1.0 - pos) ** power


def resumed(sched: Sched, start: int, epochs: int) -> Sched:
    """The same schedule for a fit that restarts at epoch ``start`` of ``epochs`` (fastai's pos then runs 0 → 1
    over the remaining epochs only)."""
    if start == 0:
        return sched
    a = start / epochs
    return lambda pos: sched(a + pos * (1 - a))
