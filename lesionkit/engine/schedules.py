"""Learning-rate schedules as functions of training progress ``pos`` in [0, 1] (fastai's ParamScheduler contract).

One definition per schedule the papers use, so every fit (fresh or resumed) is the same code path:
"one_cycle" and "flat_cos" (fastai's, with the same constants as ``fit_one_cycle`` / ``fit_flat_cos``), "constant",
"step" (Gessert et al.: halve every 10 of 50 epochs after epoch 10; ARL: at 30/60/90 of 100), "warmup_cosine" (the
ISIC 2020 1st place and "Going Smaller": one warmup epoch from lr/10, then cosine to 0) and "poly" (SE-LCN's
segmenter: lr · (1 − pos)^0.9). Every schedule is stepped every batch by default; ``stepping="epoch"`` holds each
epoch at the value of its first batch, as a torch scheduler stepped once per epoch does (the 1st place's and its
followers' code: their warmup_cosine runs epoch 1 at lr/10, epoch 2 at lr and never reaches 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

SCHEDULES = ("one_cycle", "flat_cos", "constant", "step", "warmup_cosine", "poly")
STEPPINGS = ("batch", "epoch")
Sched = Callable[[float], float]


@dataclass(frozen=True)
class Schedule:
    """A schedule by name plus its shape parameters (fractions of training, so short runs keep the paper's shape).

    step: ``lr · gamma^floor((pos − step_start) / step_every)`` once past the first milestone;
    warmup_cosine: ``warmup_epochs`` linear warmup from lr/``warmup_factor``; poly: power ``poly_power``;
    one_cycle: ``pct_start``, ``div``, ``div_final`` and momentum ``moms`` as fastai's fit_one_cycle.
    stepping: "batch" (a new value every batch) or "epoch" (each epoch at its first batch's value).
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
    stepping: str = "batch"

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule={self.name!r}: choose one of {SCHEDULES}")
        if self.stepping not in STEPPINGS:
            raise ValueError(f"stepping={self.stepping!r}: choose one of {STEPPINGS}")

    def scheds(self, lr: float, epochs: int) -> dict[str, Sched]:
        """{hyperparameter: f(pos)} for fastai's ParamScheduler."""
        scheds = self._per_batch(lr, epochs)
        if self.stepping == "epoch":
            return {k: per_epoch(f, epochs) for k, f in scheds.items()}
        return scheds

    def _per_batch(self, lr: float, epochs: int) -> dict[str, Sched]:
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
        return {"name": self.name, **{k: getattr(self, k) for k in used},
                **({"stepping": self.stepping} if self.stepping != "batch" else {})}


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


def per_epoch(sched: Sched, epochs: int) -> Sched:
    """``sched`` held constant through each epoch at its value at the epoch's start (a scheduler stepped once per
    epoch): epoch k of ``epochs`` runs at ``sched(k / epochs)``."""
    def stepped(pos: float) -> float:
        return sched(min(math.floor(pos * epochs + 1e-6), epochs - 1) / epochs)
    return stepped


def resumed(sched: Sched, start: int, epochs: int) -> Sched:
    """The same schedule for a fit that restarts at epoch ``start`` of ``epochs`` (fastai's pos then runs 0 → 1
    over the remaining epochs only)."""
    if start == 0:
        return sched
    a = start / epochs
    return lambda pos: sched(a + pos * (1 - a))
