"""Spatial Group-wise Enhance (SGE; Li et al. 2019), as used by "Going Smaller" SGE-B3."""
from __future__ import annotations

import torch
import torch.nn as nn

from lesionkit.layers._record import RecordsMap


class SpatialGroupEnhance(RecordsMap, nn.Module):
    """SGE: each of ``groups`` channel groups gets one spatial sigmoid map from its similarity to the group's mean.

    y = x ⊙ σ(γ_g · norm(Σ_{c∈g} x_c · GAP(x_c)) + β_g), no residual; 2·groups parameters.

    Args:
        channels: accepted for the "first positional arg is channels" convention (timm's create_attn); unused.
        groups: number of groups G (channels must be divisible by G).
        beta_init: initial β. 0.0 (default) follows External-Attention-pytorch, the assumed origin of the "Going
            Smaller" code (every map starts at σ(0) = 0.5); the SGE paper's own code uses 1.0.

    The std of a 1×1 map is undefined (the original yields NaN); here it is taken as 0, so the map is σ(β).
    Recorded map: (B, G, H, W).
    """

    def __init__(self, channels: int | None = None, groups: int = 8, beta_init: float = 0.0) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.full((1, groups, 1, 1), float(beta_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.groups
        if c % g:
            raise ValueError(f"SpatialGroupEnhance: {c} channels are not divisible by groups={g}")
        xg = x.reshape(b * g, c // g, h, w)
        sim = (xg * xg.mean((2, 3), keepdim=True)).sum(1).reshape(b * g, h * w)
        sim = sim - sim.mean(1, keepdim=True)
        std = sim.std(1, keepdim=True).nan_to_num(0.0) + 1e-5
        t = (sim / std).reshape(b, g, h, w) * self.weight + self.bias
        attn = torch.sigmoid(t)
        self._keep(attn)
        return (xg * attn.reshape(b * g, 1, h, w)).reshape(b, c, h, w)
