"""The one prediction path: named test-time views, one rule from logits to probabilities, one averaging choice.

Views act on the last two (spatial) axes, so patch grids (B, P, 3, h, w) flip each patch in place. A loader that
already yields stacked views (B, V, 3, S, S) — ARL's multi-scale crops, an ordered multi-crop grid, see
``lesionkit.data.views.tta_dl`` — says so with ``stacked_views = True``. ``average="probs"`` averages the views'
probabilities (the 1st place, "Going Smaller"); ``"logits"`` averages logits, then converts (what the ARL code does
with its 9 views).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from lesionkit.engine.speed import inference, speed_of
from lesionkit.losses import plain

VIEWS = ("none", "flips4", "dihedral8")
AVERAGES = ("probs", "logits")


def view_name(tta: bool | str) -> str:
    """``False`` → "none", ``True`` → "flips4", "flips8" → "dihedral8" (the same 8 views), else the name."""
    name = ("flips4" if tta else "none") if isinstance(tta, bool) else str(tta)
    name = {"flips8": "dihedral8"}.get(name, name)
    if name not in VIEWS:
        raise ValueError(f"unknown TTA {tta!r}: use one of {VIEWS} (or True for flips4)")
    return name


def tta_views(x: torch.Tensor, tta: bool | str = False) -> list[torch.Tensor]:
    """"none": the input; "flips4": identity, horizontal, vertical and both flips; "dihedral8": those four and each
    of them transposed (the 8 symmetries of the square: the multimodal 1st place's 8 views, §A.8)."""
    name = view_name(tta)
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


def _combine(logits: list[torch.Tensor], average: str) -> torch.Tensor:
    if average == "logits":
        return to_probs(torch.stack(logits).mean(0))
    return torch.stack([to_probs(v) for v in logits]).mean(0)


def predict(model: nn.Module, dl: Any, views: bool | str = "none", average: str = "probs",
            n_inp: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities (N, K), integer targets or None) of ``model`` over ``dl`` in eval mode.

    views: a name of :data:`VIEWS` applied to the first input (other inputs, e.g. metadata, pass unchanged);
    ignored for a loader with ``stacked_views``. n_inp: inputs per batch (default: 2 for multimodal models, which
    have ``n_meta``, else 1 — never a fastai test loader's own count, which is "all items but the last").
    Only the first target is read from batches that carry more (e.g. diagnosis factors). Runs under
    ``inference_mode`` in the precision and memory format the model was fitted with
    (:func:`lesionkit.engine.speed.inference`), on CPU and GPU alike.
    """
    if average not in AVERAGES:
        raise ValueError(f"average={average!r}: choose one of {AVERAGES}")
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    n_inp = n_inp or (2 if getattr(model, "n_meta", 0) else 1)
    stacked = getattr(dl, "stacked_views", False)
    channels_last = speed_of(model).channels_last
    probs, ys = [], []
    with inference(model):
        for batch in dl:
            xs = [plain(b).to(device) for b in batch[:n_inp]]
            if channels_last and xs[0].ndim == 4:  # the fit's layout (4-D images; stacked views are reshaped)
                xs[0] = xs[0].contiguous(memory_format=torch.channels_last)
            if stacked:
                b, v = xs[0].shape[:2]
                out = model(xs[0].reshape(b * v, *xs[0].shape[2:])).float()
                p = _combine(list(out.reshape(b, v, -1).transpose(0, 1)), average)
            else:
                p = _combine([model(x, *xs[1:]).float() for x in tta_views(xs[0], views)], average)
            probs.append(p.cpu())
            if len(batch) > n_inp:
                ys.append(plain(batch[n_inp]).cpu())
    return torch.cat(probs).numpy(), (torch.cat(ys).numpy().astype(int) if ys else None)


def predict_learner(learn: Any, dl: Any, views: bool | str = "none", average: str = "probs",
                    n_inp: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`predict` of a Learner's model with the *training* loaders' input count (fastai's ``test_dl``
    recounts it, wrongly for (image, y, diagnosis factor) batches). No fastai callbacks run. The model goes to the
    loaders' device first (a stage trained by launched workers comes back on the CPU)."""
    if getattr(learn.dls, "device", None) is not None:
        learn.model.to(learn.dls.device)
    return predict(learn.model, dl, views=views, average=average, n_inp=n_inp or getattr(learn.dls, "n_inp", None))
