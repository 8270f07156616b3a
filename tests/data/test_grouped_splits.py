"""Grouped, stratified, seeded splits and the leak guard."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lesionkit.data.errors import GroupLeakError
from lesionkit.data.splits import (assert_no_group_leak, fold_column, folds_from_column, group_codes, grouped_holdout,
                                   grouped_kfold, official_splits)


def _toy(n_lesions: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_lesions):
        label = ["nv", "mel", "bkl", "df"][k % 4]
        patient = f"P{k // 3}" if k % 5 else np.nan
        for _ in range(int(rng.integers(1, 4))):
            rows.append({"lesion_id": f"L{k}", "patient_id": patient, "label": label})
    return pd.DataFrame(rows)


def test_kfold_partitions_rows_and_keeps_lesions_whole():
    df = _toy()
    folds = grouped_kfold(df, 5, group_col="lesion_id", seed=1)
    valid = np.concatenate([va for _, va in folds])
    assert sorted(valid) == list(range(len(df)))           # every row validated exactly once
    for tr, va in folds:
        assert not set(df.lesion_id.iloc[tr]) & set(df.lesion_id.iloc[va])
    assert_no_group_leak(df, [va for _, va in folds], "lesion_id")


def test_kfold_is_reproducible_and_seed_dependent():
    df = _toy()
    a, b, c = (fold_column(df, grouped_kfold(df, 5, seed=s)) for s in (3, 3, 4))
    assert (a == b).all() and not (a == c).all()


def test_kfold_is_stratified():
    df = _toy(400)
    for _, va in grouped_kfold(df, 4, seed=0):
        share = df.label.iloc[va].value_counts(normalize=True)
        assert (share - 0.25).abs().max() < 0.06


def test_union_of_lesion_and_patient_groups():
    df = pd.DataFrame({"lesion_id": ["a", "a", "b", "c", np.nan], "patient_id": [np.nan, "p", "p", "q", np.nan]})
    g = group_codes(df, ["lesion_id", "patient_id"])
    assert g[0] == g[1] == g[2] and g[3] != g[0] and g[4] not in (g[0], g[3])


def test_holdout_share_and_no_patient_leak():
    df = _toy(300)
    tr, te = grouped_holdout(df, 0.2, group_col=["lesion_id", "patient_id"], seed=0)
    assert 0.14 < len(te) / len(df) < 0.26 and len(tr) + len(te) == len(df)
    assert_no_group_leak(df, {"train": tr, "test": te})


def test_guard_fires_on_leaky_split_and_names_ids():
    df = _toy()
    tr, va = grouped_kfold(df, 5, seed=0)[0]
    lesion = df.lesion_id.iloc[va].value_counts().index[0]          # a lesion with several images
    moved = np.flatnonzero((df.lesion_id == lesion).to_numpy())[:1]  # one of its images goes to train
    leaky_tr, leaky_va = np.union1d(tr, moved), np.setdiff1d(va, moved)
    with pytest.raises(GroupLeakError, match=rf"1 lesion_id\(s\) in more than one part: {lesion} \(train & valid\)"):
        assert_no_group_leak(df, {"train": leaky_tr, "valid": leaky_va}, "lesion_id")


def test_folds_from_a_preassigned_column():
    df = pd.DataFrame({"lesion_id": list("abcdef"), "patient_id": list("ppqqrs"),
                       "fold": pd.array([0, 0, 1, 1, pd.NA, 2], dtype="Int64")})
    folds = folds_from_column(df)
    assert [va.tolist() for _, va in folds] == [[0, 1], [2, 3], [5]] and 4 in folds[0][0]
    df.loc[1, "fold"] = 1                                        # patient p now in folds 0 and 1
    with pytest.raises(GroupLeakError, match="patient_id.*p"):
        folds_from_column(df)


def test_official_splits():
    df = pd.DataFrame({"split": ["train", "train", "test", np.nan]})
    s = official_splits(df)
    assert list(s["train"]) == [0, 1] and list(s["test"]) == [2]
    with pytest.raises(ValueError, match="no official split"):
        official_splits(pd.DataFrame({"split": [np.nan]}))


def test_ham10000_full_metadata_5fold_has_no_lesion_in_two_folds(shared_data):
    meta = pd.read_csv(shared_data / "ham10000_224" / "HAM10000_metadata.csv")
    assert len(meta) == 10015 and meta.lesion_id.nunique() == 7470
    folds = grouped_kfold(meta, 5, group_col="lesion_id", stratify_col="dx", seed=0)
    valids = [va for _, va in folds]
    assert sorted(np.concatenate(valids)) == list(range(10015))
    assert_no_group_leak(meta, valids, "lesion_id")
    assert pd.Series(fold_column(meta, folds)).groupby(meta.lesion_id).nunique().max() == 1
    # an image-level split (what SE-LCN did) leaks, and the guard says so
    rng = np.random.default_rng(42)
    perm = rng.permutation(10015)
    with pytest.raises(GroupLeakError, match="HAM_"):
        assert_no_group_leak(meta, {"train": perm[:8012], "test": perm[8012:]}, "lesion_id")


def test_holdout_keeps_sklearns_fold_count_warning_to_itself() -> None:
    """The held-out part is one of round(1/test_frac) folds that nobody asked for: sklearn's warning that a rare class
    has fewer members than that count would only confuse (a smoke run showed it as a red box)."""
    import warnings

    df = _toy(60)
    df.loc[df.index[:4], "label"] = "rare"  # 4 rows < 7 folds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grouped_holdout(df, 0.15, group_col=["lesion_id", "patient_id"], seed=0)
