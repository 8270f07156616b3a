"""Small helpers of the paper models: stage widths and native-map collection."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
import torch.nn as nn


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
