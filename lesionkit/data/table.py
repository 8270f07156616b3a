"""The canonical table every reader returns, and the checks that make it trustworthy.

One DataFrame per dataset, one row per image, with the same column names whatever the source layout, so splits,
metadata encoding, loaders and notebooks never need to know which ISIC year a folder came from.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from lesionkit.data import metadata_values
from lesionkit.data.errors import (
    CHECK_HINT,
    DataError,
    DuplicateIdError,
    MissingColumnError,
    MissingFileError,
    TooFewClassesError,
    UnknownLabelError,
    UnsafePathError,
)
from lesionkit.data.problems import collecting as problems_collected
from lesionkit.data.problems import line_of, listing, raise_or_collect

# Canonical columns, in this order; readers may add more (dermoscopic criteria, tfrecord, target, ...) after them.
CANONICAL_COLUMNS = ("image_id", "path", "label", "label_idx", "lesion_id", "patient_id", "age", "sex", "site",
                     "dx_type", "mask_path", "split")
TASKS = ("multiclass", "binary")
_MISSING_POLICIES = ("raise", "drop", "keep")
_NULL_IDS = {"", "-1", "nan", "none", "unknown"}


@dataclass
class LesionDataset:
    """A dataset as one table: `df` has CANONICAL_COLUMNS (+ extras), `classes[label_idx] == label`.

    `task` is "binary" when there are two classes and index 1 is the positive one (melanoma, malignant, asymmetric);
    `info` holds reader facts a notebook may need (e.g. `mel_idx`, the CSV files read).
    """

    name: str
    root: Path
    df: pd.DataFrame
    classes: list[str]
    task: str = "multiclass"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.classes = list(self.classes)
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: expected one of {TASKS}")

    def __len__(self) -> int:
        return len(self.df)

    def __repr__(self) -> str:
        counts = ", ".join(f"{c} {n}" for c, n in self.class_counts().items())
        return (f"LesionDataset(name={self.name!r}, root='{self.root}', n={len(self)}, task={self.task!r}, "
                f"classes: {counts})")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def has_masks(self) -> bool:
        return bool(self.df["mask_path"].notna().any())

    def class_counts(self) -> pd.Series:
        """Images per class in `classes` order (zeros included)."""
        return self.df["label"].value_counts().reindex(self.classes, fill_value=0)

    def subset(self, idx: Iterable[int] | np.ndarray, name: str | None = None) -> LesionDataset:
        """Rows `idx` (positions) as a new dataset with the same classes; its index is reset to 0..n-1."""
        df = self.df.iloc[np.asarray(list(idx) if not isinstance(idx, np.ndarray) else idx)].reset_index(drop=True)
        return LesionDataset(name or self.name, self.root, df, self.classes, self.task, dict(self.info))

    def split_indices(self) -> dict[str, np.ndarray]:
        """Positions per official split value (e.g. {'train': ..., 'valid': ..., 'test': ...}); empty when none."""
        s = self.df["split"]
        return {str(k): np.flatnonzero((s == k).to_numpy()) for k in s.dropna().unique()}


def require_columns(df: pd.DataFrame, required: Iterable[str], source: str | Path,
                    aliases: dict[str, Sequence[str]] | None = None) -> None:
    """Raise MissingColumnError naming every absent column, the columns found, and likely renames."""
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return
    hints = []
    for col in missing:
        for alt in (aliases or {}).get(col, ()):
            if alt in df.columns:
                hints.append(f"'{alt}' looks like '{col}': rename it or pass columns={{'{col}': '{alt}'}}")
    raise MissingColumnError(f"{source}: missing column(s) {missing}; found {list(df.columns)}. "
                             + ("; ".join(hints) if hints else "Check that this is the file the layout expects."))


def pick_column(df: pd.DataFrame, candidates: Sequence[str]) -> str | None:
    """The first of `candidates` present in df (case-sensitive, then case-insensitive)."""
    for c in candidates:
        if c in df.columns:
            return c
    lower = {c.lower(): c for c in df.columns}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    return None


def resolve_inside(root: Path, rel: str | os.PathLike, where: str, also: Sequence[Path] = ()) -> str:
    """`root / rel`, refusing any path that leaves root (`../../etc/passwd`, absolute paths elsewhere).

    The check is lexical (normpath), so a symlink placed inside the folder on purpose is followed when read.
    `also`: further folders a path may lie in (e.g. the ISIC 2019 folder merged into an ISIC 2020 dataset).
    """
    root_s = os.path.abspath(root)
    full = os.path.normpath(os.path.join(root_s, os.fspath(rel)))
    allowed = [root_s, *(os.path.abspath(a) for a in also)]
    if not any(full == a or full.startswith(a.rstrip(os.sep) + os.sep) for a in allowed):
        raise UnsafePathError(f"{where}: path '{rel}' resolves to '{full}', outside the data folder '{root_s}'. "
                              "Paths in a CSV must be relative to the dataset folder; fix or remove that row.")
    return full


def clean_ids(s: pd.Series) -> pd.Series:
    """Group ids as strings, with the layouts' null markers (-1 in ISIC 2019, '', 'unknown') as NaN."""
    out = s.astype("string").str.strip()
    out = out.mask(out.str.lower().isin(_NULL_IDS))
    return out.astype(object).where(out.notna(), np.nan)


def finalize(name: str, root: Path, df: pd.DataFrame, classes: Sequence[str], *, task: str | None = None,
             source: str | Path = "", missing: str = "raise", info: dict[str, Any] | None = None,
             check_files: bool = True, also_roots: Sequence[Path] = ()) -> LesionDataset:
    """Turn a reader's table (canonical names, `path`/`mask_path` relative to root or absolute) into a LesionDataset.

    Validates what a training run would otherwise hit half an epoch in: duplicate ids, unknown or missing labels,
    paths escaping the folder, and files the CSV names but the folder lacks (`missing`: raise | drop | keep).
    """
    if missing not in _MISSING_POLICIES:
        raise ValueError(f"missing={missing!r}: expected one of {_MISSING_POLICIES}")
    collecting = problems_collected()
    if collecting:
        missing = "keep"
    root = Path(root).resolve()
    src = str(source) or str(root)
    also_roots = [Path(a).resolve() for a in also_roots]
    require_columns(df, ("image_id", "path", "label"), src)
    df = df.copy()
    df["image_id"] = df["image_id"].astype(str).str.strip()

    dup = df["image_id"].duplicated(keep=False)
    if dup.any():
        rows = [f"{line_of(i)} ({v})" for i, v in df.loc[dup, "image_id"].items()]
        raise_or_collect(DuplicateIdError(
            f"{src}: {int(df.loc[dup, 'image_id'].nunique())} image id(s) appear on several rows: {listing(rows)}. "
            "Remove the duplicate rows (keep one per image)."))
        df = df.loc[~df["image_id"].duplicated(keep="first")]

    classes = [str(c) for c in classes]
    if len(classes) < 2:
        raise_or_collect(TooFewClassesError(
            f"{src}: the class list is {classes} (every row has that label); a classifier needs at least two classes. "
            "Add the other classes' images, or pass classes=[...] (the full class list) to the reader."))
    df["label"] = df["label"].astype(object).where(df["label"].notna(), np.nan)
    df.loc[df["label"].notna(), "label"] = df.loc[df["label"].notna(), "label"].astype(str)
    bad = df["label"].isna() | ~df["label"].isin(classes)
    if bad.any():
        rows = [f"{line_of(i)} ({r.image_id}: {r.label!r})" for i, r in df.loc[bad, ["image_id", "label"]].iterrows()]
        raise_or_collect(UnknownLabelError(
            f"{src}: {int(bad.sum())} row(s) have a label outside {classes}: {listing(rows)}. "
            "Fix the label, drop the rows, or pass classes=/label_map= to the reader."))
        df = df.loc[~bad]

    for col in ("path", "mask_path"):
        if col not in df.columns:
            df[col] = np.nan
        out, unsafe = [], []
        for i, v in df[col].items():
            if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
                out.append(np.nan)
                continue
            try:
                out.append(resolve_inside(root, str(v).strip(), f"{src}: {line_of(i)}, column '{col}'", also_roots))
            except UnsafePathError as e:
                raise_or_collect(e)
                out.append(np.nan)
                unsafe.append(i)
        df[col] = pd.Series(out, index=df.index, dtype=object)
        if unsafe and col == "path":
            df = df.drop(index=unsafe)
    if df["path"].isna().any():
        rows = [f"{line_of(i)} ({v})" for i, v in df.loc[df["path"].isna(), "image_id"].items()]
        if missing == "raise":
            raise MissingFileError(f"{src}: no image file found for {len(rows)} row(s): {listing(rows)}. "
                                   "Add the images, or pass missing='drop' to skip those rows.")
    if check_files:
        special = np.array([isinstance(p, str) and os.path.exists(p) and not os.path.isfile(p) for p in df["path"]],
                           dtype=bool)
        if special.any():  # a FIFO named x.jpg would block the first open(): refuse it here, by name
            rows = [f"{line_of(i)} ({p})" for i, p in df.loc[special, "path"].items()]
            raise_or_collect(DataError(
                f"{src}: {len(rows)} path(s) are not regular files (a FIFO, socket, device or folder named like an "
                f"image): {listing(rows)}. Replace each with the image file, or drop its row."))
            df = df.loc[~special]
        exists = np.array([isinstance(p, str) and os.path.isfile(p) for p in df["path"]], dtype=bool)
        if not exists.all():
            rows = [f"{line_of(i)} ({p if isinstance(p, str) else df.at[i, 'image_id']})"
                    for i, p in df.loc[~exists, "path"].items()]
            err = MissingFileError(f"{src}: {len(rows)} image file(s) named by the table are not in the folder: "
                                   f"{listing(rows)}. Restore them, or pass missing='drop' to skip those rows "
                                   f"({CHECK_HINT}).")
            if missing == "raise":
                raise err
            if collecting:
                raise_or_collect(err)
            if missing == "drop":
                warnings.warn(f"{name}: dropped {len(rows)} row(s) whose image is missing: {listing(rows, 5)}",
                              stacklevel=3)
                df = df.loc[exists]
        mask_ok = df["mask_path"].isna() | df["mask_path"].map(lambda p: isinstance(p, str) and os.path.isfile(p))
        if not mask_ok.all():
            msg = (f"{name}: {int((~mask_ok).sum())} mask file(s) named by the table are missing "
                   f"({listing(df.loc[~mask_ok, 'mask_path'].tolist(), 5)}); their mask_path is set to NaN")
            if collecting:
                raise_or_collect(MissingFileError(msg))
            else:
                warnings.warn(msg, stacklevel=3)
            df.loc[~mask_ok, "mask_path"] = np.nan

    for col in ("lesion_id", "patient_id"):
        df[col] = clean_ids(df[col]) if col in df.columns else np.nan
    df["age"], df["sex"] = metadata_values.checked_metadata(df, src)
    for col in ("site", "dx_type", "split"):
        if col not in df.columns:
            df[col] = np.nan
    df["label_idx"] = df["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    extras = [c for c in df.columns if c not in CANONICAL_COLUMNS]
    df = df[list(CANONICAL_COLUMNS) + extras].reset_index(drop=True)
    task = task or ("binary" if len(classes) == 2 else "multiclass")
    return LesionDataset(name, root, df, classes, task, dict(info or {}))


def require_two_classes(ds: LesionDataset, what: str | None = None) -> None:
    """Refuse a dataset whose rows cover fewer than two classes: training on it "completes" with BMA 0 and
    metrics that are undefined, so say so before any epoch runs."""
    counts = ds.class_counts()
    present = counts[counts > 0]
    if len(present) < 2:
        raise TooFewClassesError(
            f"{what or ds.root} has images of {len(present)} class(es) only "
            f"({ {str(k): int(v) for k, v in present.items()} }; classes {ds.classes}); "
            "training and its metrics need at least two. Add images of the other classes, or point data_dir at the "
            f"full dataset ({CHECK_HINT}).")


def require_nonempty(df: pd.DataFrame, source: str | Path) -> None:
    if len(df) == 0:
        raise DataError(f"{source}: the table has no rows")
