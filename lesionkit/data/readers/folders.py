"""Any folder of class sub-folders: `root/<class>/*.jpg`, or `root/<split>/<class>/*.jpg` with split folders
train / valid (val, validation) / test recorded in the `split` column."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from lesionkit.data.errors import DataError
from lesionkit.data.images import IMAGE_EXTENSIONS
from lesionkit.data.readers.common import dataset_root
from lesionkit.data.table import LesionDataset, finalize

SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}


def _images(folder: Path) -> list[Path]:
    """Every entry named like an image (a FIFO or folder named x.jpg included, so finalize reports it)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def read_class_folders(root: str | Path, *, missing: str = "raise", name: str | None = None) -> LesionDataset:
    """One row per image; label = its folder name; image_id = its path relative to root without extension."""
    root = dataset_root(root)
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_NAMES]
    rows = []
    bases = [(d, SPLIT_NAMES[d.name.lower()]) for d in split_dirs] if split_dirs else [(root, None)]
    for base, split in bases:
        for cls_dir in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for p in _images(cls_dir):
                rel = p.relative_to(root)
                rows.append({"image_id": str(rel.with_suffix("")), "path": str(rel), "label": cls_dir.name,
                             "split": split})
    if not rows:
        raise DataError(f"{root}: no images in class sub-folders (expected root/<class>/*.jpg or "
                        "root/train/<class>/*.jpg)")
    df = pd.DataFrame(rows)
    classes = sorted(df["label"].unique())
    return finalize(name or root.name, root, df, classes, source=root, missing=missing)
