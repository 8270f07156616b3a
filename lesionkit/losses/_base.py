"""fastai hooks shared by the classification losses: ``activation`` and ``decodes`` (used by ``Learner.get_preds``)."""
from __future__ import annotations

import torch
import torch.nn as nn


class FastaiLoss(nn.Module):
    """A loss that fastai treats like ``CrossEntropyLossFlat``: softmax activation, argmax decoding."""

    class_dim: int = -1

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=self.class_dim)

    def decodes(self, x: torch.Tensor) -> torch.Tensor:
        return x.argmax(dim=self.class_dim)


def as_long(target: torch.Tensor) -> torch.Tensor:
    """Targets as a plain long tensor (fastai passes ``TensorCategory`` subclasses)."""
    return torch.as_tensor(target).as_subclass(torch.Tensor).long()


def plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_subclass(torch.Tensor) if isinstance(x, torch.Tensor) else torch.as_tensor(x)
