"""Helpers shared by the readers: finding CSVs and images by id the way the official downloads lay them out."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from lesionkit.data.errors import DataError, MissingColumnError
from lesionkit.data.images import IMAGE_EXTENSIONS
from lesionkit.data.problems import line_of, raise_or_collect
from lesionkit.data.table import pick_column
from lesionkit.utils.files import walk_files

# Canonical column -> names the layouts use for it (first match wins).
ALIASES: dict[str, tuple[str, ...]] = {
    "image_id": ("image_id", "image_name", "image", "isic_id", "id", "sample_id", "File"),
    "path": ("filename", "path", "file", "filepath", "image_path"),
    "label": ("dx", "label", "diagnosis", "class", "target"),
    "mask_path": ("mask_filename", "mask_path", "mask"),
    "lesion_id": ("lesion_id",),
    "patient_id": ("patient_id",),
    "age": ("age", "age_approx", "age_approximate"),
    "sex": ("sex",),
    "site": ("localization", "anatom_site_general_challenge", "anatom_site_general", "site", "location"),
    "dx_type": ("dx_type", "diagnosis_confirm_type"),
    "split": ("split",),
}


def dataset_root(root: str | os.PathLike) -> Path:
    """A reader's folder as an absolute path, so paths built from it are never joined onto it twice (a relative
    `cases/x` used to become `cases/x/cases/x/labels.csv`)."""
    return Path(root).expanduser().absolute()


def read_csv(path: Path, **kw: object) -> pd.DataFrame:
    """read_csv with a clear error for an empty, unparsable or non-UTF-8 file; keeps the RangeIndex (line = index + 2)."""
    try:
        return pd.read_csv(path, low_memory=False, encoding="utf-8", **kw)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the CSV is empty") from None
    except (PermissionError, IsADirectoryError) as e:
        raise DataError(f"{path}: the table cannot be read ({e.strerror}); fix its permissions") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{path}: not a valid CSV ({e}). Fix the file's quoting/delimiters.") from None
    except UnicodeDecodeError as e:

        raise_or_collect(DataError(not_utf8_message(path, e)))  # under `data check`: noted, then read on as latin-1
        return pd.read_csv(path, low_memory=False, encoding="latin-1", **kw)


def not_utf8_message(path: Path, err: UnicodeDecodeError) -> str:
    """Where the first non-UTF-8 byte is (line, column, the line as latin-1 would read it) and how to fix it."""
    data = Path(path).read_bytes()
    try:  # pandas reports the offset inside its read buffer: decode the whole file for the true one
        data.decode("utf-8")
        at = err.start
    except UnicodeDecodeError as whole:
        at = whole.start
    line = data.count(b"\n", 0, at) + 1
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    text = data[start:end if end >= 0 else len(data)].decode("latin-1").rstrip("\r")
    return (f"{path}: not UTF-8 text: byte 0x{data[at]:02x} at line {line}, column {at - start + 1} "
            f"({text[:80]!r} as latin-1). Re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 "
            f"{Path(path).name} > utf8.csv` or Excel's 'CSV UTF-8' format.")


def find_file(root: Path, names: Iterable[str], required: bool = True, what: str = "CSV") -> Path | None:
    """The first of `names` (glob patterns allowed) found directly in root or one folder down."""
    for name in names:
        for pattern in (name, f"*/{name}"):
            hits = sorted(root.glob(pattern))
            if hits:
                return hits[0]
    if required:
        raise FileNotFoundError(f"{root}: no {what} named {list(names)} here or one folder down. "
                                "Point the reader at the folder of the official download.")
    return None


def index_images(root: Path, dirs: Sequence[str | Path] | None = None, exts: Sequence[str] = IMAGE_EXTENSIONS,
                 exclude_suffixes: Sequence[str] = ("_segmentation", "_superpixels", "_lesion", "_mask"),
                 ) -> dict[str, str]:
    """Map file stem -> absolute path for images under root (or under `dirs`, searched in order).

    Stems ending in a mask/superpixel suffix are left out, so `ISIC_x_segmentation.png` never shadows `ISIC_x.jpg`.
    When a stem occurs twice the earlier `dirs` entry wins (e.g. ISIC 2019 input folder over a stray 2018 copy).
    """
    bases = [root / d for d in dirs] if dirs else [root]
    out: dict[str, str] = {}
    extset = {e.lower() for e in exts}
    for base in bases:
        if not base.is_dir():
            continue
        for dirpath, filenames in _walk(base):
            for fn in filenames:
                stem, ext = os.path.splitext(fn)
                if ext.lower() in extset and not stem.endswith(tuple(exclude_suffixes)) and stem not in out:
                    out[stem] = os.path.join(dirpath, fn)
    return out


def _walk(base: Path) -> Iterator[tuple[str, list[str]]]:
    """`walk_files` (symbolic links followed) with an unreadable folder as a DataError naming it."""
    try:
        yield from walk_files(base)
    except PermissionError as err:
        raise DataError(f"{err.strerror} (the images under it are there, but cannot be listed)") from None


def index_masks(root: Path, dirs: Sequence[str | Path] | None = None, suffix: str = "_segmentation") -> dict[str, str]:
    """Map image id -> mask path for files named `<id><suffix>.png` (ISIC) under root or `dirs`."""
    bases = [root / d for d in dirs] if dirs else [root]
    out: dict[str, str] = {}
    for base in bases:
        if not base.is_dir():
            continue
        for dirpath, filenames in _walk(base):
            for fn in filenames:
                stem, ext = os.path.splitext(fn)
                if ext.lower() in (".png", ".bmp", ".gif", ".jpg") and stem.endswith(suffix):
                    out.setdefault(stem[: -len(suffix)], os.path.join(dirpath, fn))
    return out


def canonical_columns(raw: pd.DataFrame, columns: dict[str, str] | None = None,
                      wanted: Sequence[str] = tuple(ALIASES)) -> dict[str, str]:
    """canonical name -> raw column: explicit `columns` first, then ALIASES. Raises if an explicit one is absent."""
    mapping: dict[str, str] = {}
    for canon in wanted:
        if columns and canon in columns:
            if columns[canon] not in raw.columns:
                raise MissingColumnError(f"column '{columns[canon]}' (given for {canon}) not in {list(raw.columns)}")
            mapping[canon] = columns[canon]
        else:
            found = pick_column(raw, ALIASES.get(canon, (canon,)))
            if found is not None and found not in mapping.values():
                mapping[canon] = found
    return mapping


def to_canonical(raw: pd.DataFrame, mapping: dict[str, str], keep_extra: bool = True) -> pd.DataFrame:
    """Rename raw columns to canonical names; other raw columns are kept as extras (never silently lost)."""
    df = pd.DataFrame(index=raw.index)
    for canon, col in mapping.items():
        df[canon] = raw[col]
    if keep_extra:
        for col in raw.columns:
            if col not in mapping.values() and col not in df.columns:
                df[col] = raw[col]
    return df


def paths_from_index(ids: pd.Series, index: dict[str, str]) -> pd.Series:
    return ids.astype(str).map(lambda i: index.get(i, np.nan))


def onehot_to_label(raw: pd.DataFrame, cols: Sequence[str], source: Path) -> pd.Series:
    """Label = the column holding the row's 1 in an ISIC one-hot table; rows with no or several 1s raise."""
    vals = raw[list(cols)].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
    hot = vals > 0.5
    bad = hot.sum(1) != 1
    if bad.any():
        rows = [f"{line_of(i)} ({raw.iloc[k, 0]})" for k, i in enumerate(raw.index) if bad[k]][:10]
        raise DataError(f"{source}: {int(bad.sum())} row(s) are not one-hot over {list(cols)}: {', '.join(rows)}. "
                        "Each row needs exactly one 1.")
    return pd.Series(np.asarray(cols, dtype=object)[hot.argmax(1)], index=raw.index)
