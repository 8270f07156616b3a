"""Leakage-free splits: stratified folds grouped by lesion and/or patient, official splits, and a leak guard.

The originals split HAM10000 by image (SE-LCN: 724 lesions on both sides) or ISIC 2020 without patient grouping
(multimodal repo). Here every split groups first; rows whose group id is missing form their own singleton group.
With several group columns (lesion_id and patient_id) rows linked through any of them stay together.
By default rows are grouped by lesion_id and patient_id together (columns absent from df are ignored), which is
what the loaders' leak guard checks. All functions return positional indices into `df` (numpy int arrays).
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from lesionkit.data.errors import GroupLeakError

GroupCols = str | Sequence[str]


def _as_list(cols: GroupCols | None) -> list[str]:
    if cols is None:
        return []
    return [cols] if isinstance(cols, str) else list(cols)


def group_codes(df: pd.DataFrame, group_col: GroupCols = ("lesion_id", "patient_id")) -> np.ndarray:
    """One integer group per row: rows sharing a value in any of the group columns are merged (union-find)."""
    cols = [c for c in _as_list(group_col) if c in df.columns]
    n = len(df)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for col in cols:
        vals = df[col].to_numpy()
        first: dict[object, int] = {}
        for i, v in enumerate(vals):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if v in first:
                a, b = find(i), find(first[v])
                if a != b:
                    parent[a] = b
            else:
                first[v] = i
    roots = np.array([find(i) for i in range(n)])
    return pd.factorize(roots)[0]


def _strata(df: pd.DataFrame, stratify_col: str | None) -> np.ndarray:
    if stratify_col is None:
        return np.zeros(len(df), dtype=int)
    if stratify_col not in df.columns:
        raise KeyError(f"stratify_col={stratify_col!r} is not a column; columns are {list(df.columns)}")
    return pd.factorize(df[stratify_col].astype(str))[0]


DEFAULT_GROUPS = ("lesion_id", "patient_id")


def grouped_kfold(df: pd.DataFrame, n_splits: int = 5, group_col: GroupCols = DEFAULT_GROUPS,
                  stratify_col: str | None = "label", seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n_splits` (train_idx, valid_idx) pairs from sklearn's StratifiedGroupKFold (shuffled, seeded): no group on
    two sides, class proportions kept as far as grouping allows. Same df + seed -> same folds."""
    if n_splits < 2:
        raise ValueError(f"n_splits={n_splits}: need at least 2")
    groups = group_codes(df, group_col)
    if len(np.unique(groups)) < n_splits:
        raise ValueError(f"only {len(np.unique(groups))} groups for {n_splits} folds")
    skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = [(np.sort(tr), np.sort(va)) for tr, va in skf.split(np.zeros(len(df)), _strata(df, stratify_col), groups)]
    assert_no_group_leak(df, [folds[0][0], folds[0][1]], _as_list(group_col))
    return folds


def fold_column(df: pd.DataFrame, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Fold number of each row (the fold in which it is validation), -1 for rows in no validation fold."""
    out = np.full(len(df), -1, dtype=int)
    for k, (_, va) in enumerate(folds):
        out[va] = k
    return out


def grouped_holdout(df: pd.DataFrame, test_frac: float = 0.2, group_col: GroupCols = DEFAULT_GROUPS,
                    stratify_col: str | None = "label", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) with about `test_frac` of the rows held out by whole groups, stratified.

    Implemented as one fold of a StratifiedGroupKFold with round(1/test_frac) folds, so the held-out share is
    1/k (0.2 -> 5 folds; 0.15 -> 1/7 = 0.143).
    """
    if not 0 < test_frac < 1:
        raise ValueError(f"test_frac={test_frac}: must be in (0, 1)")
    k = max(2, int(round(1 / test_frac)))
    with warnings.catch_warnings():  # sklearn's "fewer members than n_splits": about k folds nobody asked for
        warnings.filterwarnings("ignore", message="The least populated class in y", category=UserWarning)
        tr, te = grouped_kfold(df, n_splits=k, group_col=group_col, stratify_col=stratify_col, seed=seed)[0]
    return tr, te


def folds_from_column(df: pd.DataFrame, col: str = "fold") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, valid_idx) per value of a pre-assigned fold column (e.g. the 1st-place tfrecord folds); rows with
    no fold are always in training. The result passes through the leak guard."""
    if col not in df.columns or df[col].isna().all():
        raise ValueError(f"no fold column '{col}'; use grouped_kfold")
    folds = []
    for k in sorted(pd.unique(df[col].dropna())):
        va = np.flatnonzero((df[col] == k).fillna(False).to_numpy(bool))
        folds.append((np.setdiff1d(np.arange(len(df)), va), va))
    assert_no_group_leak(df, [va for _, va in folds])
    return folds


def official_splits(df: pd.DataFrame, col: str = "split") -> dict[str, np.ndarray]:
    """Positions per value of the official split column (e.g. ISIC 2017 train/valid/test, derm7pt index files)."""
    if col not in df.columns or df[col].isna().all():
        raise ValueError(f"this dataset has no official split (column '{col}' is empty); use grouped_kfold")
    return {str(k): np.flatnonzero((df[col] == k).to_numpy()) for k in df[col].dropna().unique()}


def assert_no_group_leak(df: pd.DataFrame, parts: Sequence[np.ndarray] | Mapping[str, np.ndarray],
                         group_cols: GroupCols = ("lesion_id", "patient_id")) -> None:
    """Raise GroupLeakError, naming the ids and the parts, if any lesion/patient id sits in two of `parts`.

    Works on any split (ours, a paper's index pickle, a hand-made CSV). Missing ids (NaN) never count as shared;
    group columns absent from df are skipped.
    """
    named = dict(parts) if isinstance(parts, Mapping) else {f"part {i}": p for i, p in enumerate(parts)}
    problems = []
    for col in _as_list(group_cols):
        if col not in df.columns:
            continue
        owner: dict[object, str] = {}
        shared: dict[object, set[str]] = {}
        for name, idx in named.items():
            vals = df[col].iloc[np.asarray(idx, dtype=int)].dropna().unique()
            for v in vals:
                if v in owner and owner[v] != name:
                    shared.setdefault(v, {owner[v]}).add(name)
                else:
                    owner.setdefault(v, name)
        if shared:
            ids = sorted(shared, key=str)
            shown = ", ".join(f"{v} ({' & '.join(sorted(shared[v]))})" for v in ids[:10])
            more = f" ... and {len(ids) - 10} more" if len(ids) > 10 else ""
            problems.append(f"{len(ids)} {col}(s) in more than one part: {shown}{more}")
    if problems:
        raise GroupLeakError("group leak: " + "; ".join(problems) +
                             ". Split with lesionkit.data.splits.grouped_kfold / grouped_holdout, which keep each "
                             "group on one side.")


# --- the one split rule the experiments use ---------------------------------------------------------------------
from dataclasses import dataclass  # noqa: E402


@dataclass(frozen=True)
class Splits:
    """A fixed test set plus ``len(folds)`` (train, valid) pairs over the other rows; positions into the dataset."""

    test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.folds)

    def parts(self, fold: int = 0) -> dict[str, np.ndarray]:
        tr, va = self.folds[fold]
        return {"train": tr, "valid": va, "test": self.test}

    def sizes(self) -> pd.DataFrame:
        return pd.DataFrame([{"fold": k, "train": len(tr), "valid": len(va), "test": len(self.test)}
                             for k, (tr, va) in enumerate(self.folds)])

    def to_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Long table (image_id, fold, part): what a run records as splits.csv."""
        ids = df["image_id"].astype(str).to_numpy()
        rows = [pd.DataFrame({"image_id": ids[idx], "fold": k, "part": part})
                for k in range(len(self)) for part, idx in self.parts(k).items()]
        return pd.concat(rows, ignore_index=True)

    @classmethod
    def from_frame(cls, table: pd.DataFrame, df: pd.DataFrame, source: str = "splits.csv") -> "Splits":
        """The split a recorded table describes, as positions into ``df``; every id must be in ``df``."""
        need = {"image_id", "fold", "part"}
        if not need <= set(table.columns):
            raise ValueError(f"{source}: columns {sorted(need - set(table.columns))} missing; a lesionkit split table "
                             f"has image_id, fold, part")
        pos = pd.Series(np.arange(len(df)), index=df["image_id"].astype(str))
        ids = table["image_id"].astype(str)
        missing = sorted(set(ids) - set(pos.index))
        if missing:
            raise ValueError(f"{source}: {len(missing)} image ids are not in this dataset (e.g. {missing[:3]}): the "
                             f"split belongs to another dataset or a different max_images subset")
        table = table.assign(_pos=pos.loc[ids].to_numpy())

        def part(k: int, name: str) -> np.ndarray:
            return np.sort(table.loc[(table["fold"] == k) & (table["part"] == name), "_pos"].to_numpy())

        folds = sorted(int(k) for k in table["fold"].unique())
        splits = cls(test=part(folds[0], "test"), folds=[(part(k, "train"), part(k, "valid")) for k in folds])
        for tr, va in splits.folds:
            assert_no_group_leak(df, {"train": tr, "valid": va, "test": splits.test})
        return splits


def make_splits(df: pd.DataFrame, folds: int = 1, test_frac: float = 0.2, valid_frac: float = 0.2, seed: int = 0,
                stratify_col: str | None = "label_idx", group_col: GroupCols = DEFAULT_GROUPS,
                test: np.ndarray | None = None) -> Splits:
    """Hold out ``test_frac`` of the groups once (or use the given ``test`` rows, e.g. an official test part), then
    ``folds`` grouped, stratified folds of the rest (1: one grouped train/valid split with ``valid_frac`` of the
    rest). Groups join rows sharing a lesion *or* a patient id; a missing id (2019 rows of the ISIC 2019+2020 merge
    have no patient) makes no link, so partial columns split without error and without a group on two sides."""
    if folds < 1:
        raise ValueError(f"folds={folds}: need at least 1")
    if test is None:
        rest, test = grouped_holdout(df, test_frac=test_frac, group_col=group_col, stratify_col=stratify_col,
                                     seed=seed)
    else:
        test = np.asarray(test, dtype=int)
        rest = np.setdiff1d(np.arange(len(df)), test)
    sub = df.iloc[rest]
    if folds == 1:
        tr, va = grouped_holdout(sub, test_frac=valid_frac, group_col=group_col, stratify_col=stratify_col,
                                 seed=seed + 1)
        pairs = [(rest[tr], rest[va])]
    else:
        pairs = [(rest[tr], rest[va]) for tr, va in
                 grouped_kfold(sub, n_splits=folds, group_col=group_col, stratify_col=stratify_col, seed=seed + 1)]
    for tr, va in pairs:
        assert_no_group_leak(df, {"train": tr, "valid": va, "test": test}, group_cols=group_col)
    return Splits(test=np.sort(test), folds=pairs)


def has_official_split(df: pd.DataFrame) -> bool:
    """True when a reader filled the official `split` column (ISIC 2017 / 2018 parts, derm7pt, class folders under
    train/valid/test) or the `fold` column (the 1st place's ISIC 2020 tfrecord folds)."""
    return any(c in df.columns and df[c].notna().any() for c in ("split", "fold"))


def official_or_grouped(df: pd.DataFrame, folds: int = 1, test_frac: float = 0.2, valid_frac: float = 0.2,
                        seed: int = 0, group_col: GroupCols = DEFAULT_GROUPS) -> tuple[Splits, str]:
    """The dataset's official split where it has one, and what was used, in words (recorded in run.json).

    Test: the official `test` rows, else a grouped hold-out of ``test_frac``. One fold: the official train/valid
    parts, else fold 0 of the official `fold` column as validation, else a grouped hold-out of the rest. Several
    folds: the official `fold` column over the non-test rows, else grouped folds. Without any official column this
    is :func:`make_splits` (grouped), said so in the description. Every pair passes the leak guard."""
    if not has_official_split(df):
        return (make_splits(df, folds=folds, test_frac=test_frac, valid_frac=valid_frac, seed=seed,
                            group_col=group_col), "grouped (the dataset has no official split)")
    part = df["split"].astype(object) if "split" in df.columns else pd.Series(np.nan, index=df.index, dtype=object)
    part = part.where(part.notna(), None).to_numpy()
    said = []
    test = np.flatnonzero(part == "test")
    if len(test):
        said.append(f"official test part ({len(test)} images)")
        rest = np.setdiff1d(np.arange(len(df)), test)
    else:
        rest, test = grouped_holdout(df, test_frac=test_frac, group_col=group_col, stratify_col="label_idx", seed=seed)
        said.append(f"grouped test hold-out of {test_frac:g}")
    fold = df["fold"].iloc[rest] if "fold" in df.columns else pd.Series(dtype=float)
    has_folds = fold.notna().any() and fold.dropna().nunique() >= max(2, folds)
    if folds == 1 and (part[rest] == "valid").any():
        pairs = [(rest[part[rest] != "valid"], rest[part[rest] == "valid"])]
        said.append(f"official train/valid parts ({len(pairs[0][0])}/{len(pairs[0][1])})")
    elif has_folds:
        values = sorted(fold.dropna().unique())[:folds] if folds > 1 else sorted(fold.dropna().unique())[:1]
        pairs = [(rest[(fold != v).to_numpy()], rest[(fold == v).to_numpy()]) for v in values]
        said.append(f"official folds {[int(v) for v in values]} of the `fold` column as validation")
    else:
        sub = make_splits(df.iloc[rest], folds=folds, test_frac=valid_frac, valid_frac=valid_frac, seed=seed + 1,
                          group_col=group_col, test=np.array([], dtype=int))
        pairs = [(rest[tr], rest[va]) for tr, va in sub.folds]
        said.append(f"grouped {'folds' if folds > 1 else 'validation hold-out'} of the other rows (no official "
                    f"{'folds' if folds > 1 else 'validation part'})")
    for tr, va in pairs:
        assert_no_group_leak(df, {"train": tr, "valid": va, "test": test}, group_cols=group_col)
    splits = Splits(test=np.sort(test), folds=[(np.sort(tr), np.sort(va)) for tr, va in pairs])
    return splits, "official: " + "; ".join(said)
