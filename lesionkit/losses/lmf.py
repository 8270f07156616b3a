""""Going Smaller"'s LMF loss: 0.2 · batch-level focal (class-weighted) + 0.2 · LDAM (s = 10, max_m = 0.8)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lesionkit.losses._base import FastaiLoss
from lesionkit.losses.focal import batch_focal
from lesionkit.losses.ldam import LDAMLoss


class LMFLoss(FastaiLoss):
    """L = α · focal_batch(z, y; w) + β · LDAM(z, y) (spec methods-b §B.6).

    Args:
        class_counts: training samples per class (for the LDAM margins and the default weights).
        alpha, beta: term weights (0.2, 0.2).
        gamma: focal exponent (2).
        max_m, s: LDAM margin scale and logit scale (0.8, 10; LDAM is unweighted, as in the code).
        weight: focal class weights; default (N/n_c) / Σ_j (N/n_j).
    """

    def __init__(self, class_counts: Sequence[int], alpha: float = 0.2, beta: float = 0.2, gamma: float = 2.0,
                 max_m: float = 0.8, s: float = 10.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if weight is None:
            inv = 1.0 / np.asarray(class_counts, dtype=np.float64)
            weight = torch.tensor(inv / inv.sum(), dtype=torch.float32)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32))
        self.ldam = LDAMLoss(class_counts, max_m=max_m, s=s)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        focal = batch_focal(pred, target, self.weight.to(pred.dtype), self.gamma)
        return self.alpha * focal + self.beta * self.ldam(pred, target)
