"""The synthetic dermoscopy set (lesionkit.data.synthetic) read from its labels.csv, for any of its targets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lesionkit.data.readers.common import dataset_root, read_csv
from lesionkit.data.readers.ham10000 import HAM_CLASSES
from lesionkit.data.table import LesionDataset, finalize, require_columns

# target -> (labels.csv column, {raw value: class name} or None, classes)
SYNTHETIC_TARGETS: dict[str, tuple[str, dict | None, tuple[str, ...]]] = {
    "dx": ("dx", None, HAM_CLASSES),
    "melanoma": ("target", {0: "other", 1: "melanoma"}, ("other", "melanoma")),
    "benign_malignant": ("benign_malignant", None, ("benign", "malignant")),
    "symmetry": ("symmetry", {0: "0", 1: "1", 2: "2"}, ("0", "1", "2")),
    "asymmetric": ("symmetry", {0: "symmetric", 1: "asymmetric", 2: "asymmetric"}, ("symmetric", "asymmetric")),
}


def read_synthetic(root: str | Path, *, target: str = "dx", missing: str = "raise",
                   name: str = "synthetic") -> LesionDataset:
    """The synthetic set with `target` one of SYNTHETIC_TARGETS (7-class dx by default; 'melanoma' is binary with
    index 1 positive; 'symmetry' the PH2-style 0/1/2 label; 'asymmetric' its binary form 0 vs {1, 2})."""
    root = dataset_root(root)
    if target not in SYNTHETIC_TARGETS:
        raise ValueError(f"target={target!r}: expected one of {list(SYNTHETIC_TARGETS)}")
    col, mapping, classes = SYNTHETIC_TARGETS[target]
    csv = root / "labels.csv"
    raw = read_csv(csv)
    require_columns(raw, ("image_id", "lesion_id", "patient_id", "filename", col), csv)
    df = raw.rename(columns={"filename": "path", "mask_filename": "mask_path", "localization": "site"})
    df["label"] = raw[col].map(mapping) if mapping else raw[col]
    info = {"csv": str(csv), "target": target}
    if (root / "dataset.json").is_file():
        info["generator"] = json.loads((root / "dataset.json").read_text())
    if target == "melanoma":
        info["pos_idx"] = 1
    ds = finalize(name, root, df, classes, source=csv, missing=missing, info=info)
    if target == "dx":
        ds.info["mel_idx"] = int(np.flatnonzero(np.asarray(ds.classes) == "mel")[0])
    return ds
