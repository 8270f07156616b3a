"""Melanoma vs rest with patient metadata (the ISIC 2020 setting of the multimodal notebook, methods-b §A/§C):
the dataset with ISIC 2020 site names, its per-part counts and its encoded metadata."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesionkit.data import load_dataset
from lesionkit.data.detect import detect_format
from lesionkit.data.table import LesionDataset
from lesionkit.data.tasks import find_class


def load_melanoma(root: Path, data_format: str = "auto") -> Any:
    """The melanoma-vs-rest dataset in ``root``, with ISIC 2020 site names where the table has them."""
    fmt = data_format if data_format != "auto" else detect_format(root)
    kw = {"target": "melanoma"} if fmt in ("synthetic", "isic2020", "isic2017", "ph2") else {}
    ds = to_melanoma(load_dataset(root, fmt=fmt, **kw))
    if "anatom_site_general_challenge" in ds.df.columns:  # the synthetic set carries both HAM and ISIC sites
        ds.df["site"] = ds.df["anatom_site_general_challenge"]
    return ds


def to_melanoma(ds: Any) -> Any:
    """A binary melanoma (index 1) vs other dataset; multiclass sets with a 'mel' class are relabelled (classes
    other / melanoma, as the binary readers name them, so a multiclass training set and a binary test set agree)."""
    if ds.task == "binary":
        return ds

    try:
        mel = find_class("mel", ds.classes)
    except ValueError:
        raise ValueError(f"{ds.name}: the multimodal notebook needs a melanoma target; classes are {ds.classes}") from None
    df = ds.df.copy()
    df["label"] = np.where(df["label"] == mel, "melanoma", "other")
    df["label_idx"] = (df["label"] == "melanoma").astype(int)
    return LesionDataset(ds.name, ds.root, df, ["other", "melanoma"], "binary", {**ds.info, "pos_idx": 1})


def split_table(ds: Any, splits: Any) -> pd.DataFrame:
    """Images, patients and positives (melanomas) per part and fold of a ``Splits``."""
    return pd.DataFrame([{"fold": k, "part": part, "images": len(idx),
                          "patients": ds.df["patient_id"].iloc[idx].nunique(),
                          "melanomas": int((ds.df["label_idx"].iloc[idx] == 1).sum())}
                         for k in range(len(splits)) for part, idx in splits.parts(k).items()])


def metadata_preview(ds: Any, rows: np.ndarray, encoder: Any) -> pd.DataFrame:
    """The encoded metadata of dataset ``rows`` beside the raw sex / age / site they come from."""
    df = ds.df.iloc[rows]
    feats = pd.DataFrame(encoder.transform(df), columns=encoder.feature_names, index=df["image_id"])
    return pd.concat([df.set_index("image_id")[["sex", "age", "site"]].add_prefix("raw_"), feats], axis=1)


__all__ = ["load_melanoma", "to_melanoma", "split_table", "metadata_preview"]
