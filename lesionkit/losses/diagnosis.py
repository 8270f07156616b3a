"""Diagnosis-guided loss weighting (Gessert et al., TBME 2019): weight each example by how its label was confirmed.

L = (1/B) Σ_i d_i · w_{y_i} · CE_i with d = histo 4, confocal 3, follow_up 2, consensus 1 (HAM10000 ``dx_type``),
a plain batch mean as in the code's options 6/7 (PyTorch's weighted CE would divide by Σ w instead).
Paper vs code: the paper's comment says "only for nevus"; the code's stale-``key`` bug applies the factor to all
classes. All classes is the default (what the code ran); ``only_class`` restricts it to one class (e.g. nevi).
With fastai, yield the factors as a second target so the loss is called as ``loss(pred, label, factor)``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lesionkit.losses._base import FastaiLoss, as_long, plain

DX_TYPE_FACTORS: dict[str, float] = {"histo": 4.0, "confocal": 3.0, "follow_up": 2.0, "consensus": 1.0}


def dx_type_factors(dx_type: Sequence[str], labels: Sequence[int] | None = None, only_class: int | None = None,
                    factors: Mapping[str, float] = DX_TYPE_FACTORS) -> torch.Tensor:
    """Per-example factors d_i from ``dx_type`` strings; with ``only_class``, examples of other classes get 1."""
    values = []
    for row, kind in enumerate(dx_type):
        key = str(kind).strip().lower().replace("-", "_")
        if key not in factors:
            raise ValueError(f"dx_type row {row}: unknown value {kind!r}; expected one of {sorted(factors)}")
        values.append(float(factors[key]))
    d = torch.tensor(values, dtype=torch.float32)
    if only_class is not None:
        if labels is None:
            raise ValueError("only_class needs the labels of the examples")
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        d = torch.where(y == only_class, d, torch.ones_like(d))
    return d


class DiagnosisGuidedCrossEntropy(FastaiLoss):
    """Cross-entropy with class weights w and per-example diagnosis factors d, averaged over the batch."""

    def __init__(self, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        pred, target = plain(pred), as_long(target)
        loss = F.cross_entropy(pred, target, reduction="none")
        if self.weight is not None:
            loss = loss * self.weight.to(loss.dtype)[target]
        if factor is not None:
            loss = loss * plain(factor).to(loss.dtype)
        return loss.mean()
