"""ISIC 2019 as distributed: the 9 one-hot columns (MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK) and its metadata.

Official layout: `ISIC_2019_Training_GroundTruth.csv`, `ISIC_2019_Training_Metadata.csv` (image, age_approx,
anatom_site_general, lesion_id, sex) and `ISIC_2019_Training_Input/`; the test part likewise
(`ISIC_2019_Test_GroundTruth.csv`, `ISIC_2019_Test_Metadata.csv`, `ISIC_2019_Test_Input/`). Deotte's Kaggle copy
(`train.csv` with a diagnosis code column and tfrecord) is read by `read_isic2019_kaggle` for the 2019+2020 merge.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lesionkit.data.readers.common import dataset_root, find_file, index_images, onehot_to_label, read_csv
from lesionkit.data.table import LesionDataset, finalize, require_columns, require_nonempty

ISIC2019_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
_PARTS = {"train": ("ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv"),
          "test": ("ISIC_2019_Test_GroundTruth.csv", "ISIC_2019_Test_Metadata.csv")}


def read_isic2019(root: str | Path, *, parts: Sequence[str] = ("train",), include_unk: bool = False,
                  missing: str = "raise", name: str = "isic2019") -> LesionDataset:
    """ISIC 2019 parts with classes in the official column order. UNK (no training images) is left out of the
    classes unless include_unk=True; rows labelled UNK are then dropped with a warning."""
    root = dataset_root(root)
    cols = ISIC2019_COLUMNS if include_unk else ISIC2019_COLUMNS[:-1]
    frames, sources = [], []
    for part in parts:
        if part not in _PARTS:
            raise ValueError(f"parts={list(parts)}: choose from {list(_PARTS)}")
        gt_name, meta_name = _PARTS[part]
        gt = find_file(root, [gt_name], what=f"ISIC 2019 {part} ground truth")
        raw = read_csv(gt)
        require_nonempty(raw, gt)
        present = [c for c in ISIC2019_COLUMNS if c in raw.columns]
        require_columns(raw, ("image", *ISIC2019_COLUMNS[:-1]), gt, aliases={"image": ("image_id", "image_name")})
        df = pd.DataFrame({"image_id": raw["image"].astype(str),
                           "label": onehot_to_label(raw, present, gt), "split": part}, index=raw.index)
        meta = find_file(root, [meta_name], required=False)
        if meta is not None:
            m = read_csv(meta).rename(columns={"image": "image_id", "age_approx": "age",
                                               "anatom_site_general": "site"}).drop_duplicates("image_id")
            df = df.join(m.set_index("image_id"), on="image_id")
        if len(parts) > 1:
            df.index = [f"{gt.name}:{i + 2}" for i in raw.index]
        frames.append(df)
        sources.append(str(gt))
    df = pd.concat(frames)
    unk = ~df["label"].isin(cols)
    if unk.any():
        warnings.warn(f"{name}: dropped {int(unk.sum())} row(s) labelled UNK (pass include_unk=True to keep them)",
                      stacklevel=2)
        df = df.loc[~unk]
    df["path"] = df["image_id"].map(index_images(root))
    return finalize(name, root, df, cols, source=", ".join(sources), missing=missing,
                    info={"csv": sources, "mel_idx": 0})


def read_isic2019_kaggle(root: str | Path) -> pd.DataFrame:
    """Deotte's `jpeg-isic2019-*` train.csv (image_name, patient_id, sex, age_approx, anatom_site_general_challenge,
    diagnosis codes, ..., tfrecord) with an absolute `path`; raw columns, for the 1st-place merge."""
    root = dataset_root(root)
    csv = find_file(root, ["train.csv"], what="ISIC 2019 (Kaggle) train.csv")
    raw = read_csv(csv)
    require_columns(raw, ("image_name", "diagnosis"), csv)
    idx = index_images(root, ["train", "."])
    raw["path"] = raw["image_name"].astype(str).map(lambda i: idx.get(i, np.nan))
    raw.attrs["csv"] = str(csv)
    return raw


def official_2019_as_codes(ds: LesionDataset) -> pd.DataFrame:
    """An official-layout ISIC 2019 table in the Kaggle column names (diagnosis = the one-hot code)."""
    df = ds.df
    return pd.DataFrame({"image_name": df["image_id"], "patient_id": np.nan, "sex": df["sex"],
                         "age_approx": df["age"], "anatom_site_general_challenge": df["site"],
                         "diagnosis": df["label"], "path": df["path"], "lesion_id": df["lesion_id"]})
