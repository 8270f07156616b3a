"""SIIM-ISIC 2020 as distributed, with the 1st-place 9-class target and the 2019+2020 merge (methods-b §A.1-A.2).

Tables (first found wins): `labels.csv` (official columns + filename, the shared 512 px copy), Deotte's Kaggle
`train.csv` (+ tfrecord, width, height; images in `train/`), or the official `ISIC_2020_Training_GroundTruth_v2.csv`
/ `ISIC_2020_Training_GroundTruth.csv` (images in `train/` or `ISIC_2020_Training_JPEG/`).

Targets: 'melanoma' (binary from `target`, classes other/melanoma), 'diagnosis9' (AK, BCC, BKL, DF, SCC, VASC,
melanoma, nevus, unknown: the sorted 1st-place classes, mel_idx 6) and 'diagnosis4' (BKL, melanoma, nevus,
unknown; mel_idx 1). `merge_2019` adds ISIC 2019 (Kaggle or official layout) with `is_ext` = 1, as the 1st place
did. Kaggle rows with tfrecord == -1 (2020 duplicates) or < 0 (2019) are dropped as in the original, and `fold`
is derived from tfrecord with the original's maps (`fold_mode`: default / newfold / oldfold), or is the tfrecord
itself (`fold_mode="tfrecord"`, the Going Smaller code, whose CSVs already hold fold ids 0-4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lesionkit.data.readers.common import dataset_root, find_file, index_images, read_csv
from lesionkit.data.readers.isic2019 import official_2019_as_codes, read_isic2019, read_isic2019_kaggle
from lesionkit.data.table import LesionDataset, finalize, require_columns, require_nonempty

TARGETS = ("melanoma", "diagnosis9", "diagnosis4")
# substring replacements, applied in order (the original's str.replace chain)
FIRST_PLACE_2020 = (("seborrheic keratosis", "BKL"), ("lichenoid keratosis", "BKL"), ("solar lentigo", "BKL"),
                    ("lentigo NOS", "BKL"), ("cafe-au-lait macule", "unknown"),
                    ("atypical melanocytic proliferation", "unknown"))
FIRST_PLACE_2019 = {"NV": "nevus", "MEL": "melanoma"}
DIAGNOSIS9 = ("AK", "BCC", "BKL", "DF", "SCC", "VASC", "melanoma", "nevus", "unknown")
DIAGNOSIS4 = ("BKL", "melanoma", "nevus", "unknown")
# tfrecord (0-14) -> fold, per 1st-place --kernel-type mode
FOLD_MAPS = {
    "default": {t: f for f, ts in enumerate([(2, 4, 5), (1, 10, 13), (0, 9, 12), (3, 8, 11), (6, 7, 14)]) for t in ts},
    "newfold": {t: f for f, ts in enumerate([(8, 5, 11), (7, 0, 6), (10, 12, 13), (9, 1, 3), (14, 2, 4)]) for t in ts},
    "oldfold": {t: t % 5 for t in range(15)},
    "tfrecord": {},  # Going Smaller (methods-b §B.5): fold = tfrecord as stored (its CSVs hold 0-4), 2019 too
}
_TABLES = ("labels.csv", "train.csv", "ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")


def first_place_label(diagnosis: pd.Series, is_2019: bool, n_classes: int = 9) -> pd.Series:
    """The 1st-place relabelling of a diagnosis column (2020 strings or 2019 codes)."""
    if is_2019:
        out = diagnosis.astype(str).replace(FIRST_PLACE_2019)
        if n_classes == 4:
            out = out.replace({c: "unknown" for c in ("DF", "AK", "SCC", "VASC", "BCC")})
        return out
    out = diagnosis.astype(str)
    for old, new in FIRST_PLACE_2020:
        out = out.str.replace(old, new, regex=False)
    return out


def _fold(tfrecord: pd.Series, mode: str, is_2019: bool) -> pd.Series:
    t = pd.to_numeric(tfrecord, errors="coerce")
    if mode == "tfrecord":
        m = t.where(t >= 0)
    elif is_2019:
        m = (t % 15).map(FOLD_MAPS["newfold"]) if mode == "newfold" else t % 5
    else:
        m = t.map(FOLD_MAPS[mode])
    return m.astype("Int64")


def _read_2020(root: Path) -> tuple[pd.DataFrame, Path]:
    csv = find_file(root, _TABLES, what="ISIC 2020 table")
    raw = read_csv(csv)
    require_nonempty(raw, csv)
    require_columns(raw, ("image_name", "patient_id", "target"), csv, aliases={"image_name": ("image_id", "image"),
                                                                               "target": ("melanoma", "label")})
    if "filename" in raw.columns:
        raw["path"] = raw["filename"]
    else:
        idx = index_images(root, ["train", "ISIC_2020_Training_JPEG", "images", "."])
        raw["path"] = raw["image_name"].astype(str).map(lambda i: idx.get(i, np.nan))
    return raw, csv


def read_isic2020(root: str | Path, *, target: str = "melanoma", merge_2019: str | Path | None = None,
                  fold_mode: str = "default", drop_duplicates: bool = True, missing: str = "raise",
                  name: str = "isic2020") -> LesionDataset:
    """ISIC 2020 (optionally + 2019) as a LesionDataset; `info['mel_idx']` is the melanoma class index."""
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: choose from {TARGETS}")
    if fold_mode not in FOLD_MAPS:
        raise ValueError(f"fold_mode={fold_mode!r}: choose from {list(FOLD_MAPS)}")
    if merge_2019 is not None and target == "melanoma":
        raise ValueError("merge_2019 needs target='diagnosis9' or 'diagnosis4' (the 1st-place targets)")
    root = dataset_root(root)
    raw, csv = _read_2020(root)
    if drop_duplicates and "tfrecord" in raw.columns:
        raw = raw.loc[pd.to_numeric(raw["tfrecord"], errors="coerce") != -1]
    df = raw.rename(columns={"image_name": "image_id", "age_approx": "age",
                             "anatom_site_general_challenge": "site"})
    df["is_ext"] = 0
    if "tfrecord" in raw.columns:
        df["fold"] = _fold(raw["tfrecord"], fold_mode, is_2019=False)
    n = 9 if target == "diagnosis9" else 4
    if target == "melanoma":
        df["label"] = pd.to_numeric(raw["target"], errors="coerce").map({0: "other", 1: "melanoma"})
        classes: tuple[str, ...] = ("other", "melanoma")
    else:
        require_columns(raw, ("diagnosis",), csv)
        df["label"] = first_place_label(raw["diagnosis"], is_2019=False, n_classes=n)
        classes = DIAGNOSIS9 if n == 9 else DIAGNOSIS4
    sources = [str(csv)]
    if merge_2019 is not None:
        ext = _read_2019_for_merge(Path(merge_2019), fold_mode, drop_duplicates, n)
        df.index = [f"{csv.name}:{i + 2}" for i in df.index]
        df = pd.concat([df, ext])
        sources.append(ext.attrs.get("csv", str(merge_2019)))
    return finalize(name, root, df, classes, source=", ".join(sources), missing=missing,
                    info={"csv": sources, "mel_idx": classes.index("melanoma"), "target": target},
                    also_roots=[Path(merge_2019)] if merge_2019 is not None else [])


def _read_2019_for_merge(root: Path, fold_mode: str, drop_duplicates: bool, n_classes: int) -> pd.DataFrame:
    if find_file(root, ["ISIC_2019_Training_GroundTruth.csv"], required=False) is not None:
        raw = official_2019_as_codes(read_isic2019(root))
        csv = str(find_file(root, ["ISIC_2019_Training_GroundTruth.csv"]))
    else:
        raw = read_isic2019_kaggle(root)
        csv = raw.attrs["csv"]
        if drop_duplicates and "tfrecord" in raw.columns:
            raw = raw.loc[pd.to_numeric(raw["tfrecord"], errors="coerce") >= 0]
    df = raw.rename(columns={"image_name": "image_id", "age_approx": "age", "anatom_site_general_challenge": "site"})
    df["label"] = first_place_label(raw["diagnosis"], is_2019=True, n_classes=n_classes)
    df["is_ext"] = 1
    df["patient_id"] = np.nan  # -1 everywhere in 2019: no patient grouping is possible
    if "tfrecord" in raw.columns:
        df["fold"] = _fold(raw["tfrecord"], fold_mode, is_2019=True)
    df.index = [f"{Path(csv).name}:{i + 2}" for i in range(len(df))]
    df.attrs["csv"] = csv
    return df
