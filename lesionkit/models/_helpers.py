"""Shared plumbing for the paper models: default_cfg, pretrained loading, native-map collection."""
from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

import torch
import torch.nn as nn

from lesionkit.pretrained import load_pretrained, parse_pretrained, require_local_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

M = TypeVar("M", bound=nn.Module)


def make_cfg(input_size: tuple[int, int, int], pool_size: tuple[int, int] | None, cam_layer: str,
             mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
             **extra: Any) -> dict[str, Any]:
    """A timm-style default_cfg plus lesionkit's ``cam_layer`` (dotted module name for Grad-CAM-style methods)."""
    cfg = dict(input_size=input_size, pool_size=pool_size, mean=mean, std=std, interpolation="bicubic",
               crop_pct=1.0, num_classes=None, first_conv=None, classifier=None, cam_layer=cam_layer,
               fixed_input_size=False)
    cfg.update(extra)
    return cfg


def build_model(cls: Callable[..., M], pretrained: bool | str, **kwargs: Any) -> M:
    """Instantiate ``cls`` and load pretrained weights into its backbone (``model.pretrained_target()``).

    ``pretrained=True`` is checked before the model is built, so a missing weight file fails at once.
    """
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's factory always passes these
        kwargs.pop(key, None)
    pretrained = parse_pretrained(pretrained)
    if pretrained is True:
        arch = getattr(cls, "backbone_arch_of", lambda **kw: None)(**kwargs)
        require_local_weights(arch)
    model = cls(**kwargs)
    if pretrained:
        arch, target = model.pretrained_target()
        model.pretrained_report = load_pretrained(model, pretrained, arch=arch, target=target)
    return model


def set_cfg(model: nn.Module, cfg: dict[str, Any]) -> None:
    """timm exposes the cfg as both ``pretrained_cfg`` and ``default_cfg``; fastai reads ``default_cfg``."""
    model.pretrained_cfg = cfg
    model.default_cfg = cfg


def stage_channels(stage: nn.Module) -> int:
    """Output channels of a conv stage: the width of its last BatchNorm."""
    norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise ValueError(f"cannot infer output channels of {type(stage).__name__}: it has no BatchNorm2d")
    return norms[-1].num_features


@torch.no_grad()
def collect_maps(model: nn.Module, run: Callable[[], Any],
                 layers: Iterable[tuple[str, nn.Module]]) -> dict[str, torch.Tensor]:
    """Run ``run()`` once with ``record`` switched on for each attention layer and return their ``last_map``s."""
    layers = list(layers)
    for _, layer in layers:
        layer.record = True
    try:
        run()
        return {name: layer.last_map for name, layer in layers if getattr(layer, "last_map", None) is not None}
    finally:
        for _, layer in layers:
            layer.record = False
            layer.last_map = None
