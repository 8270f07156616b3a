"""The fastai callbacks the engine adds to every fit: history in the run record, best-epoch selection with early
stopping, an atomic per-epoch checkpoint that a resumed fit continues from, and one log line per epoch headless.

Each takes ``start`` (the epoch a resumed fit restarts at): fastai counts the remaining epochs from 0.
"""
from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback, CancelFitException

from lesionkit.engine.seed import rng_state, set_rng_state
from lesionkit.losses import plain
from lesionkit.parallel.distributed import is_main, unwrap
from lesionkit.utils.files import atomic_write


def epoch_values(recorder: Any) -> dict[str, float]:
    """{name: value} of the epoch fastai's Recorder just finished (train_loss, valid_loss, metrics)."""
    names = [str(n) for n in recorder.metric_names[1:-1]]
    values = recorder.values[-1] if recorder.values else []
    # fastai reports None for a metric that saw no batch (an empty shard): NaN, which no selection picks
    return {n: (float(v.item()) if hasattr(v, "item") else math.nan if v is None else float(v))
            for n, v in zip(names, values)}


def save_state_dict(model: torch.nn.Module, path: Path) -> Path:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}, buf)
    return atomic_write(path, buf.getvalue())


def lower_is_better(monitor: str) -> bool:
    """fastai's rule: lower is better for losses and errors, higher for everything else."""
    return "loss" in monitor or "error" in monitor


def is_real_fit(learn: Any) -> bool:
    # get_preds/validate also fire fit/epoch events (as fastai's TrackerCallback notes): act on real fits only
    return not hasattr(learn, "gather_preds") and not hasattr(learn, "lr_finder")


class RunHistory(Callback):
    """history.csv in the run record, rewritten atomically after every epoch. Rows of other stages, and of this
    stage's epochs before ``start`` (a resumed fit), are kept, so each epoch appears once."""

    order = 70  # after Recorder has the epoch's values

    def __init__(self, path: Path, stage: str = "", start: int = 0) -> None:
        self.path, self.stage, self.start = Path(path), stage, start

    def before_fit(self) -> None:
        self.active = is_real_fit(self.learn)
        if not self.active:
            return
        old = pd.read_csv(self.path, keep_default_na=False) if self.path.exists() else pd.DataFrame()
        if len(old) and "stage" in old:
            old["stage"] = old["stage"].astype(str)
            mine = old["stage"] == self.stage
            old = old[~mine | (mine & (old["epoch"] < self.start))]
        self.kept, self.rows = old, []

    def before_epoch(self) -> None:
        self._t0 = time.perf_counter()

    def after_epoch(self) -> None:
        if not self.active:
            return
        row = {"stage": self.stage, "epoch": self.start + self.epoch, **epoch_values(self.recorder),
               "lr": float(self.opt.hypers[-1]["lr"]), "time": round(time.perf_counter() - self._t0, 2)}
        self.rows.append(row)
        df = pd.concat([self.kept, pd.DataFrame(self.rows)], ignore_index=True) if len(self.kept) else \
            pd.DataFrame(self.rows)
        atomic_write(self.path, df.to_csv(index=False))


class BestModel(Callback):
    """Keeps the weights of the best epoch by ``monitor`` in ``path`` (a plain state_dict), reloads them after the
    fit (``weights_only=True``, unlike fastai's SaveModelCallback), and stops after ``patience`` epochs without
    improvement (0: never). Lower is better for losses and errors, higher for everything else (fastai's rule)."""

    order = 61  # after Recorder and the metrics

    def __init__(self, monitor: str, path: Path, patience: int = 0, start: int = 0,
                 state: dict[str, Any] | None = None, reload: bool = True) -> None:
        self.monitor, self.path, self.patience, self.start = monitor, Path(path), patience, start
        self.reload = reload  # False: track and save the best epoch, but leave the last epoch's weights
        self.lower = lower_is_better(monitor)
        state = state or {}
        self.best = state.get("best", math.inf if self.lower else -math.inf)
        self.best_epoch = state.get("best_epoch", -1)
        self.stop = False

    def state(self) -> dict[str, Any]:
        return {"best": float(self.best), "best_epoch": int(self.best_epoch)}

    def before_fit(self) -> None:
        self.active = is_real_fit(self.learn)
        if self.active and self.monitor not in [str(n) for n in self.recorder.metric_names[1:-1]]:
            names = [str(n) for n in self.recorder.metric_names[1:-1]]
            raise ValueError(f"monitor={self.monitor!r} is not computed by this learner; choose one of {names}")

    def after_epoch(self) -> None:
        if not self.active:
            return
        value, epoch = epoch_values(self.recorder)[self.monitor], self.start + self.epoch
        if np.isfinite(value) and (value < self.best if self.lower else value > self.best):
            self.best, self.best_epoch = value, epoch
            save_state_dict(self.learn.model, self.path)
        # early stopping: EpochCheckpoint (the last callback of the epoch) stops the fit, after history and log
        self.stop = bool(self.patience and epoch - self.best_epoch >= self.patience)

    def after_fit(self) -> None:
        if self.active and self.reload and self.path.exists():
            unwrap(self.learn.model).load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))


class EpochCheckpoint(Callback):
    """After every epoch, one atomic file with what a resumed fit needs: model, optimiser, epoch, the best-epoch
    tracker and every RNG state (Python, NumPy, torch, the loaders'). Loadable with ``weights_only=True``."""

    order = 90  # after BestModel, RunHistory and EpochLog: the saved tracker includes this epoch, and an early stop
    # (BestModel.stop) is raised here, once the epoch is recorded

    def __init__(self, path: Path, epochs: int, stage: str, best: BestModel, start: int = 0,
                 resume_from: dict[str, Any] | None = None) -> None:
        self.path, self.epochs, self.stage, self.best, self.start = Path(path), epochs, stage, best, start
        self.resume_from = resume_from

    def before_fit(self) -> None:
        self.active = is_real_fit(self.learn)
        if self.active and self.resume_from is not None:
            self.learn.opt.load_state_dict(self.resume_from["opt"])
            set_rng_state(self.resume_from["rng"], self.dls)
            smooth = self.recorder.smooth_loss  # the train_loss fastai reports is a running average
            smooth.count, smooth.val = int(self.resume_from["smooth_loss"][0]), self.resume_from["smooth_loss"][1]
            if self.resume_from.get("scaler") and getattr(self.learn, "scaler", None) is not None:
                self.learn.scaler.load_state_dict(self.resume_from["scaler"])  # mixed precision on a GPU

    def after_epoch(self) -> None:
        if not self.active:
            return

        state = {"stage": self.stage, "epoch": self.start + self.epoch, "epochs": self.epochs,
                 "model": {k: v.detach().cpu() for k, v in unwrap(self.learn.model).state_dict().items()},
                 "opt": self.learn.opt.state_dict(), "best": self.best.state(), "rng": rng_state(self.dls),
                 "smooth_loss": [self.recorder.smooth_loss.count,  # a plain tensor: fastai's loss types are not
                                 plain(self.recorder.smooth_loss.val.detach().cpu())]}  # weights_only-loadable
        scaler = getattr(self.learn, "scaler", None)
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        if getattr(self.learn, "lesionkit_speed", None) is not None:  # a resumed fit keeps its precision
            state["speed"] = self.learn.lesionkit_speed.name
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self.path, buf.getvalue())
        if self.best.stop:
            raise CancelFitException()


class EpochLog(Callback):
    """One concise line per epoch on stdout (what ``papermill --log-output`` shows for a headless run)."""

    order = 71

    def __init__(self, stage: str, epochs: int, start: int = 0) -> None:
        self.stage, self.epochs, self.start = stage, epochs, start

    def before_epoch(self) -> None:
        self._t0 = time.perf_counter()

    def after_epoch(self) -> None:
        if not is_real_fit(self.learn) or not is_main():  # one line per epoch, not one per process
            return
        shown = " ".join(f"{k} {v:.4g}" for k, v in epoch_values(self.recorder).items())
        prefix = f"{self.stage} " if self.stage else ""
        print(f"{prefix}epoch {self.start + self.epoch + 1}/{self.epochs}: {shown} "
                 f"({time.perf_counter() - self._t0:.1f} s)", flush=True)
