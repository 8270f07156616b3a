"""Attention residual learning (ARL; Zhang et al., TMI 2019) blocks on timm's ResNet blocks.

y = ReLU(F(x) + x̃ + α · A(F(x)) ⊙ x̃), where F is the residual branch and x̃ the (downsampled) shortcut.

Paper vs code (spec methods-a §2.1): the paper describes A as a *spatial* softmax of each channel of F(x) and α as
a learnable scalar; the unofficial code (Vipermdl/ARL) applies ``Softmax2d`` (softmax *across channels* at every
pixel) with a fixed α = 0.001. ``mode="spatial"`` with a learnable α is the default here; ``mode="channel",
learn_alpha=False`` reproduces the code. The paper's initial α was not verified: 0.001 (the code's value) is used.
The blocks subclass timm's, so parameter names match timm's ResNet and ImageNet ResNet weights load by name.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck

from lesionkit.layers._record import RecordsMap

ARL_MODES = ("spatial", "channel")


class ResidualAttention(RecordsMap, nn.Module):
    """The ARL term α · A(F(x)) ⊙ x̃. One parameter (α) when learnable, none otherwise.

    Recorded map (B, 1, H, W): the channel mean of A for ``mode="spatial"`` (a spatial distribution summing to 1),
    the channel max of A for ``mode="channel"`` (its channel mean is the constant 1/C).
    """

    def __init__(self, mode: str = "spatial", alpha: float = 0.001, learn_alpha: bool = True) -> None:
        super().__init__()
        if mode not in ARL_MODES:
            raise ValueError(f"ARL mode must be one of {ARL_MODES}, not {mode!r}")
        self.mode = mode
        if learn_alpha:
            self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        else:
            self.register_buffer("alpha", torch.tensor(float(alpha)), persistent=False)

    def mask(self, residual: torch.Tensor) -> torch.Tensor:
        if self.mode == "spatial":
            return residual.flatten(2).softmax(-1).reshape_as(residual)
        return residual.softmax(dim=1)

    def forward(self, residual: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        attn = self.mask(residual)
        if self.record:
            self._keep(attn.mean(1, keepdim=True) if self.mode == "spatial" else attn.amax(1, keepdim=True))
        return self.alpha * attn * shortcut


def _pop_arl(kwargs: dict[str, Any]) -> ResidualAttention:
    return ResidualAttention(kwargs.pop("arl_mode", "spatial"), kwargs.pop("alpha", 0.001),
                             kwargs.pop("learn_alpha", True))


class ARLBottleneck(Bottleneck):
    """timm's ResNet bottleneck with the ARL term (ARL-50). Extra kwargs: arl_mode, alpha, learn_alpha."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        arl = _pop_arl(kwargs)
        super().__init__(*args, **kwargs)
        self.arl = arl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.bn1(self.conv1(x))
        out = self.act1(out)
        out = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(out)))))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        attention = self.arl(out, shortcut)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.act3(out + shortcut + attention)


class ARLBasicBlock(BasicBlock):
    """timm's ResNet basic block with the ARL term (ARL-18/34; the unofficial code's version of it crashes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        arl = _pop_arl(kwargs)
        super().__init__(*args, **kwargs)
        self.arl = arl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.aa(self.act1(self.drop_block(self.bn1(self.conv1(x)))))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        attention = self.arl(out, shortcut)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.act2(out + shortcut + attention)
