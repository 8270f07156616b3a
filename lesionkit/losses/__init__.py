"""Losses of the five papers; each is an ``nn.Module`` usable as a fastai ``loss_func``."""
from __future__ import annotations

from lesionkit.losses._base import plain
from lesionkit.losses.class_weights import (
    balanced_class_weights, class_counts, class_weights, inverse_frequency_weights,
)
from lesionkit.losses.diagnosis import DX_TYPE_FACTORS, DiagnosisGuidedCrossEntropy, dx_type_factors
from lesionkit.losses.dice_rank import DiceRankLoss, rank_loss, soft_dice
from lesionkit.losses.focal import FocalLoss, batch_focal
from lesionkit.losses.ldam import LDAMLoss, ldam_margins
from lesionkit.losses.lmf import LMFLoss
from lesionkit.losses.multihead import MultiHeadCrossEntropy

__all__ = [
    "DX_TYPE_FACTORS", "DiagnosisGuidedCrossEntropy", "DiceRankLoss", "FocalLoss", "LDAMLoss", "LMFLoss",
    "MultiHeadCrossEntropy", "balanced_class_weights", "batch_focal", "class_counts", "class_weights",
    "dx_type_factors", "inverse_frequency_weights", "ldam_margins", "plain", "rank_loss", "soft_dice",
]
