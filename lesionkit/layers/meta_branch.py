"""Metadata MLP of the SIIM-ISIC 2020 1st-place solution (reused by the multimodal model)."""
from __future__ import annotations

import torch.nn as nn


class MetaBranch(nn.Sequential):
    """n_meta → 512 → 128: [Linear → BN1d → SiLU → Dropout(0.3)] then [Linear → BN1d → SiLU].

    Swish in the originals is SiLU. ``order="act_bn"`` gives the "Going Smaller" baseline's Linear → SiLU → BN order.
    Parameters for 14 → 512 → 128: 74,624.
    """

    def __init__(self, n_meta: int, dims: tuple[int, ...] = (512, 128), dropout: float = 0.3,
                 order: str = "bn_act") -> None:
        if order not in ("bn_act", "act_bn"):
            raise ValueError(f"MetaBranch order must be 'bn_act' or 'act_bn', not {order!r}")
        layers: list[nn.Module] = []
        width = n_meta
        for i, out in enumerate(dims):
            pair = [nn.BatchNorm1d(out), nn.SiLU()]
            layers += [nn.Linear(width, out), *(pair if order == "bn_act" else pair[::-1])]
            if i < len(dims) - 1:
                layers.append(nn.Dropout(dropout))
            width = out
        super().__init__(*layers)
        self.out_features = width
