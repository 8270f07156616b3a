"""S2-MLP spatial-shift attention (S2Attention of External-Attention-pytorch), as in "Going Smaller" S2-MLP-B3."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _shift(x: torch.Tensor, dim: int, step: int) -> torch.Tensor:
    """Shift ``x`` by one position along ``dim`` (+1 or -1); the border row/column keeps its own value."""
    n = x.shape[dim]
    if n < 2:
        return x
    if step > 0:
        return torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)


def _quarter_shift(x: torch.Tensor, moves: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Split the last (channel) axis into four quarters and shift quarter i by ``moves[i]`` = (dim, step)."""
    c = x.shape[-1]
    bounds = [0, c // 4, c // 2, c * 3 // 4, c]
    parts = [_shift(x[..., bounds[i]:bounds[i + 1]], *moves[i]) for i in range(4)]
    return torch.cat(parts, dim=-1)


def spatial_shift1(x: torch.Tensor) -> torch.Tensor:
    """x: (B, H, W, C). Quarters move +H, -H, +W, -W (out of place; the original's in-place slice copy overlaps)."""
    return _quarter_shift(x, ((1, 1), (1, -1), (2, 1), (2, -1)))


def spatial_shift2(x: torch.Tensor) -> torch.Tensor:
    """x: (B, H, W, C). Quarters move +W, -W, +H, -H."""
    return _quarter_shift(x, ((2, 1), (2, -1), (1, 1), (1, -1)))


class SplitAttention(nn.Module):
    """Softmax over k branches of per-channel weights from the summed branches: Σ_k softmax_k(â)_k ⊙ Z_k."""

    def __init__(self, channels: int, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.mlp1 = nn.Linear(channels, channels, bias=False)
        self.mlp2 = nn.Linear(channels, channels * k, bias=False)

    def forward(self, x_all: torch.Tensor) -> torch.Tensor:
        b, k, h, w, c = x_all.shape
        a = x_all.sum(dim=(1, 2, 3))  # (B, C): sum over branches and positions, as in the original
        weights = self.mlp2(F.gelu(self.mlp1(a))).reshape(b, k, c).softmax(dim=1)
        return (weights[:, :, None, None, :] * x_all).sum(1)


class S2Attention(nn.Module):
    """Linear(C→3C) → two spatial shifts + identity → split attention → Linear(C→C); no residual.

    Parameters for C channels: (3C² + 3C) + C² + 3C² + (C² + C); 431,520 at C = 232. The inner split attention is
    built with the block's own C: External-Attention hard-codes 512 there, which cannot run at 232 channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp1 = nn.Linear(channels, channels * 3)
        self.mlp2 = nn.Linear(channels, channels)
        self.split_attention = SplitAttention(channels, k=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        z = self.mlp1(x.permute(0, 2, 3, 1))
        x_all = torch.stack([spatial_shift1(z[..., :c]), spatial_shift2(z[..., c:2 * c]), z[..., 2 * c:]], dim=1)
        return self.mlp2(self.split_attention(x_all)).permute(0, 3, 1, 2)
