"""Artefact / bias labels for the multimodal paper's six-head classifier (methods-b §C.6): targets, loaders, scores.

The paper's annotation file (``gans_biases.csv``) was never published. The synthetic set draws hair (none / short /
medium / dense), a black frame, a ruler and bubbles itself, so the heads can be trained and scored here; a table
with the six head columns works too. Loaders follow the code's preprocessing: resize (squish), scaling to [-1, 1]
(Normalize 0.5 / 0.5), no augmentation.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from lesionkit.data.augment import preset_tfms
from lesionkit.data.loaders import ReadImage, batch_tfms_for, build_dataloaders
from lesionkit.models.multimodal import ARTEFACT_HEADS

# synthetic / shared-data columns -> the six heads of multi_classification.py (bubbles count as "other")
HAIR_LEVELS = {"hair_dense": "dense", "hair_short": "short", "hair_medium": "medium"}
CODE_NORM = ((0.5,) * 3, (0.5,) * 3)


def artefact_targets(df: pd.DataFrame) -> pd.DataFrame | None:
    """(n, 6) 0/1 table with the heads of ``ARTEFACT_HEADS``, from the head columns themselves or from the synthetic
    set's hair (none/short/medium/dense), black_frame, ruler and bubbles (= other); None when the table has
    neither (real ISIC data ships no artefact labels)."""
    if all(h in df.columns for h in ARTEFACT_HEADS):
        return df[list(ARTEFACT_HEADS)].fillna(0).astype(int).reset_index(drop=True)
    if not all(c in df.columns for c in ("hair", "black_frame", "ruler", "bubbles")):
        return None
    hair = df["hair"].astype(str).str.strip().str.lower()
    unknown = sorted(set(hair) - {"none", "nan", *HAIR_LEVELS.values()})
    if unknown:
        raise ValueError(f"column 'hair' has value(s) {unknown}; expected none/short/medium/dense")
    out = {head: (hair == level).astype(int).to_numpy() for head, level in HAIR_LEVELS.items()}
    out.update(black_frame=df["black_frame"].fillna(0).astype(int).to_numpy(),
               ruler=df["ruler"].fillna(0).astype(int).to_numpy(),
               other=df["bubbles"].fillna(0).astype(int).to_numpy())
    return pd.DataFrame(out)[list(ARTEFACT_HEADS)]


class GetHeads:
    """Row -> LongTensor (6,) of the artefact head targets (columns `head:<name>`)."""

    def __init__(self, cols: list[str]) -> None:
        self.cols = cols

    def __call__(self, item: Any) -> torch.Tensor:
        return torch.tensor([int(item[c]) for c in self.cols], dtype=torch.long)


def with_heads(ds: Any, targets: pd.DataFrame) -> pd.DataFrame:
    """The dataset's table (positions 0..n-1) with the targets as columns `head:<name>` (what GetHeads reads)."""
    df = ds.df.reset_index(drop=True).copy()
    df[[f"head:{h}" for h in targets.columns]] = targets.to_numpy()
    return df


def artefact_dls(ds: Any, targets: pd.DataFrame, train_idx: np.ndarray, valid_idx: np.ndarray, size: int, bs: int,
                 seed: int = 0, num_workers: int = 0) -> Any:
    """Loaders of the code's preprocessing: resize, [-1, 1] scaling (Normalize 0.5/0.5), no augmentation."""
    from fastai.data.core import Datasets

    cols = [f"head:{h}" for h in targets.columns]
    dsets = Datasets(with_heads(ds, targets), tfms=[[ReadImage(size)], [GetHeads(cols)]],
                     splits=[list(train_idx), list(valid_idx)])
    item, _ = preset_tfms("none", size)  # squish: the code's A.Resize(size, size)
    return build_dataloaders(dsets, bs, item, batch_tfms_for([], CODE_NORM), seed, num_workers, False, None, None)


def artefact_test_dl(dls: Any, ds: Any, targets: pd.DataFrame, idx: np.ndarray) -> Any:
    """A loader with the validation transforms over dataset rows ``idx``, yielding (image, head targets)."""
    return dls.test_dl(with_heads(ds, targets).iloc[idx], with_labels=True)


def head_accuracy(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean accuracy over heads and images (the per-epoch number the code prints per head)."""
    return (pred.argmax(-1) == targ).float().mean()


def head_accuracy_table(y: np.ndarray, pred: np.ndarray, heads: list[str]) -> pd.DataFrame:
    """Per head: accuracy, recall of 'none' and of 'yes' (the code's per-class accuracy), and prevalence.
    Unlike the code, counts start at 0 (it starts n_correct at 2, inflating accuracy by 2/n)."""
    y, pred = np.asarray(y), np.asarray(pred)
    rows = []
    for j, head in enumerate(heads):
        t, p = y[:, j], pred[:, j]
        rows.append({"head": head, "accuracy": float((t == p).mean()) if len(t) else np.nan,
                     "recall_none": float((p[t == 0] == 0).mean()) if (t == 0).any() else np.nan,
                     "recall_yes": float((p[t == 1] == 1).mean()) if (t == 1).any() else np.nan,
                     "prevalence": float(t.mean()) if len(t) else np.nan, "n": int(len(t))})
    return pd.DataFrame(rows)


__all__ = ["HAIR_LEVELS", "artefact_targets", "GetHeads", "with_heads", "artefact_dls", "artefact_test_dl",
           "head_accuracy", "head_accuracy_table"]
