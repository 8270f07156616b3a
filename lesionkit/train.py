"""fastai training glue: a Learner for any lesionkit/timm model, run-record callbacks, prediction with TTA.

fastai does the loop; this module only adds what a research run needs on top: history written to the run record
after every epoch (so a killed run keeps it), best-model selection on a named metric, headless-friendly logging,
and mixed precision only where there is a GPU.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import fastai.callback.schedule  # noqa: F401  (patches Learner.fit_one_cycle / fit_flat_cos)
from fastai.callback.core import Callback
from fastai.callback.tracker import SaveModelCallback
from fastai.learner import Learner
from torch import nn

from .losses._base import plain as plain_tensor  # fastai tensor subclasses -> torch.Tensor
from .runs import Run, atomic_write


class RunHistory(Callback):
    """Writes history.csv into the run record after every epoch (atomically), and the epoch's time."""

    order = 70  # after Recorder has the epoch's values

    def __init__(self, run: Run, fname: str = "history.csv", stage: str = "") -> None:
        self.record, self.fname, self.stage = run, fname, stage  # fastai owns `self.run`
        self.rows: list[dict[str, Any]] = []

    def before_fit(self) -> None:
        # get_preds/validate also fire fit/epoch events (as fastai's TrackerCallback notes): record real fits only
        self.active = not hasattr(self.learn, "gather_preds") and not hasattr(self.learn, "lr_finder")

    def before_epoch(self) -> None:
        self._t0 = time.perf_counter()

    def after_epoch(self) -> None:
        if not self.active:
            return
        names = [str(n) for n in self.recorder.metric_names[1:-1]]  # drop 'epoch' and 'time'
        values = [v.item() if hasattr(v, "item") else v for v in self.recorder.log[1:len(names) + 1]]
        row = {"stage": self.stage, "epoch": self.epoch, **dict(zip(names, values)),
               "lr": float(self.opt.hypers[-1]["lr"]), "time": round(time.perf_counter() - self._t0, 2)}
        self.rows.append(row)
        path = self.record.dir / self.fname
        previous = pd.read_csv(path) if path.exists() and self.stage else None
        df = pd.DataFrame(self.rows)
        if previous is not None:
            df = pd.concat([previous[previous["stage"] != self.stage], df], ignore_index=True)
        atomic_write(path, df.to_csv(index=False))


def param_groups_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Backbone / head parameter groups for discriminative learning rates (head = the classifier)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    body = [p for p in model.parameters() if id(p) not in head_ids]
    head_params = [p for p in model.parameters() if id(p) in head_ids]
    return [body, head_params] if head_params and body else [list(model.parameters())]


def torch_adamw(params: Any, **kw: Any) -> Any:
    """fastai optimiser wrapping torch's AdamW: its fused/foreach kernels step much faster than fastai's per-tensor
    Python Adam, which matters on CPU; one-cycle and discriminative learning rates work as usual."""
    from fastai.optimizer import OptimWrapper

    return OptimWrapper(params, opt=torch.optim.AdamW, **kw)


def make_learner(dls: Any, model: nn.Module, run: Run, loss_func: Callable | None = None,
                 metrics: Sequence[Any] = (), monitor: str = "valid_loss", opt_func: Callable | None = None,
                 stage: str = "") -> Learner:
    """A plain fastai Learner (works for custom and multi-input models) writing into the run record."""
    learn = Learner(dls, model, loss_func=loss_func or nn.CrossEntropyLoss(), metrics=list(metrics),
                    opt_func=opt_func or torch_adamw, splitter=param_groups_splitter, path=run.dir, model_dir="checkpoints",
                    cbs=[RunHistory(run, stage=stage)])
    learn.lesionkit_monitor = monitor
    if torch.cuda.is_available():
        learn.to_fp16()
    return learn


def fit(learn: Learner, epochs: int, lr: float, schedule: str = "one_cycle", monitor: str | None = None,
        headless: bool = True, fname: str = "best") -> Learner:
    """Train with the chosen schedule and keep the best epoch by `monitor` (reloaded at the end).

    schedule: "one_cycle" (fastai's default), "flat_cos" (flat then cosine annealing) or "constant".
    """
    monitor = monitor or getattr(learn, "lesionkit_monitor", "valid_loss")
    cbs = [SaveModelCallback(monitor=monitor, fname=fname, with_opt=False)]
    schedules = {"one_cycle": learn.fit_one_cycle, "flat_cos": learn.fit_flat_cos,
                 "constant": lambda n, lr, cbs: learn.fit(n, lr, cbs=cbs)}
    if schedule not in schedules:
        raise ValueError(f"schedule={schedule!r}: choose one of {list(schedules)}")
    ctx = learn.no_bar() if headless else _nullcontext()
    with ctx:
        schedules[schedule](epochs, lr, cbs=cbs)
    return learn


def drop_checkpoints(learn: Learner) -> None:
    """Remove the per-epoch checkpoint folder once the final weights are saved (a killed run keeps it)."""
    import shutil

    shutil.rmtree(learn.path / learn.model_dir, ignore_errors=True)


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


TTA_VIEWS = ("none", "flips4", "dihedral8")


def tta_views(x: torch.Tensor, tta: bool | str = False) -> list[torch.Tensor]:
    """Test-time views on the last two (spatial) axes, so patch grids (B, P, 3, h, w) flip each patch in place.

    ``False``/"none": the image; ``True``/"flips4": identity, horizontal, vertical and both flips; "dihedral8" (the
    multimodal 1st place, §A.8): those four and each of them transposed.
    """
    name = ("flips4" if tta else "none") if isinstance(tta, bool) else str(tta)
    if name not in TTA_VIEWS:
        raise ValueError(f"unknown TTA {tta!r}: use one of {TTA_VIEWS} (or True for flips4)")
    if name == "none":
        return [x]
    flips = [x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)]
    return flips + [v.transpose(-2, -1) for v in flips] if name == "dihedral8" else flips


def to_probs(logits: torch.Tensor) -> torch.Tensor:
    """Logits → class probabilities; a single logit (BCE models such as ARL) becomes (1 − p, p)."""
    if logits.ndim == 1 or logits.shape[-1] == 1:
        p = torch.sigmoid(logits.reshape(-1))
        return torch.stack([1 - p, p], 1)
    return logits.softmax(-1)


@torch.no_grad()
def predict_probs(model: nn.Module, dl: Any, tta: bool | str = False,
                  n_inp: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities (N, K), integer targets or None) over ``dl`` in eval mode, softmax averaged over the TTA views
    of the first input (see :func:`tta_views`); other inputs (metadata) pass unchanged.

    ``n_inp``: inputs per batch; default 2 for multimodal models (``n_meta``), else 1 (not the loader's ``n_inp``:
    see :func:`predict`). Only the first target is read from batches that carry more (e.g. diagnosis
    factors)."""
    model.eval()
    n_inp = n_inp or (2 if getattr(model, "n_meta", 0) else 1)
    probs, ys = [], []
    for batch in dl:
        xs = [plain_tensor(b) for b in batch[:n_inp]]
        views = [to_probs(model(v, *xs[1:]).float()) for v in tta_views(xs[0], tta)]
        probs.append(torch.stack(views).mean(0).cpu())
        if len(batch) > n_inp:
            ys.append(plain_tensor(batch[n_inp]).cpu())
    return torch.cat(probs).numpy(), (torch.cat(ys).numpy().astype(int) if ys else None)


def predict(learn: Learner, dl: Any, tta: bool | str = False,
            n_inp: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict_probs` of the learner's model (no fastai callbacks run, so no history rows are added).

    ``n_inp`` defaults to the *training* loaders' (the DataBlock's): a fastai test loader recounts it as "all but the
    last item", wrong for batches with extra targets such as (image, y, diagnosis factor)."""
    return predict_probs(learn.model, dl, tta=tta, n_inp=n_inp or getattr(learn.dls, "n_inp", None))
