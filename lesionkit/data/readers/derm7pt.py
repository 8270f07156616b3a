"""derm7pt (Kawahara et al. 2018, release_v0): `meta/meta.csv` + `meta/{train,valid,test}_indexes.csv` + `images/`.

meta.csv columns: case_num, diagnosis, seven_point_score, the seven criteria (pigment_network, streaks,
pigmentation, regression_structures, dots_and_globules, blue_whitish_veil, vascular_structures),
level_of_diagnostic_difficulty, elevation, location, sex, clinic, derm (image paths under images/), management.
The index files hold row positions (column `indexes`) of the official split. The criteria stay as columns.

`mapping='patch_attention'` is the patch-attention paper's (gen_sevenpoint.py, methods-a §1.3): basal cell -> bcc,
any nevus -> nv, dermatofibroma -> df, lentigo -> bkl, melanoma* -> mel, seborrheic keratosis -> bkl, vascular
lesion -> vasc; miscellaneous and melanosis are dropped (6 classes: HAM codes without akiec).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lesionkit.data.readers.common import dataset_root, find_file, read_csv
from lesionkit.data.table import LesionDataset, finalize, require_columns, require_nonempty

CRITERIA = ("pigment_network", "streaks", "pigmentation", "regression_structures", "dots_and_globules",
            "blue_whitish_veil", "vascular_structures")
PATCH_ATTENTION_CLASSES = ("bcc", "bkl", "df", "mel", "nv", "vasc")
MAPPINGS = ("patch_attention", "melanoma", "raw")


def patch_attention_label(diagnosis: str) -> str | None:
    """gen_sevenpoint.py's rule (order matters: 'nevus' before 'melanoma' never collide; unmatched -> None)."""
    d = str(diagnosis).lower()
    if "basal cell" in d:
        return "bcc"
    if "nevus" in d:
        return "nv"
    if "dermatofibroma" in d:
        return "df"
    if "lentigo" in d or "seborrheic keratosis" in d:
        return "bkl"
    if d.startswith("melanoma") and "melanosis" not in d:
        return "mel"
    if "vascular lesion" in d:
        return "vasc"
    return None


def read_derm7pt(root: str | Path, *, mapping: str = "patch_attention", image: str = "derm", missing: str = "raise",
                 name: str = "derm7pt") -> LesionDataset:
    """derm7pt with the official split in `split`. `image`: 'derm' (dermoscopy, default) or 'clinic'.
    `mapping`: 'patch_attention' (6 classes), 'melanoma' (binary, melanoma* vs the rest) or 'raw' (the 20 original
    diagnosis strings)."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping={mapping!r}: choose from {MAPPINGS}")
    if image not in ("derm", "clinic"):
        raise ValueError(f"image={image!r}: choose 'derm' or 'clinic'")
    root = dataset_root(root)
    meta = find_file(root, ["meta/meta.csv", "meta.csv"], what="derm7pt meta.csv")
    raw = read_csv(meta)
    require_nonempty(raw, meta)
    require_columns(raw, ("case_num", "diagnosis", image, *CRITERIA), meta)
    split = pd.Series(np.nan, index=raw.index, dtype=object)
    for part in ("train", "valid", "test"):
        f = meta.parent / f"{part}_indexes.csv"
        if f.is_file():
            idx = read_csv(f)
            require_columns(idx, ("indexes",), f)
            split.iloc[idx["indexes"].astype(int).to_numpy()] = part
    df = raw.rename(columns={"location": "site"})
    df["split"] = split
    df["image_id"] = raw[image].astype(str).str.replace("/", "_", regex=False).str.rsplit(".", n=1).str[0]
    df["path"] = raw[image].map(lambda p: str(root / "images" / str(p)) if pd.notna(p) else np.nan)
    df["lesion_id"] = "D7P_" + raw["case_num"].astype(str)
    info: dict = {"csv": str(meta), "mapping": mapping}
    if mapping == "patch_attention":
        df["label"] = raw["diagnosis"].map(patch_attention_label)
        dropped = df["label"].isna()
        info["dropped"] = raw.loc[dropped, "diagnosis"].value_counts().to_dict()
        df = df.loc[~dropped]
        classes: tuple[str, ...] = PATCH_ATTENTION_CLASSES
    elif mapping == "melanoma":
        df["label"] = np.where(raw["diagnosis"].astype(str).str.lower().str.startswith("melanoma"), "melanoma", "other")
        classes = ("other", "melanoma")
    else:
        df["label"] = raw["diagnosis"].astype(str)
        classes = tuple(sorted(df["label"].unique()))
    return finalize(name, root, df, classes, source=meta, missing=missing, info=info)
