"""SE-LCN's E-layer: fuse a one-channel CAM into a backbone feature map."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ELayer(nn.Module):
    """Resize the CAM to the feature map, concatenate it as one extra channel, then Conv1×1 + BN + ReLU.

    Parameters: (C + 1)·C + C (conv with bias) + 2C (BN). The ReLU is not in place so hooks can sit on ``act``.
    """

    def __init__(self, channels: int, cam_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels + cam_channels, channels, kernel_size=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, features: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
        cam = F.interpolate(cam.to(features.dtype), size=features.shape[-2:], mode="bilinear", align_corners=False)
        return self.act(self.bn(self.conv(torch.cat([features, cam], dim=1))))
