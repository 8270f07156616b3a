"""Loss of the artefact/bias classifier: the sum over heads of 2-class cross-entropies (softmax per head)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lesionkit.losses._base import FastaiLoss, as_long, plain


class MultiHeadCrossEntropy(FastaiLoss):
    """pred (B, H, C) logits, target (B, H) class indices: Σ_h CE(pred[:, h], target[:, h])."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = plain(pred), as_long(target)
        if pred.dim() != 3 or target.shape != pred.shape[:2]:
            raise ValueError(f"expected pred (B, H, C) and target (B, H), got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        return sum(F.cross_entropy(pred[:, h], target[:, h]) for h in range(pred.shape[1]))
