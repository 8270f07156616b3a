"""ISIC 2017 Part 3 as distributed (the ARL-CNN data, methods-a §2.3).

`ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv` (image_id, melanoma, seborrheic_keratosis; a row
with neither is a nevus), images in `ISIC-2017_{...}_Data/` (with `*_superpixels.png` beside them, ignored) and the
`ISIC-2017_{...}_Data_metadata.csv` (image_id, age_approximate, sex), Part 1 masks
`ISIC-2017_{...}_Part1_GroundTruth/<id>_segmentation.png`. The official 2000/150/600 split is the `split` column.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from lesionkit.data.readers.common import dataset_root, find_file, index_images, index_masks, read_csv
from lesionkit.data.table import LesionDataset, finalize, require_columns, require_nonempty

PART_NAMES = {"train": "Training", "valid": "Validation", "test": "Test_v2"}
TARGETS: dict[str, tuple[str, ...]] = {
    "diagnosis": ("nevus", "melanoma", "seborrheic_keratosis"),
    "melanoma": ("other", "melanoma"),
    "seborrheic_keratosis": ("other", "seborrheic_keratosis"),
}


def read_isic2017(root: str | Path, *, target: str = "melanoma", parts: Sequence[str] = ("train", "valid", "test"),
                  missing: str = "raise", name: str = "isic2017") -> LesionDataset:
    """ISIC 2017 with `target` 'melanoma' (ARL's binary task, default), 'seborrheic_keratosis' (the challenge's
    second binary task) or 'diagnosis' (nevus / melanoma / seborrheic keratosis)."""
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: choose from {list(TARGETS)}")
    root = dataset_root(root)
    frames, sources = [], []
    for part in parts:
        if part not in PART_NAMES:
            raise ValueError(f"parts={list(parts)}: choose from {list(PART_NAMES)}")
        tag = PART_NAMES[part]
        gt = find_file(root, [f"ISIC-2017_{tag}_Part3_GroundTruth.csv"], what=f"ISIC 2017 {part} ground truth")
        raw = read_csv(gt)
        require_nonempty(raw, gt)
        require_columns(raw, ("image_id", "melanoma", "seborrheic_keratosis"), gt,
                        aliases={"image_id": ("image", "image_name")})
        mel = pd.to_numeric(raw["melanoma"], errors="coerce").fillna(0) > 0.5
        sk = pd.to_numeric(raw["seborrheic_keratosis"], errors="coerce").fillna(0) > 0.5
        if target == "melanoma":
            label = np.where(mel, "melanoma", "other")
        elif target == "seborrheic_keratosis":
            label = np.where(sk, "seborrheic_keratosis", "other")
        else:
            label = np.where(mel, "melanoma", np.where(sk, "seborrheic_keratosis", "nevus"))
        df = pd.DataFrame({"image_id": raw["image_id"].astype(str), "label": label, "split": part,
                           "melanoma": mel.astype(int), "seborrheic_keratosis": sk.astype(int)}, index=raw.index)
        meta = find_file(root, [f"ISIC-2017_{tag}_Data_metadata.csv", f"ISIC-2017_{tag}_Data/*metadata.csv"],
                         required=False)
        if meta is not None:
            m = read_csv(meta).rename(columns={"age_approximate": "age"}).drop_duplicates("image_id")
            keep = [c for c in ("image_id", "age", "sex") if c in m.columns]
            df = df.join(m[keep].set_index("image_id"), on="image_id")
        if len(parts) > 1:
            df.index = [f"{gt.name}:{i + 2}" for i in raw.index]
        frames.append(df)
        sources.append(str(gt))
    df = pd.concat(frames)
    images = index_images(root, [f"ISIC-2017_{PART_NAMES[p]}_Data" for p in parts] + ["."])
    df["path"] = df["image_id"].map(images)
    masks = index_masks(root)
    df["mask_path"] = df["image_id"].map(lambda i: masks.get(i, np.nan))
    classes = TARGETS[target]
    return finalize(name, root, df, classes, source=", ".join(sources), missing=missing,
                    info={"csv": sources, "target": target, "mel_idx": classes.index("melanoma")
                          if "melanoma" in classes else None})
