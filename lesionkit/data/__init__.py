"""lesionkit.data: datasets as one canonical table, honest splits, metadata encoding and fastai DataLoaders.

    from lesionkit.data import load_dataset, grouped_kfold, image_dls, test_dl
    ds = load_dataset("path/to/HAM10000")            # format detected; or fmt="isic2017" | ... | "csv"
    folds = grouped_kfold(ds.df, 5, seed=0)           # grouped by lesion_id + patient_id, stratified by label
    dls = image_dls(ds, *folds[0], size=224, bs=32)   # fastai DataLoaders, vocab == ds.classes
    tdl = test_dl(dls, external_ds)                   # any rows, same transforms as validation

Formats (lesionkit.data.readers.READERS): synthetic, ham10000, isic2017, isic2018, isic2019, isic2020 (+2019
merge, 1st-place targets), derm7pt, ph2, folders, csv. `python -m lesionkit data check DIR` lists every problem.
Importing this package is cheap: readers, loaders (fastai, torch) and albumentations load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it (PEP 562 lazy attributes)
_LAZY = {
    "load_dataset": "lesionkit.data.readers",
    "READERS": "lesionkit.data.readers",
    "LesionDataset": "lesionkit.data.table",
    "CANONICAL_COLUMNS": "lesionkit.data.table",
    "detect_format": "lesionkit.data.detect",
    "grouped_holdout": "lesionkit.data.splits",
    "grouped_kfold": "lesionkit.data.splits",
    "assert_no_group_leak": "lesionkit.data.splits",
    "official_splits": "lesionkit.data.splits",
    "MetaEncoder": "lesionkit.data.metadata",
    "image_dls": "lesionkit.data.loaders",
    "meta_dls": "lesionkit.data.loaders",
    "mask_dls": "lesionkit.data.loaders",
    "test_dl": "lesionkit.data.loaders",
    "patch_dls": "lesionkit.data.views",
    "tta_dl": "lesionkit.data.views",
    "check_dataset": "lesionkit.data.check",
    "load_rgb": "lesionkit.data.images",
    "DataError": "lesionkit.data.errors",
    "GroupLeakError": "lesionkit.data.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lesionkit.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = sorted(_LAZY)
