"""Multi-sample dropout head of the SIIM-ISIC 2020 1st-place solution."""
from __future__ import annotations

import torch
import torch.nn as nn


class MultiSampleDropoutHead(nn.Module):
    """out = (1/n) Σ_k Linear(Dropout_k(h)) with one shared Linear; at eval it equals a single Linear."""

    def __init__(self, in_features: int, num_classes: int, n_samples: int = 5, p: float = 0.5) -> None:
        super().__init__()
        self.dropouts = nn.ModuleList(nn.Dropout(p) for _ in range(n_samples))
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.dropouts:
            return self.fc(x)
        return torch.stack([self.fc(drop(x)) for drop in self.dropouts]).mean(0)
