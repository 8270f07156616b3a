"""Focal loss (Lin et al. 2017), per sample; Gessert et al.'s options 10/11 use γ = 0.5 with α = 1 or balanced."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lesionkit.losses._base import FastaiLoss, as_long, plain


class FocalLoss(FastaiLoss):
    """mean_i α_{y_i} (1 − p_{i,y_i})^γ (−log p_{i,y_i}); ``weight`` is α per class (None = 1)."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = plain(pred), as_long(target)
        log_pt = F.log_softmax(pred, dim=-1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - log_pt.exp()) ** self.gamma) * log_pt
        if self.weight is not None:
            loss = loss * self.weight.to(loss.dtype)[target]
        return loss.mean()


def batch_focal(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                gamma: float = 2.0) -> torch.Tensor:
    """"Going Smaller"'s batch-level focal term: CE_w = Σ w_y CE / Σ w_y, then (1 − e^{−CE_w})^γ · CE_w."""
    ce = F.cross_entropy(plain(pred), as_long(target), weight=weight)
    return (1 - torch.exp(-ce)) ** gamma * ce
