"""A per-example diagnosis factor as a second target, end to end (Gessert et al.'s diagnosis-guided weighting,
methods-a §1.2): the loader yields (patch grid, label, factor d), a callback moves d from the batch into the loss
before the model runs, and the loss is the batch mean of d · w_y · CE. fastai metrics keep seeing one target, and
``lesionkit.engine.predict`` reads only the first.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders, Datasets
from fastai.data.transforms import Categorize

from lesionkit.data.augment import preset_tfms
from lesionkit.data.loaders import GetLabel, ReadImage, batch_tfms_for, build_dataloaders, prepare_split
from lesionkit.data.table import LesionDataset
from lesionkit.data.views import PatchGrid
from lesionkit.losses import DiagnosisGuidedCrossEntropy


# ISIC2018_Task3_Training_LesionGroupings.csv's diagnosis_confirm_type -> HAM10000's dx_type code (the same images;
# the code's cfgs read the long strings, methods-a §1.2, and spell the follow-up one "showed" where the CSV says
# "showing")
CONFIRM_TYPES: dict[str, str] = {
    "histopathology": "histo",
    "confocal microscopy with consensus dermoscopy": "confocal",
    "serial imaging showing no change": "follow_up",
    "serial imaging showed no change": "follow_up",
    "single image expert consensus": "consensus",
}


def dx_type_codes(values: pd.Series) -> pd.Series:
    """HAM10000's dx_type codes (histo, confocal, follow_up, consensus) from either vocabulary: HAM's own codes or
    ISIC 2018's LesionGroupings strings; missing values count as consensus (factor 1). Unknown values pass through
    (the caller names them)."""
    kinds = values.fillna("consensus").astype(str).str.strip().str.lower()
    kinds = kinds.map(lambda k: CONFIRM_TYPES.get(" ".join(k.split()), k))
    return kinds.str.replace("-", "_")


class FactorColumn:
    """Row → its diagnosis factor (column ``dx_factor``) as a 0-d float tensor."""

    def __call__(self, item: Any) -> torch.Tensor:
        return torch.tensor(float(item["dx_factor"]))


def _factor_datasets(ds: LesionDataset, train_idx: np.ndarray, valid_idx: np.ndarray,
                     min_side: int) -> tuple[np.ndarray, np.ndarray, Datasets]:
    """(train rows, valid rows, image → (label, dx factor) Datasets), after the leak guard and file check."""
    tr, va = prepare_split(ds, train_idx, valid_idx, verify=True, leak_check=True)
    dsets = Datasets(ds.df, tfms=[[ReadImage(min_side)], [GetLabel(), Categorize(vocab=ds.classes, sort=False)],
                                  [FactorColumn()]], splits=[list(tr), list(va)], n_inp=1)
    return tr, va, dsets


def factor_patch_dls(ds: LesionDataset, train_idx: np.ndarray, valid_idx: np.ndarray, grid: str = "2x2+c",
                     patch: int = 224, full: tuple[int, int] = (450, 600), bs: int = 5, seed: int = 0,
                     num_workers: int = 0, balanced: bool = False) -> DataLoaders:
    """``lesionkit.data.views.patch_dls`` with one more target: batches (x (B, P, 3, patch, patch) in [0, 1], label,
    dx factor). No patch dropout here (the model has it); the leak guard and file check run first. ``balanced``:
    class-balanced sampling of the training rows."""
    tr, va, dsets = _factor_datasets(ds, train_idx, valid_idx, min(full))
    return build_dataloaders(dsets, bs, [PatchGrid(grid, full, patch, 0.0, seed)], batch_tfms_for([], None), seed,
                             num_workers, balanced=balanced, train_labels=ds.df["label"].to_numpy()[tr], device=None)


def factor_image_dls(ds: LesionDataset, train_idx: np.ndarray, valid_idx: np.ndarray, size: int = 224, bs: int = 32,
                     preset: str = "fastai", seed: int = 0, num_workers: int = 0, norm: Any = None,
                     balanced: bool = False) -> DataLoaders:
    """``lesionkit.data.loaders.image_dls`` with the diagnosis factor as a second target: batches (x (B, 3, size,
    size), label, dx factor), for diagnosis-guided weighting of a whole-image model."""
    tr, va, dsets = _factor_datasets(ds, train_idx, valid_idx, size)
    item, batch = preset_tfms(preset, size, "squish", seed)
    return build_dataloaders(dsets, bs, item, batch_tfms_for(batch, norm), seed, num_workers, balanced,
                             ds.df["label"].to_numpy()[tr], None)


class FactorCrossEntropy(DiagnosisGuidedCrossEntropy):
    """DiagnosisGuidedCrossEntropy that takes the batch's factors from ``self.factor`` (set by FactorCallback).
    ``use_factor=False`` ignores them: the same loss (batch mean of w_y · CE) without the weighting."""

    def __init__(self, weight: torch.Tensor | None = None, use_factor: bool = True) -> None:
        super().__init__(weight)
        self.use_factor = use_factor
        self.factor: torch.Tensor | None = None

    def forward(self, pred: torch.Tensor, target: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
        f = factor if factor is not None else self.factor
        if f is not None and len(f) != len(pred):
            raise ValueError(f"{len(f)} diagnosis factors for a batch of {len(pred)}")
        return super().forward(pred, target, f if self.use_factor else None)


class FactorCallback(Callback):
    """Move the second target (diagnosis factors) from the batch into the loss before the model runs."""

    order = -5

    def before_batch(self) -> None:
        yb = self.learn.yb
        self.learn.loss_func.factor = yb[1] if len(yb) > 1 else None
        if len(yb) > 1:
            self.learn.yb = yb[:1]


__all__ = ["CONFIRM_TYPES", "FactorCallback", "FactorColumn", "FactorCrossEntropy", "dx_type_codes", "factor_image_dls",
           "factor_patch_dls"]
