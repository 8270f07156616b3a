"""Recognise a dataset's layout from the files in its folder (signature CSVs and their columns)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lesionkit.data.errors import FormatDetectionError
from lesionkit.data.images import IMAGE_EXTENSIONS


def _has(root: Path, pattern: str) -> bool:
    return any(root.glob(pattern)) or any(root.glob(f"*/{pattern}"))


def _columns(path: Path) -> set[str]:
    try:
        return set(pd.read_csv(path, nrows=0).columns)
    except Exception:  # unreadable CSVs are reported by the reader or `data check`, not here
        return set()


def _class_folders(root: Path) -> bool:
    """True when root (or root/train) holds sub-folders that themselves hold images."""
    for base in (root, root / "train"):
        subs = [d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")] if base.is_dir() else []
        with_images = [d for d in subs if any(f.suffix.lower() in IMAGE_EXTENSIONS for f in d.iterdir())]
        if len(with_images) >= 2:
            return True
    return False


def detect_format(root: str | Path) -> str:
    """The READERS key for the folder, checked from the most to the least specific signature."""
    root = Path(root)
    if not root.is_dir():
        raise FormatDetectionError(f"{root}: not a folder")
    marker = root / "dataset.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("name") == "synthetic":
                return "synthetic"
        except (ValueError, OSError):
            pass
    if _has(root, "ISIC-2017_*Part3_GroundTruth.csv"):
        return "isic2017"
    if _has(root, "ISIC_2019_Training_GroundTruth.csv") or _has(root, "ISIC_2019_Test_GroundTruth.csv"):
        return "isic2019"
    labels = root / "labels.csv"
    if labels.is_file():
        cols = _columns(labels)
        if {"clinical_diagnosis", "asymmetry"} <= cols:
            return "ph2"
        if {"image_name", "target"} <= cols:
            return "isic2020"
        if {"lesion_id", "image_id", "dx"} <= cols:
            return "ham10000"
        return "csv"
    if _has(root, "ISIC2018_Task3_*_GroundTruth.csv"):
        return "isic2018"
    if _has(root, "HAM10000_metadata*"):
        return "ham10000"
    if _has(root, "meta.csv") and ({"diagnosis", "derm"} <= _columns(next(iter(root.glob("**/meta.csv"))))):
        return "derm7pt"
    if _has(root, "ISIC_2020_Training_GroundTruth*.csv") or (
            (root / "train.csv").is_file() and {"image_name", "target"} <= _columns(root / "train.csv")):
        return "isic2020"
    if _has(root, "PH2_dataset.txt") or _has(root, "PH2 Dataset images"):
        return "ph2"
    if _class_folders(root):
        return "folders"
    found = sorted(p.name for p in root.iterdir())[:15]
    raise FormatDetectionError(f"{root}: cannot tell the dataset layout from its files {found}. Pass fmt= one of "
                               "ham10000, isic2017, isic2018, isic2019, isic2020, derm7pt, ph2, folders, csv "
                               "(for csv also columns={...}).")
