"""LDAM loss (Cao et al. 2019): a larger logit margin for rarer classes."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lesionkit.losses._base import FastaiLoss, as_long, plain


def ldam_margins(class_counts: Sequence[int], max_m: float = 0.5) -> torch.Tensor:
    """m_c = max_m · n_c^{-1/4} / max_j n_j^{-1/4} (the rarest class gets ``max_m``)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    if (counts <= 0).any():
        raise ValueError(f"class_counts must all be positive, got {counts.tolist()}")
    m = counts ** -0.25
    return torch.tensor(m * (max_m / m.max()), dtype=torch.float32)


class LDAMLoss(FastaiLoss):
    """CE(s · (z − m_y · onehot(y)), y), optionally class-weighted (PyTorch weighted mean)."""

    def __init__(self, class_counts: Sequence[int], max_m: float = 0.5, s: float = 30.0,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.s = s
        self.register_buffer("margins", ldam_margins(class_counts, max_m))
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = plain(pred), as_long(target)
        shifted = pred - F.one_hot(target, pred.shape[-1]).to(pred.dtype) * self.margins.to(pred.dtype)[target][:, None]
        return F.cross_entropy(self.s * shifted, target, weight=self.weight)
