"""Pick the layer Grad-CAM-style methods look at, for lesionkit, timm, fastai and plain torch models.

Order of preference: an explicit module or dotted name; ``default_cfg["cam_layer"]`` (every lesionkit model sets
it); for fastai's ``Sequential(TimmBody, head)`` the same rule applied to the wrapped timm model; otherwise the
block that produces the network's last spatial feature map, found by running the model once with forward hooks.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LayerResolutionError(ValueError):
    """The CAM layer could not be found; the message says which names exist and how to pass one."""


def _cfg(model: nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None)
    return dict(cfg) if isinstance(cfg, dict) else {}


def _get(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        top = ", ".join(n for n, _ in model.named_children()) or "(none)"
        raise LayerResolutionError(
            f"layer {name!r} does not exist in {type(model).__name__}; top-level children are: {top}. "
            "Pass layer= as a dotted module name (see model.named_modules()) or as the module itself."
        ) from err


def _timm_inner(model: nn.Module) -> tuple[str, nn.Module] | None:
    """fastai's ``vision_learner`` wraps timm models as ``Sequential(TimmBody(model), head)``."""
    if isinstance(model, nn.Sequential) and len(model) > 0:
        body = model[0]
        inner = getattr(body, "model", None)
        if isinstance(inner, nn.Module) and _cfg(inner):
            return "0.model", inner
    return None


def _example_input(model: nn.Module, example: torch.Tensor | None, size: int = 64) -> torch.Tensor:
    if example is not None:
        return example[:1].detach().as_subclass(torch.Tensor)
    chans = int(_cfg(model).get("input_size", (3,))[0])
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(1, chans, size, size, device=device)


def find_last_spatial_layer(
    model: nn.Module, example: torch.Tensor | None = None, forward: str = "forward", **forward_kw: Any
) -> str:
    """Name of the deepest container module that outputs the last 4-D feature map with spatial size > 1.

    The model is run once under ``no_grad`` with forward hooks. Several modules can output the same tensor
    (``layer4``, ``layer4.1``, ``layer4.1.act2``): all give the same Grad-CAM, and we report the last block
    (``layer4.1``) rather than a bare activation so the name reads well in figures.
    """
    records: list[tuple[torch.Tensor, str]] = []  # tensors kept alive so identity checks are exact
    hooks = []

    def hook(name: str):
        def fn(module: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:
                records.append((out, name))

        return fn

    for name, module in model.named_modules():
        if name:
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            getattr(model, forward)(_example_input(model, example), **forward_kw)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not records:
        raise LayerResolutionError(
            f"{type(model).__name__} produced no 4-D feature map; Grad-CAM needs a convolutional layer: pass layer=."
        )
    last = records[-1][0]
    names = [name for out, name in records if out is last]
    containers = [n for n in names if any(True for _ in model.get_submodule(n).children())]
    return max(containers or names, key=lambda n: n.count("."))


def resolve_layer(
    model: nn.Module, layer: str | nn.Module = "auto", example: torch.Tensor | None = None
) -> tuple[str, nn.Module]:
    """Return ``(dotted_name, module)`` for the CAM layer of ``model``.

    ``example`` is a real input batch, used only when the layer must be found by running the model (models that
    need more than an image, e.g. multimodal ones, always declare ``default_cfg["cam_layer"]``).
    """
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise LayerResolutionError(f"the layer module passed is not part of {type(model).__name__}")
    if layer != "auto":
        return layer, _get(model, layer)
    cam = _cfg(model).get("cam_layer")
    if cam:
        return cam, _get(model, cam)
    wrapped = _timm_inner(model)
    if wrapped is not None:
        prefix, inner = wrapped
        cam = _cfg(inner).get("cam_layer")
        if not cam:
            forward = "forward_features" if hasattr(inner, "forward_features") else "forward"
            cam = find_last_spatial_layer(inner, example, forward=forward)
        return f"{prefix}.{cam}", _get(model, f"{prefix}.{cam}")
    forward = "forward_features" if hasattr(model, "forward_features") else "forward"
    name = find_last_spatial_layer(model, example, forward=forward)
    return name, _get(model, name)
