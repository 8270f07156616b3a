"""HAM10000 and ISIC 2018 Task 3 (the same images) in their distributed layouts.

- `read_ham10000`: `HAM10000_metadata.csv` (lesion_id, image_id, dx, dx_type, age, sex, localization[, dataset]) with
  images anywhere below the folder (HAM10000_images_part_1/2, ...) and Task 1 / HAM masks `<id>_segmentation.png`;
  or a `labels.csv` that adds a `filename` column (the shared 224 px copy).
- `read_isic2018`: the one-hot `image,MEL,NV,BCC,AKIEC,BKL,DF,VASC` ground-truth CSVs of the Training / Validation /
  Test parts with their `*_Input` folders, plus `ISIC2018_Task3_Training_LesionGroupings.csv` when present. The
  official Test part is returned on its own (parts=("test",)), as an external test set.
Both use the HAM codes (akiec, bcc, bkl, df, mel, nv, vasc) as class names, so models move between them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lesionkit.data.errors import DataError
from lesionkit.data.readers.common import dataset_root, find_file, index_images, index_masks, onehot_to_label, read_csv
from lesionkit.data.readers.generic_csv import read_csv_dataset
from lesionkit.data.table import LesionDataset, finalize, require_columns, require_nonempty

HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
ISIC2018_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
HAM_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
_PART_FILES = {"train": "ISIC2018_Task3_Training_GroundTruth.csv",
               "valid": "ISIC2018_Task3_Validation_GroundTruth.csv",
               "test": "ISIC2018_Task3_Test_GroundTruth.csv"}


def read_ham10000_metadata(path: str | Path) -> pd.DataFrame:
    """The official metadata table (CSV or Dataverse .tab), validated: 7 HAM columns, known dx codes."""
    path = Path(path)
    raw = read_csv(path, sep="\t" if path.suffix == ".tab" else ",")
    require_nonempty(raw, path)
    require_columns(raw, HAM_COLUMNS, path, aliases={"image_id": ("image", "image_name"), "dx": ("diagnosis",),
                                                     "localization": ("site", "anatom_site_general")})
    raw["image_id"] = raw["image_id"].astype(str).str.replace(r"\.jpg$", "", regex=True)
    return raw


def read_ham10000(root: str | Path, *, which: str = "auto", csv: str | Path | None = None, missing: str = "raise",
                  name: str = "ham10000") -> LesionDataset:
    """HAM10000 from `root`. `which`: 'labels' (labels.csv with filename), 'metadata' (HAM10000_metadata.csv plus
    images found by id) or 'auto' (labels.csv when present). With the metadata of all 10,015 images but only some
    image files, pass missing='drop' to keep the rows whose image exists."""
    root = dataset_root(root)
    if which not in ("auto", "labels", "metadata"):
        raise ValueError(f"which={which!r}: expected 'auto', 'labels' or 'metadata'")
    labels = root / "labels.csv"
    if csv is None and which in ("auto", "labels") and labels.is_file():
        head = read_csv(labels, nrows=1)
        if {"image_id", "dx"} <= set(head.columns):
            ds = read_csv_dataset(labels, classes=HAM_CLASSES, name=name, missing=missing,
                                  columns={"site": "localization"} if "localization" in head.columns else None)
            return _attach_masks(ds, root)
        if which == "labels":
            raise DataError(f"{labels}: not a HAM10000 labels table (needs image_id and dx columns)")
    meta_path = Path(csv) if csv is not None else find_file(root, ["HAM10000_metadata.csv", "HAM10000_metadata.tab",
                                                                   "HAM10000_metadata*"])
    if not meta_path.is_absolute():
        meta_path = root / meta_path
    raw = read_ham10000_metadata(meta_path)
    df = raw.rename(columns={"dx": "label", "localization": "site"})
    df["path"] = df["image_id"].map(index_images(root))
    masks = index_masks(root)
    df["mask_path"] = df["image_id"].map(lambda i: masks.get(i, np.nan))
    return finalize(name, root, df, HAM_CLASSES, source=meta_path, missing=missing, info={"csv": str(meta_path)})


def _attach_masks(ds: LesionDataset, root: Path) -> LesionDataset:
    if ds.df["mask_path"].isna().all():
        masks = index_masks(root)
        if masks:
            ds.df["mask_path"] = ds.df["image_id"].map(lambda i: masks.get(i, np.nan))
    return ds


def read_isic2018(root: str | Path, *, parts: Sequence[str] = ("train",), missing: str = "raise",
                  name: str = "isic2018") -> LesionDataset:
    """ISIC 2018 Task 3 parts ('train', 'valid', 'test') from their one-hot ground-truth CSVs; `split` records each
    row's part. Lesion ids and diagnosis confirmation types come from the LesionGroupings CSV, and age/sex/site from
    HAM10000_metadata.csv, when either file is in the folder."""
    root = dataset_root(root)
    bad = [p for p in parts if p not in _PART_FILES]
    if bad:
        raise ValueError(f"parts={list(parts)}: unknown {bad}; choose from {list(_PART_FILES)}")
    frames, sources = [], []
    for part in parts:
        gt = find_file(root, [_PART_FILES[part]], what=f"ISIC 2018 Task 3 {part} ground truth")
        raw = read_csv(gt)
        require_nonempty(raw, gt)
        require_columns(raw, ("image", *ISIC2018_COLUMNS), gt, aliases={"image": ("image_id", "image_name")})
        df = pd.DataFrame({"image_id": raw["image"].astype(str),
                           "label": onehot_to_label(raw, ISIC2018_COLUMNS, gt).str.lower(), "split": part})
        df.index = raw.index if len(parts) == 1 else [f"{gt.name}:{i + 2}" for i in raw.index]
        frames.append(df)
        sources.append(str(gt))
    df = pd.concat(frames)
    groupings = find_file(root, ["ISIC2018_Task3_Training_LesionGroupings.csv"], required=False)
    if groupings is not None:
        g = read_csv(groupings).rename(columns={"image": "image_id", "diagnosis_confirm_type": "dx_type"})
        df = _left_join(df, g[["image_id", "lesion_id", "dx_type"]])
    meta = find_file(root, ["HAM10000_metadata.csv"], required=False)
    if meta is not None:
        m = read_ham10000_metadata(meta).rename(columns={"localization": "site"})
        cols = ["image_id", "age", "sex", "site"] + [c for c in ("lesion_id", "dx_type") if c not in df.columns]
        df = _left_join(df, m[cols])
    df["path"] = df["image_id"].map(index_images(root))
    masks = index_masks(root)
    df["mask_path"] = df["image_id"].map(lambda i: masks.get(i, np.nan))
    return finalize(name, root, df, HAM_CLASSES, source=", ".join(sources), missing=missing,
                    info={"csv": sources, "official_columns": list(ISIC2018_COLUMNS)})


def _left_join(df: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Merge on image_id keeping df's index (the CSV line numbers used in error messages)."""
    other = other.drop_duplicates("image_id").set_index("image_id")
    out = df.join(other, on="image_id", how="left")
    return out
