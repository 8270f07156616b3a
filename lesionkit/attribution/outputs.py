"""Which output of a model a map explains: one head of a multi-head model, both classes of a one-logit model.

Kept apart from the methods (``attribution.core``) because it is about the model's outputs, not about any method:
the precompute step reads the same head rules to store what the viewer shows.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def model_cfg(model: nn.Module) -> dict[str, Any]:
    """timm-style config of the model, looking through fastai's ``Sequential(TimmBody, head)``."""
    inner = getattr(model[0], "model", None) if isinstance(model, nn.Sequential) and len(model) else None
    for candidate in (model, inner):
        cfg = getattr(candidate, "pretrained_cfg", None) or getattr(candidate, "default_cfg", None)
        if isinstance(cfg, dict) and cfg:
            return dict(cfg)
    return {}


class SelectHead(nn.Module):
    """Multi-head models return (N, n_heads, n_classes) logits (the artefact classifier): attribute one head."""

    def __init__(self, model: nn.Module, head: int) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, *args: Any) -> torch.Tensor:
        return self.model(*args)[:, self.head]


def head_index(model: nn.Module, head: int | str | None, shape: tuple[int, ...]) -> int | None:
    names = list(model_cfg(model).get("heads") or [])
    if len(shape) == 2:
        if head is not None:
            raise ValueError(f"head={head!r} given, but the model returns plain (N, n_classes) logits")
        return None
    if len(shape) != 3:
        task = model_cfg(model).get("task")
        hint = " (a segmentation model: attribute a classifier instead)" if task == "segmentation" else ""
        raise ValueError(f"the model must return (N, n_classes) logits, got shape {shape}{hint}")
    if head is None:
        listing = f" ({', '.join(names)})" if names else ""
        raise ValueError(
            f"the model returns {shape[1]} heads of logits{listing}, shape {shape}: pass head=<index or name>")
    if isinstance(head, str):
        if head not in names:
            raise ValueError(f"unknown head {head!r}; the model's heads are: {', '.join(names) or '(unnamed)'}")
        return names.index(head)
    if not 0 <= int(head) < shape[1]:
        raise ValueError(f"head={head} out of range for {shape[1]} heads")
    return int(head)


def logits_of(model: nn.Module, head: int | str | None, out: torch.Tensor) -> torch.Tensor:
    """(N, n_classes) logits from a model's output: a multi-head model's ``head``."""
    idx = head_index(model, head, tuple(out.shape))
    return out if idx is None else out[:, idx]


def two_sided(logits: torch.Tensor) -> torch.Tensor:
    """A binary model's one logit z as two class logits [-z/2, z/2]: their softmax is [1 - sigmoid(z), sigmoid(z)],
    so class 0 (the rest) and class 1 (the positive class) each have a score to explain. Other logits unchanged."""
    return torch.cat([-logits / 2, logits / 2], dim=1) if logits.ndim == 2 and logits.shape[1] == 1 else logits


class TwoSided(nn.Module):
    """``fwd``'s output through :func:`two_sided` (what the pixel methods attribute for a one-logit model)."""

    def __init__(self, fwd: nn.Module) -> None:
        super().__init__()
        self.fwd = fwd

    def forward(self, *args: Any) -> torch.Tensor:
        return two_sided(self.fwd(*args))


def then_two_sided(to_logits: Any, out: torch.Tensor) -> torch.Tensor:
    return two_sided(to_logits(out))


__all__ = ["SelectHead", "TwoSided", "head_index", "logits_of", "model_cfg", "then_two_sided", "two_sided"]
