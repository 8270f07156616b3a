"""CBAM block as in External-Attention-pytorch (the assumed source of "Going Smaller" S2-CBAM-B3)."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers.cbam import ChannelAttn

from lesionkit.layers._record import RecordsMap
from lesionkit.layers.spatial_attention import SpatialAttention


class CBAM(RecordsMap, nn.Module):
    """y = x′ ⊙ M_s(x′) + x with x′ = x ⊙ M_c(x) (note the residual, absent from timm's ``CbamModule``).

    Channel attention is timm's ``ChannelAttn`` with a bias-free MLP of width ⌊C/reduction⌋ (External-Attention's
    width; timm would round it up). Spatial attention is a k×k conv with bias over [max; mean].
    Parameters: 2·C·⌊C/16⌋ + 2·k² + 1 (k = 49 gives 4,803 + 2·C·⌊C/16⌋).

    Args:
        channels: input channels C.
        reduction: channel-MLP reduction (16).
        kernel_size: spatial kernel. 49 (default) is External-Attention's default, which "Going Smaller" most likely
            used, even on 12×12 maps; the CBAM paper uses 7.
        residual: add the input back (External-Attention's CBAMBlock does).
        spatial_init: the spatial conv's initial weights, "pytorch" (External-Attention's: its ``init_weights`` is
            never called) or "zeros" (see ``SpatialAttention``).

    Recorded map: the spatial map M_s, (B, 1, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 49, residual: bool = True,
                 spatial_init: str = "pytorch") -> None:
        super().__init__()
        self.channel = ChannelAttn(channels, rd_channels=max(1, channels // reduction), mlp_bias=False)
        self.spatial = SpatialAttention(kernel_size=kernel_size, bias=True, init=spatial_init)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refined = self.channel(x)
        attn = self.spatial.gate(refined)
        self._keep(attn)
        out = refined * attn
        return out + x if self.residual else out
