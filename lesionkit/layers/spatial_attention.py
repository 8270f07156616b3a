"""CBAM-style spatial attention: one sigmoid map from the channel max and mean."""
from __future__ import annotations

import torch
import torch.nn as nn

from lesionkit.layers._record import RecordsMap


class SpatialAttention(RecordsMap, nn.Module):
    """y = x ⊙ σ(Conv_k([max_c x; mean_c x])).

    "Going Smaller" Spatial-B3 calls a ``My_SpatialAttention()`` whose definition is missing from its repository; the
    spec's most plausible form (UNVERIFIED) is this block with k = 7 and no bias: 98 parameters. CBAM uses it with
    k = 49 and a bias (External-Attention defaults). timm's ``SpatialAttn`` adds a BatchNorm, so it is not reused.
    Recorded map: (B, 1, H, W). The conv starts at zero, so the gate starts uniform (0.5) and an ImageNet backbone's
    features keep their pattern: with PyTorch's default init the gate saturated on pretrained activations (channel
    maxima of 10-20) and zeroed most positions, and Spatial-B3 stayed at chance in 5 demo epochs (AUC 0.46).
    """

    def __init__(self, channels: int | None = None, kernel_size: int = 7, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=bias)
        nn.init.zeros_(self.conv.weight)  # a uniform 0.5 gate at the start: see the class docstring

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(1, keepdim=True), x.mean(1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.gate(x)
        self._keep(attn)
        return x * attn
