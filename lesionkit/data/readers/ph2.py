"""PH2 (200 dermoscopy images, expert masks, diagnosis and dermoscopic criteria incl. asymmetry 0/1/2).

Layouts: the shared copy (`labels.csv` with image_id, clinical_diagnosis, histological_diagnosis, asymmetry,
pigment_network, ..., colour flags, filename, mask) and the original download (`PH2 Dataset images/IMDxxx/
IMDxxx_Dermoscopic_Image/IMDxxx.bmp`, `IMDxxx_lesion/IMDxxx_lesion.bmp`, table `PH2_dataset.txt`). Every criterion is
kept as a column; `target` picks the label.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from lesionkit.data.errors import DataError
from lesionkit.data.readers.common import dataset_root, find_file, read_csv
from lesionkit.data.readers.ham10000 import HAM_CLASSES
from lesionkit.data.table import LesionDataset, finalize, require_columns

_CLINICAL = {0: "common_nevus", 1: "atypical_nevus", 2: "melanoma"}
# target -> (source column, mapping, classes)
PH2_TARGETS: dict[str, tuple[str, dict | None, tuple[str, ...]]] = {
    "diagnosis": ("clinical_diagnosis", None, ("common_nevus", "atypical_nevus", "melanoma")),
    "melanoma": ("clinical_diagnosis", {"common_nevus": "other", "atypical_nevus": "other", "melanoma": "melanoma"},
                 ("other", "melanoma")),
    "asymmetry": ("asymmetry", {0: "0", 1: "1", 2: "2"}, ("0", "1", "2")),
    "asymmetric": ("asymmetry", {0: "symmetric", 1: "asymmetric", 2: "asymmetric"}, ("symmetric", "asymmetric")),
    "ham": ("clinical_diagnosis", {"common_nevus": "nv", "atypical_nevus": "nv", "melanoma": "mel"}, HAM_CLASSES),
}


def _read_original_txt(path: Path) -> pd.DataFrame:
    """Parse PH2_dataset.txt: `|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry || ...` rows."""
    rows, header = [], None
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip().startswith("||"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("||")]
        if header is None:
            header = cells
            continue
        if re.fullmatch(r"IMD\d+", cells[0] or ""):
            rows.append(cells[: len(header)] + [""] * (len(header) - len(cells)))
    if header is None or not rows:
        raise DataError(f"{path}: no PH2 table rows ('|| IMDxxx || ...') found")
    raw = pd.DataFrame(rows, columns=header)
    norm = {c: re.sub(r"[^a-z]+", "_", c.lower()).strip("_") for c in raw.columns}
    raw = raw.rename(columns=norm).rename(columns={"name": "image_id", "blue_whitish_veil": "blue_whitish_veil"})
    require_columns(raw, ("image_id", "clinical_diagnosis", "asymmetry"), path)
    raw["clinical_diagnosis"] = pd.to_numeric(raw["clinical_diagnosis"], errors="coerce").map(_CLINICAL)
    raw["asymmetry"] = pd.to_numeric(raw["asymmetry"], errors="coerce")
    raw["histological_diagnosis"] = raw.get("histological_diagnosis", pd.Series(dtype=object)).replace("", np.nan)
    base = path.parent / "PH2 Dataset images"
    raw["filename"] = raw["image_id"].map(lambda i: str(base / i / f"{i}_Dermoscopic_Image" / f"{i}.bmp"))
    raw["mask"] = raw["image_id"].map(lambda i: str(base / i / f"{i}_lesion" / f"{i}_lesion.bmp"))
    return raw


def read_ph2(root: str | Path, *, target: str = "diagnosis", missing: str = "raise",
             name: str = "ph2") -> LesionDataset:
    """PH2 with `target` one of PH2_TARGETS: 'diagnosis' (3 clinical classes), 'melanoma' (binary), 'asymmetry'
    (0 symmetric / 1 one axis / 2 asymmetric), 'asymmetric' (0 vs {1, 2}, SE-LCN's binary symmetry), 'ham'
    (HAM10000 classes, for testing a HAM model on PH2). Masks are attached."""
    if target not in PH2_TARGETS:
        raise ValueError(f"target={target!r}: choose from {list(PH2_TARGETS)}")
    root = dataset_root(root)
    labels = root / "labels.csv"
    if labels.is_file():
        raw, source = read_csv(labels), labels
        require_columns(raw, ("image_id", "clinical_diagnosis", "asymmetry", "filename"), labels)
    else:
        source = find_file(root, ["PH2_dataset.txt"], what="PH2 table (labels.csv or PH2_dataset.txt)")
        raw = _read_original_txt(source)
    col, mapping, classes = PH2_TARGETS[target]
    df = raw.rename(columns={"filename": "path", "mask": "mask_path"})
    df["asymmetry"] = pd.to_numeric(df["asymmetry"], errors="coerce").astype("Int64")
    df["label"] = df[col].map(lambda v: mapping.get(v, v) if mapping and pd.notna(v) else v)
    if target.startswith("asym"):
        df["label"] = df[col].map(lambda v: mapping.get(int(v)) if pd.notna(v) else np.nan)
    df["dx_type"] = np.where(df["histological_diagnosis"].notna(), "histo", "consensus") \
        if "histological_diagnosis" in df.columns else np.nan
    info = {"csv": str(source), "target": target}
    if "melanoma" in classes or "mel" in classes:
        info["mel_idx"] = classes.index("melanoma" if "melanoma" in classes else "mel")
    return finalize(name, root, df, classes, source=source, missing=missing, info=info)
