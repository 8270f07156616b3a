"""Readers for the official layouts, one module per dataset family; `load_dataset` picks one by name or detection."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Callable

from lesionkit.data.errors import FormatDetectionError
from lesionkit.data.images import IMAGE_EXTENSIONS
from lesionkit.data.table import LesionDataset

# format -> "module:function" (imported on first use)
READERS: dict[str, str] = {
    "synthetic": "synthetic_set:read_synthetic",
    "ham10000": "ham10000:read_ham10000",
    "isic2018": "ham10000:read_isic2018",
    "isic2017": "isic2017:read_isic2017",
    "isic2019": "isic2019:read_isic2019",
    "isic2020": "isic2020:read_isic2020",
    "derm7pt": "derm7pt:read_derm7pt",
    "ph2": "ph2:read_ph2",
    "folders": "folders:read_class_folders",
    "csv": "generic_csv:read_csv_dataset",
}
# shared-data folder names (under $LESIONKIT_DATA) that load_dataset accepts as a bare name
SHARED_NAMES = ("ham10000_224", "isic2020_512", "ph2", "testsuite_sample")


def get_reader(fmt: str) -> Callable[..., LesionDataset]:
    if fmt not in READERS:
        raise ValueError(f"fmt={fmt!r}: unknown format; choose from {['auto', *READERS]}")
    module, func = READERS[fmt].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)


def resolve_source(source: str | os.PathLike | None) -> tuple[Path, str | None]:
    """(folder or file, format implied by the name or None). None / 'synthetic' -> the cached synthetic default."""
    if source is not None and not str(source).strip():
        raise FileNotFoundError(f"empty dataset path {source!r} (an unset variable?): pass a dataset folder, a CSV "
                                "or 'synthetic' (an empty path is never read as the working directory)")
    if source is None or str(source) == "synthetic":
        from lesionkit.data.synthetic import default_synthetic_dir  # lazy

        return default_synthetic_dir(), "synthetic"
    path = Path(source).expanduser().absolute()  # absolute: a relative folder is never joined onto itself
    if path.exists():
        return path, None
    if str(source) in SHARED_NAMES:
        base = os.environ.get("LESIONKIT_DATA")
        if not base:
            raise FileNotFoundError(f"'{source}' is a shared dataset name, but LESIONKIT_DATA is not set; "
                                    "set it to the shared data folder or pass the dataset's path")
        path = Path(base).expanduser() / str(source)
        if path.exists():
            return path, None
    raise FileNotFoundError(f"{source}: no such folder or file (pass a dataset folder, a CSV, 'synthetic', "
                            f"or one of {list(SHARED_NAMES)} with LESIONKIT_DATA set)")


def resolve_format(source: str | os.PathLike | None, fmt: str = "auto") -> tuple[Path, str]:
    """(folder or file, reader name): `fmt` itself, else the format the name implies, 'csv' for a file, or the one
    detected from the folder's files."""
    path, implied = resolve_source(source)
    if fmt != "auto":
        return path, fmt
    if implied is not None:
        return path, implied
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise FormatDetectionError(f"{path}: an image file, not a dataset; pass the dataset's folder or its CSV "
                                       "table")
        return path, "csv"
    from lesionkit.data.detect import detect_format  # lazy: readers load on first use (each imports this package)

    return path, detect_format(path)


def load_dataset(source: str | os.PathLike | None = None, fmt: str = "auto", bad_metadata: str | None = None,
                 **kw: Any) -> LesionDataset:
    """Read a dataset into the canonical table.

    `source`: a folder, a CSV file, 'synthetic' / None (the cached synthetic set), or a shared-data name such as
    'ham10000_224' (resolved under $LESIONKIT_DATA). `fmt`: 'auto' (detected from the files; see detect.py) or one
    of READERS. `bad_metadata`: 'raise' refuses impossible ages and unknown sexes naming the rows; 'missing'
    treats them as not recorded (see metadata_values); None (default): the enclosing `bad_metadata_policy`, else
    'raise'. Remaining keywords go to the reader (e.g. target=,
    parts=, missing='drop', columns=).
    """
    from lesionkit.data.metadata_values import bad_metadata_policy, current_policy  # lazy

    path, fmt = resolve_format(source, fmt)
    with bad_metadata_policy(bad_metadata or current_policy()):
        return get_reader(fmt)(path, **kw)


def evaluation_parts(path: Path, fmt: str) -> dict[str, Any]:
    """Reader keywords that read an external test folder's most held-out official part: an ISIC 2017 / 2018 / 2019
    download holding the Test ground truth is scored on its test rows only (not on the training rows the readers
    default to); other layouts are read whole."""
    parts = present_parts(path, fmt)
    for part in ("test", "valid", "train"):  # most held-out first
        if part in parts:
            return {"parts": (part,)}
    return {}


def present_parts(path: Path, fmt: str) -> tuple[str, ...]:
    """The official parts (train, valid, test) whose ground truth an ISIC 2017 / 2018 / 2019 download holds, in
    that order; () for other layouts. A test-only download has ("test",)."""
    from lesionkit.data.readers.common import find_file  # lazy: readers load on first use (each imports this package)
    from lesionkit.data.readers.ham10000 import _PART_FILES as ISIC2018_PARTS  # lazy: see above
    from lesionkit.data.readers.isic2017 import PART_NAMES as ISIC2017_PARTS  # lazy: see above
    from lesionkit.data.readers.isic2019 import _PARTS as ISIC2019_PARTS  # lazy: see above

    ground_truth = {"isic2017": {p: f"ISIC-2017_{tag}_Part3_GroundTruth.csv" for p, tag in ISIC2017_PARTS.items()},
                    "isic2018": ISIC2018_PARTS, "isic2019": {p: files[0] for p, files in ISIC2019_PARTS.items()}}
    files = ground_truth.get(fmt, {})
    return tuple(part for part in ("train", "valid", "test")
                 if part in files and find_file(Path(path), [files[part]], required=False) is not None)


__all__ = ["READERS", "SHARED_NAMES", "FormatDetectionError", "evaluation_parts", "get_reader", "load_dataset",
           "present_parts", "resolve_format", "resolve_source"]
