"""lesionkit.data: datasets as one canonical table, honest splits, metadata encoding and fastai DataLoaders.

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
