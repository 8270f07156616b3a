"""Any CSV with configurable column names: the reader behind labels.csv-style folders and custom datasets."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from lesionkit.data.errors import MissingColumnError
from lesionkit.data.readers.common import ALIASES, canonical_columns, dataset_root, index_images, read_csv, to_canonical
from lesionkit.data.table import LesionDataset, finalize, require_nonempty


def read_csv_dataset(source: str | Path, csv: str | Path | None = None, *, columns: Mapping[str, str] | None = None,
                     classes: Sequence[str] | None = None, label_map: Mapping[str, str] | Callable | None = None,
                     image_dir: str | Path | None = None, ext: str | None = None, name: str | None = None,
                     missing: str = "raise", task: str | None = None,
                     default_csv: Sequence[str] = ("labels.csv",)) -> LesionDataset:
    """Read a CSV whose rows are images.

    `source` is the dataset folder (paths are relative to it) or the CSV itself. `columns` maps canonical names
    (image_id, path, label, mask_path, lesion_id, patient_id, age, sex, site, dx_type) to this CSV's names; the
    unnamed ones are found by common aliases (dx/diagnosis/label, filename/path, ...). Without a path column images
    are found by id under `image_dir` (or the folder). `label_map` renames labels (dict or function) before the
    class check; `classes` fixes the class list and order (default: sorted labels found).
    """
    source = dataset_root(source)
    if source.is_file():
        csv_path, root = source, source.parent
    else:
        root = source
        csv_path = Path(csv) if csv is not None else None
        if csv_path is None:
            for cand in default_csv:
                if (root / cand).is_file():
                    csv_path = root / cand
                    break
        if csv_path is None:
            raise FileNotFoundError(f"{root}: no {list(default_csv)}; pass csv= (the table naming the images)")
        if not csv_path.is_absolute():
            csv_path = root / csv_path
    raw = read_csv(csv_path)
    require_nonempty(raw, csv_path)
    mapping = canonical_columns(raw, dict(columns or {}))
    for need in ("image_id", "label"):
        if need not in mapping:
            if need == "image_id" and "path" in mapping:
                continue
            raise MissingColumnError(
                f"{csv_path}: no column for '{need}' (looked for {list(ALIASES[need])}); found {list(raw.columns)}. "
                f"Pass columns={{'{need}': '<your column>'}}.")
    df = to_canonical(raw, mapping)
    if "image_id" not in df.columns:
        df["image_id"] = df["path"].astype(str).map(lambda p: Path(p).stem)
    if label_map is not None:
        fn = label_map if callable(label_map) else (lambda v, m=dict(label_map): m.get(v, v))
        df["label"] = df["label"].map(lambda v: fn(v) if pd.notna(v) else v)
    df["label"] = df["label"].astype(object).map(lambda v: _label_str(v) if pd.notna(v) else np.nan)
    if "path" not in df.columns or df["path"].isna().all():
        idx = index_images(root, [image_dir] if image_dir else None)
        suffix = ext or ""
        df["path"] = df["image_id"].astype(str).map(lambda i: idx.get(i) or idx.get(Path(i + suffix).stem, np.nan))
    if classes is None:
        classes = sorted(df["label"].dropna().astype(str).unique())
    return finalize(name or root.name, root, df, classes, task=task, source=csv_path, missing=missing,
                    info={"csv": str(csv_path)})


def _label_str(v: object) -> str:
    """Labels as strings; integral floats (1.0 from a numeric CSV column) as '1'."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)
