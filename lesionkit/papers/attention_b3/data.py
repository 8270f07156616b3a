"""attention_b3's training data: the paper's ISIC 2019 + 2020 9-class diagnosis (methods-b §A.1-A.2, §B.5).

Two folders make the paper's data: ``data_dir`` (ISIC 2020: Deotte's ``jpeg-melanoma-*`` with train.csv and
tfrecord, or the official ``ISIC_2020_Training_GroundTruth*.csv``) and ``data_dir_2019`` (ISIC 2019: Deotte's
``jpeg-isic2019-*`` or the official ``ISIC_2019_Training_*`` files). ``data_dir`` may also be the 1st place's parent
folder holding one ``jpeg-melanoma-{F}x{F}/`` and one ``jpeg-isic2019-{F}x{F}/``; the 2019 folder is then found there.
The merge itself is the ISIC 2020 reader's (``read_isic2020(merge_2019=...)``): 2020 drops tfrecord -1, 2019 keeps
tfrecord >= 0, 2020 diagnoses are renamed onto the 2019 classes, ``is_ext`` = 1 marks 2019 rows.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from lesionkit.config import ConfigError
from lesionkit.data import load_dataset
from lesionkit.data.readers import resolve_format
from lesionkit.data.tasks import one_vs_rest
from lesionkit.papers.common import resolve_data_dir

TASKS = ("auto", "diagnosis9", "melanoma", "classes")


def first_place_folders(data_dir: str | Path) -> tuple[Path, Path] | None:
    """(2020 folder, 2019 folder) when ``data_dir`` is the 1st place's parent of ``jpeg-melanoma-*`` and
    ``jpeg-isic2019-*`` (one of each); None when it holds neither."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        return None
    found = {tag: sorted(p for p in root.glob(f"jpeg-{tag}-*") if p.is_dir()) for tag in ("melanoma", "isic2019")}
    if not found["melanoma"] and not found["isic2019"]:
        return None
    if len(found["melanoma"]) != 1 or len(found["isic2019"]) != 1:
        raise ConfigError(f"data_dir {root}: the 1st-place layout needs one jpeg-melanoma-* and one jpeg-isic2019-* "
                          f"folder, found {[p.name for v in found.values() for p in v]}; point data_dir at the "
                          "ISIC 2020 folder and data_dir_2019 at the ISIC 2019 folder of the same resolution")
    return found["melanoma"][0], found["isic2019"][0]


def data_folders(cfg: Any) -> tuple[Path, Path | None]:
    """(the ISIC 2020 or other training folder, the ISIC 2019 folder to merge or None)."""
    pair = None if cfg.data_dir_2019 else first_place_folders(cfg.data_dir)
    if pair is not None:
        return pair
    return resolve_data_dir(cfg.data_dir), (Path(cfg.data_dir_2019).expanduser().resolve()
                                            if cfg.data_dir_2019 else None)


def resolved_task(cfg: Any) -> str:
    """``task`` with "auto" resolved: the paper's 9-class diagnosis when ISIC 2019 is there to merge (the paper's
    data), else the dataset's own classes."""
    if cfg.task != "auto":
        return cfg.task
    return "diagnosis9" if data_folders(cfg)[1] is not None else "classes"


def read_training_data(cfg: Any) -> Any:
    """The training dataset of ``cfg`` (all rows; `load` subsamples): 9-class ISIC 2019 + 2020, the dataset's own
    classes, or (``task="melanoma"``) ``positive`` vs the rest of either."""
    root, r2019 = data_folders(cfg)
    task = resolved_task(cfg)
    nine = task == "diagnosis9" or (task == "melanoma" and r2019 is not None)
    kw: dict[str, Any] = {"bad_metadata": cfg.bad_metadata}
    if nine:
        fmt = resolve_format(root, cfg.data_format)[1]
        if fmt != "isic2020":
            raise ConfigError(f"task={cfg.task!r} with data_dir {root} ({fmt}): the paper's 9-class data needs an "
                              "ISIC 2020 data_dir (Deotte's jpeg-melanoma-* or ISIC_2020_Training_GroundTruth*.csv) "
                              "and optionally data_dir_2019; use task='classes' for this dataset's own classes")
        kw.update(target="diagnosis9", fold_mode=cfg.fold_mode,
                  **({"merge_2019": r2019} if r2019 is not None else {}))
        ds = load_dataset(root, fmt="isic2020", **kw)
        _check_nine(ds, root, r2019)
    elif r2019 is not None:
        raise ConfigError(f"data_dir_2019={cfg.data_dir_2019!r} is merged only by task='diagnosis9' or 'melanoma' "
                          f"(task={cfg.task!r}); leave it empty for task='classes'")
    else:
        path, fmt = resolve_format(root, cfg.data_format)
        ds = load_dataset(path, fmt=fmt, **kw, **({"fold_mode": cfg.fold_mode} if fmt == "isic2020" else {}))
    _warn_fold_count(ds, cfg)
    return one_vs_rest(ds, cfg.positive) if task == "melanoma" and ds.n_classes > 2 else ds


def _check_nine(ds: Any, root: Path, r2019: Path | None) -> None:
    counts = ds.class_counts()
    empty = [str(c) for c, n in counts.items() if n == 0]
    if empty:
        hint = (f" in {root} + {r2019}: add their images" if r2019 else f" in {root}: ISIC 2020 alone has no AK, "
                "BCC, DF, SCC or VASC; give data_dir_2019 (ISIC 2019)")
        raise ConfigError(f"task='diagnosis9': classes {empty} have no images{hint}, or use task='classes' / "
                          "'melanoma'")


def _warn_fold_count(ds: Any, cfg: Any) -> None:
    """Say so when fold_mode='tfrecord' meets Deotte's 15 tfrecords: the code then validates on 1/15 per fold."""
    if "fold" not in ds.df or cfg.fold_mode != "tfrecord":
        return
    n = ds.df["fold"].dropna().nunique()
    if n > 5:
        warnings.warn(f"fold_mode='tfrecord': {n} distinct tfrecords (Deotte's 0-14, not the Going Smaller CSVs' "
                      "0-4), so each fold validates on one tfrecord as the code would; fold_mode='default' maps "
                      "them onto the 1st place's 5 folds", stacklevel=3)


__all__ = ["TASKS", "data_folders", "first_place_folders", "read_training_data", "resolved_task"]
