"""Patch-level attention of Gessert et al. (TBME 2019): gates that see all patches of an image at once."""
from __future__ import annotations

import torch
import torch.nn as nn

from lesionkit.layers._record import RecordsMap


class PatchGate(RecordsMap, nn.Module):
    """SEPatchLayer of the released code: one sigmoid gate per patch from all P patch means.

    m_p = mean of patch p over every non-patch axis; a = σ(W m + b), W ∈ R^{P×P}; x_p ← a_p · x_p.
    Works on images (B, P, 3, H, W) at the input and on pooled features (B, P, F) at the end.
    Parameters: P² + P. Recorded map: the gates, (B, P).
    """

    def __init__(self, n_patches: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_patches, n_patches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, p = x.shape[:2]
        gates = torch.sigmoid(self.fc(x.reshape(b, p, -1).mean(-1)))
        self._keep(gates)
        return x * gates.reshape(b, p, *([1] * (x.dim() - 2)))


class PatchSE(RecordsMap, nn.Module):
    """In-block variant (from the paper's description, not in the released code): SE channel attention whose
    squeeze pools over the positions of *all* P patches of an image, so every patch is re-weighted with global context.

    UNCERTAIN: the placement (here after every backbone stage) and the reduction ratio (16) were not verified against
    the PDF; no commit of the official repository contains this module. Input (B·P, C, H, W), patches of one image
    consecutive. Recorded map: channel gates, (B, C).
    """

    def __init__(self, channels: int, n_patches: int, reduction: int = 16) -> None:
        super().__init__()
        self.n_patches = n_patches
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bp, c = x.shape[:2]
        if bp % self.n_patches:
            raise ValueError(f"PatchSE: batch {bp} is not a multiple of n_patches={self.n_patches}")
        squeeze = x.mean((2, 3)).reshape(bp // self.n_patches, self.n_patches, c).mean(1)
        gates = torch.sigmoid(self.fc2(self.act(self.fc1(squeeze))))
        self._keep(gates)
        return x * gates.repeat_interleave(self.n_patches, dim=0)[:, :, None, None]

    def as_hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook that re-weights a backbone stage's output; a bound method, so ``copy.deepcopy`` of the model
        re-binds it to the copied block (a closure would keep pointing at the original)."""
        return self(output)
