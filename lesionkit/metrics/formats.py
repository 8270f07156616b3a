"""The official ISIC CSV formats: read and validate them like the official scorer, and write them from every run.

Formats (truth and predictions share the layout; the id column's ``.jpg`` suffix is stripped as the scorer does):

* multiclass, ISIC 2018/2019 Task 3: ``image,MEL,NV,BCC,...`` (truth one-hot, predictions confidences in [0, 1]);
* binary, ISIC 2016/2017-style: ``image,MEL``;
* binary, ISIC 2020 / Kaggle: ``image_name,target`` (a truth file may also carry the official ISIC 2020 metadata
  columns, which are ignored).

A truth file may carry the scorer's ``score_weight``/``validation_weight`` columns; rows with ``score_weight`` 0 are
left out of scoring, and so is ``ISIC_0035068``, which isic-challenge-scoring hard-codes to weight 0.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lesionkit.utils.files import atomic_write

ID_COLUMNS = ("image", "image_name")
WEIGHT_COLUMNS = ("score_weight", "validation_weight")
ISIC2020_METADATA = ("patient_id", "lesion_id", "sex", "age_approx", "anatom_site_general_challenge",
                     "diagnosis", "benign_malignant", "filename")
ZERO_WEIGHT_IDS = ("ISIC_0035068",)  # isic_challenge_scoring.load_csv sets this image's weights to 0


class ScoreFormatError(ValueError):
    """A truth or prediction CSV does not follow the official format; the message names file, column and ids."""


def _ids_text(ids: Sequence[object], limit: int = 10) -> str:
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _read_raw(path: str | Path, role: str) -> tuple[Path, pd.DataFrame]:
    """Read a CSV as strings so that every later check can name the offending rows itself."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{role} file not found: {p}")
    if p.is_dir():
        raise ScoreFormatError(f"{role} file {p} is a directory; give the CSV file itself")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ScoreFormatError(f"{role} file {p} is not UTF-8 text ({e.reason} at byte {e.start}); "
                               "save it as a plain UTF-8 CSV") from e
    except OSError as e:
        raise ScoreFormatError(f"{role} file {p} cannot be read: {e.strerror or e}") from e
    if "\x00" in text[:2000]:
        raise ScoreFormatError(f"{role} file {p} looks binary (NUL bytes), not a CSV")
    if len([ln for ln in text.splitlines() if ln.strip()]) < 2:
        raise ScoreFormatError(f"{role} file {p} has no data rows: expected a header line and one line per image")
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as e:
        raise ScoreFormatError(f"{role} file {p} is not a valid CSV: {e}") from e
    ragged = [i + 1 for i, r in enumerate(rows) if r and len(r) != len(rows[0])]
    if ragged:  # pandas would silently turn the first column into an index or drop fields
        raise ScoreFormatError(f"{role} file {p}: line(s) {_ids_text(ragged)} have a different number of fields "
                               f"than the header ({len(rows[0])}: {rows[0]})")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise ScoreFormatError(f"{role} file {p} is not a valid CSV: {str(e).strip()}") from e
    df.columns = [str(c).strip() for c in df.columns]
    dup_cols = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dup_cols or any(c.startswith("Unnamed:") for c in df.columns):
        raise ScoreFormatError(f"{role} file {p}: duplicate or empty column names in header {list(df.columns)}")
    return p, df


def _id_column(df: pd.DataFrame, p: Path, role: str) -> str:
    found = [c for c in ID_COLUMNS if c in df.columns]
    if len(found) != 1:
        what = "no" if not found else "two"
        raise ScoreFormatError(f"{role} file {p} has {what} id column: need exactly one of 'image' (ISIC 2016-2019) "
                               f"or 'image_name' (ISIC 2020); header is {list(df.columns)}")
    return found[0]


def _ids(df: pd.DataFrame, col: str, p: Path, role: str) -> pd.Series:
    ids = df[col].str.strip().str.replace(r"\.jpg$", "", case=False, regex=True)
    empty = ids == ""
    if empty.any():
        rows = (np.flatnonzero(empty.to_numpy()) + 2).tolist()  # +2: header line and 1-based numbering
        raise ScoreFormatError(f"{role} file {p}: empty '{col}' at line(s) {_ids_text(rows)}")
    dups = ids[ids.duplicated()].unique().tolist()
    if dups:
        raise ScoreFormatError(f"{role} file {p}: duplicate ids in column '{col}': {_ids_text(dups)}; "
                               "keep one row per image (average test-time augmentations first)")
    return ids


def _numeric(df: pd.DataFrame, cols: Sequence[str], ids: pd.Series, p: Path, role: str) -> pd.DataFrame:
    """Parse columns to float, naming the ids with empty, NaN or non-numeric cells."""
    out = {}
    for c in cols:
        raw = df[c].str.strip()
        values = pd.to_numeric(raw, errors="coerce").astype(np.float64)
        missing = (raw == "") | raw.str.lower().isin(["nan", "na", "n/a", "null", "none"])
        if missing.any():
            raise ScoreFormatError(f"{role} file {p}: missing/NaN value in column '{c}' for ids "
                                   f"{_ids_text(ids[missing.to_numpy()].tolist())}")
        bad = values.isna() | ~np.isfinite(values.fillna(0.0))
        if bad.any():
            examples = raw[bad.to_numpy()].head(3).tolist()
            raise ScoreFormatError(f"{role} file {p}: non-numeric value(s) {examples} in column '{c}' for ids "
                                   f"{_ids_text(ids[bad.to_numpy()].tolist())}")
        out[c] = values.to_numpy()
    return pd.DataFrame(out, index=ids.to_numpy())


def _check_range(values: pd.DataFrame, p: Path, role: str) -> None:
    for c in values.columns:
        out = (values[c] < 0.0) | (values[c] > 1.0)
        if out.any():
            raise ScoreFormatError(f"{role} file {p}: values outside [0, 1] in column '{c}' for ids "
                                   f"{_ids_text(values.index[out.to_numpy()].tolist())}; "
                                   "write probabilities (apply softmax/sigmoid), not logits")


@dataclass
class Truth:
    """A parsed ground-truth file: categories in file order, labels as indices into them, rows excluded by weight."""

    path: Path
    id_column: str
    categories: list[str]
    labels: pd.Series  # index = image id, value = category index (binary: 0/1)
    excluded: list[str] = field(default_factory=list)

    @property
    def kind(self) -> Literal["binary", "multiclass"]:
        return "binary" if len(self.categories) == 1 else "multiclass"


def read_truth(path: str | Path) -> Truth:
    """Read and validate a ground-truth CSV in one of the official formats (see the module docstring)."""
    p, df = _read_raw(path, "truth")
    id_col = _id_column(df, p, "truth")
    ids = _ids(df, id_col, p, "truth")
    ignored = set(WEIGHT_COLUMNS) | (set(ISIC2020_METADATA) if "target" in df.columns else set())
    categories = [c for c in df.columns if c != id_col and c not in ignored]
    if not categories:
        raise ScoreFormatError(f"truth file {p} has no category column: expected e.g. 'image,MEL' or "
                               f"'image,MEL,NV,BCC,AKIEC,BKL,DF,VASC'; header is {list(df.columns)}")
    values = _numeric(df, categories, ids, p, "truth")
    not01 = ~values.isin([0.0, 1.0]).all(axis=1)
    if not01.any():
        raise ScoreFormatError(f"truth file {p}: truth values must be 0 or 1; other values for ids "
                               f"{_ids_text(values.index[not01.to_numpy()].tolist())}")
    if len(categories) == 1:
        labels = values[categories[0]].astype(np.int64)
    else:
        sums = values.sum(axis=1)
        if (sums != 1).any():
            raise ScoreFormatError(f"truth file {p}: each row must mark exactly one category with 1 (one-hot); "
                                   f"rows with {sorted(set(sums[sums != 1].astype(int).tolist()))} ones for ids "
                                   f"{_ids_text(values.index[(sums != 1).to_numpy()].tolist())}")
        labels = pd.Series(values.to_numpy().argmax(axis=1), index=values.index, dtype=np.int64)
    excluded = [i for i in ZERO_WEIGHT_IDS if i in labels.index]
    if "score_weight" in df.columns:
        w = _numeric(df, ["score_weight"], ids, p, "truth")["score_weight"]
        frac = ~w.isin([0.0, 1.0])
        if frac.any():
            raise ScoreFormatError(f"truth file {p}: score_weight must be 0 (excluded) or 1 (scored); other values "
                                   f"for ids {_ids_text(w.index[frac.to_numpy()].tolist())}")
        excluded = sorted(set(excluded) | set(w.index[(w == 0).to_numpy()]))
    labels = labels.drop(index=excluded)
    if labels.empty:
        raise ScoreFormatError(f"truth file {p}: every row is excluded (score_weight 0 or a known zero-weight id), "
                               "so nothing is left to score; set score_weight 1 on the rows to score")
    return Truth(p, id_col, categories, labels, excluded)


def read_predictions(path: str | Path, categories: Sequence[str]) -> pd.DataFrame:
    """Read and validate a prediction CSV whose columns must be exactly the truth ``categories`` plus one id column."""
    p, df = _read_raw(path, "prediction")
    id_col = _id_column(df, p, "prediction")
    ids = _ids(df, id_col, p, "prediction")
    columns = [c for c in df.columns if c != id_col]
    missing = [c for c in categories if c not in columns]
    extra = [c for c in columns if c not in categories]
    if missing:
        raise ScoreFormatError(f"prediction file {p}: missing column(s) {missing}; the truth file's categories are "
                               f"{list(categories)}")
    if extra:
        raise ScoreFormatError(f"prediction file {p}: extra column(s) {extra}; expected only '{id_col}' and "
                               f"{list(categories)}")
    values = _numeric(df, list(categories), ids, p, "prediction")
    _check_range(values, p, "prediction")
    return values


@dataclass
class ScoringPair:
    """Truth and predictions aligned on the same ids (sorted), ready for the metric functions."""

    kind: Literal["binary", "multiclass"]
    categories: list[str]
    ids: list[str]
    y_true: np.ndarray  # int labels
    scores: np.ndarray  # binary: (n,) P(positive); multiclass: (n, n_categories)
    excluded: list[str]
    truth_path: Path
    pred_path: Path


def load_pair(truth_path: str | Path, pred_path: str | Path) -> ScoringPair:
    """Read both files, validate them against each other (ids in one file only are errors) and align the rows."""
    truth = read_truth(truth_path)
    pred = read_predictions(pred_path, truth.categories)
    pred = pred.drop(index=[i for i in truth.excluded if i in pred.index])
    missing = truth.labels.index.difference(pred.index, sort=False).tolist()
    extra = pred.index.difference(truth.labels.index, sort=False).tolist()
    problems = []
    if missing:
        problems.append(f"no prediction for {len(missing)} id(s) of truth file {truth_path}: "
                        f"{_ids_text(sorted(missing))}")
    if extra:
        problems.append(f"{len(extra)} id(s) not in truth file {truth_path}: {_ids_text(sorted(extra))}")
    if problems:
        raise ScoreFormatError(f"prediction file {pred_path}: " + "; and ".join(problems))
    ids = sorted(truth.labels.index)
    scores = pred.loc[ids, truth.categories].to_numpy()
    if truth.kind == "binary":
        scores = scores[:, 0]
    y = truth.labels.loc[ids].to_numpy()
    for name, cls in (("positive", 1), ("negative", 0)) if truth.kind == "binary" else ():
        if not (y == cls).any():
            raise ScoreFormatError(f"truth file {truth_path}: no {name} row in column '{truth.categories[0]}'; "
                                   "AUC and the operating points need both classes")
    return ScoringPair(truth.kind, truth.categories, ids, y, scores, truth.excluded, Path(truth_path), Path(pred_path))


def write_predictions(
    out_dir: str | Path,
    image_ids: Sequence[str],
    probs: ArrayLike,
    classes: Sequence[str],
    y_true: ArrayLike | None = None,
    fmt: Literal["auto", "isic2018", "isic_binary", "isic2020"] = "auto",
    stem: str = "predictions",
    positive_column: str = "MEL",
) -> dict[str, Path]:
    """Write predictions (and, given ``y_true`` indices, the matching truth) in an official ISIC format.

    ``fmt="auto"``: more than two classes -> ISIC 2018/2019 one-hot columns (class names upper-cased, so HAM codes
    become MEL, NV, BCC, AKIEC, BKL, DF, VASC); two classes -> ``image,<positive_column>`` with P(classes[1]).
    ``"isic2020"`` writes ``image_name,target``. Returns ``{"pred": path, "truth": path}`` (truth only with ``y_true``),
    files named ``<stem>.csv`` and ``<stem>_truth.csv``; both can go to ``isic-challenge-scoring`` or
    ``python -m lesionkit score``.
    """
    ids = [str(i) for i in image_ids]
    p = np.asarray(probs, dtype=np.float64)
    if len(set(ids)) != len(ids):
        dups = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"write_predictions: duplicate image ids {_ids_text(dups)}")
    if p.shape[0] != len(ids):
        raise ValueError(f"write_predictions: {len(ids)} image ids but probs has {p.shape[0]} rows")
    if not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=1) > 1:
        raise ValueError("write_predictions: probs must be finite probabilities in [0, 1] (apply softmax/sigmoid)")
    binary = len(classes) == 2
    if fmt == "auto":
        fmt = "isic_binary" if binary else "isic2018"
    if fmt in ("isic_binary", "isic2020"):
        if not binary:
            raise ValueError(f"format {fmt!r} is binary but {len(classes)} classes were given: {list(classes)}")
        pos = p[:, 1] if p.ndim == 2 and p.shape[1] == 2 else p.reshape(len(ids))
        id_col, cols = ("image_name", ["target"]) if fmt == "isic2020" else ("image", [positive_column])
        values = pos[:, None]
        truth_values = None if y_true is None else np.asarray(y_true, dtype=np.int64)[:, None]
    elif fmt == "isic2018":
        cols = [str(c).upper() for c in classes]
        if len(set(cols)) != len(cols):
            raise ValueError(f"class names {list(classes)} collide once upper-cased")
        if p.ndim != 2 or p.shape[1] != len(cols):
            raise ValueError(f"probs must have shape ({len(ids)}, {len(cols)}), got {p.shape}")
        id_col, values = "image", p
        truth_values = None if y_true is None else np.eye(len(cols), dtype=np.int64)[np.asarray(y_true, dtype=np.int64)]
    else:
        raise ValueError(f"fmt must be 'auto', 'isic2018', 'isic_binary' or 'isic2020', got {fmt!r}")

    out = Path(out_dir)
    if truth_values is not None and truth_values.shape[0] != len(ids):
        raise ValueError(f"y_true has {truth_values.shape[0]} rows but there are {len(ids)} image ids")
    paths = {"pred": out / f"{stem}.csv"}
    atomic_write(paths["pred"], pd.DataFrame(values, columns=cols).assign(**{id_col: ids})[[id_col, *cols]]
                 .to_csv(index=False))
    if truth_values is not None:
        paths["truth"] = out / f"{stem}_truth.csv"
        atomic_write(paths["truth"], pd.DataFrame(truth_values, columns=cols).assign(**{id_col: ids})[[id_col, *cols]]
                     .to_csv(index=False))
    return paths
