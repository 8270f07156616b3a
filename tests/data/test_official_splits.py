"""`split="official"` (issue 12): the dataset's own parts and folds where it has them (ISIC 2017's
train/valid/test, derm7pt's index files, ISIC 2020's tfrecord folds), the grouped split with a warning where it has
none; what was used is in run.json."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from lesionkit.data.errors import GroupLeakError
from lesionkit.data.splits import official_or_grouped
from lesionkit.papers.common import split
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.records.runs import start_run


def _table(n: int = 60, split_col=None, fold=None) -> pd.DataFrame:
    df = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "lesion_id": [f"L{i // 2}" for i in range(n)],
                       "patient_id": np.nan, "label": ["nv", "mel", "bkl"] * (n // 3)})
    df["label_idx"] = pd.factorize(df["label"])[0]
    df["split"] = split_col if split_col is not None else np.nan
    if fold is not None:
        df["fold"] = fold
    return df


def test_isic2017_parts_are_used_as_they_are():
    parts = ["train"] * 40 + ["valid"] * 6 + ["test"] * 14
    s, said = official_or_grouped(_table(split_col=parts))
    assert s.test.tolist() == list(range(46, 60))
    assert s.folds[0][0].tolist() == list(range(40)) and s.folds[0][1].tolist() == list(range(40, 46))
    assert said.startswith("official: official test part (14 images); official train/valid parts (40/6)")


def test_several_folds_keep_the_official_test_and_fold_the_rest_by_lesion():
    parts = ["train"] * 40 + ["valid"] * 6 + ["test"] * 14
    df = _table(split_col=parts)
    s, said = official_or_grouped(df, folds=3)
    assert s.test.tolist() == list(range(46, 60)) and len(s) == 3
    assert sorted(np.concatenate([va for _, va in s.folds]).tolist()) == list(range(46))
    for tr, va in s.folds:
        assert not set(df.lesion_id.iloc[tr]) & set(df.lesion_id.iloc[va])
    assert "grouped folds of the other rows" in said


def test_tfrecord_folds_are_the_validation_folds():
    fold = np.repeat([0, 1, 2, 3, 4], 12)        # lesions of two images never straddle a fold (12 is even)
    df = _table(fold=fold)
    s, said = official_or_grouped(df, folds=5, test_frac=0.2)
    assert len(s) == 5 and "official folds [0, 1, 2, 3, 4]" in said and "grouped test hold-out" in said
    for k, (tr, va) in enumerate(s.folds):
        assert set(df.fold.iloc[va]) == {k} and not set(va) & set(s.test) and not set(tr) & set(s.test)
    one, _ = official_or_grouped(df, folds=1)
    assert set(df.fold.iloc[one.folds[0][1]]) == {0}


def test_an_official_split_that_leaks_a_lesion_is_refused():
    parts = ["train"] * 40 + ["valid"] * 6 + ["test"] * 14
    df = _table(split_col=parts)
    df.loc[45, "lesion_id"] = df.loc[46, "lesion_id"]       # one lesion in valid and in test
    with pytest.raises(GroupLeakError, match="lesion_id"):
        official_or_grouped(df)


def test_without_an_official_split_it_is_grouped_warned_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    from lesionkit.data.table import LesionDataset

    df = _table()
    df["path"] = "x.jpg"
    ds = LesionDataset("toy", tmp_path, df, ["nv", "mel", "bkl"], "multiclass", {})
    cfg = QuickstartConfig(split="official")
    run = start_run("t", QuickstartConfig, {}, watch_notebook=False)
    with pytest.warns(UserWarning, match="no official split"):
        s = split(ds, cfg, run)
    assert json.loads((run.dir / "run.json").read_text())["split"] == "grouped (the dataset has no official split)"
    grouped = split(ds, QuickstartConfig(split="grouped"), start_run("g", QuickstartConfig, {}, watch_notebook=False))
    assert np.array_equal(s.test, grouped.test)                     # the same rule, without an official column
    official = ds.df.assign(split=["train"] * 40 + ["valid"] * 6 + ["test"] * 14)
    ds2 = LesionDataset("toy", tmp_path, official, ["nv", "mel", "bkl"], "multiclass", {})
    run2 = start_run("o", QuickstartConfig, {}, watch_notebook=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s2 = split(ds2, cfg, run2)
    assert s2.test.tolist() == list(range(46, 60))
    assert json.loads((run2.dir / "run.json").read_text())["split"].startswith("official: official test part")
    table = pd.read_csv(run2.dir / "splits.csv")
    assert sorted(table.loc[table.part == "test", "image_id"]) == sorted(f"im{i}" for i in range(46, 60))


def test_arl_on_an_isic2017_download_trains_and_tests_on_its_official_parts(tmp_path, monkeypatch):
    """ARL's own headline data: the 2000/150/600 parts become train/valid/test (here 4/2/2 images)."""
    from PIL import Image

    from lesionkit.papers.arl import recipe as arl

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    parts = {"Training": range(0, 4), "Validation": range(4, 6), "Test_v2": range(6, 8)}
    data = tmp_path / "isic2017"
    data.mkdir()
    for tag, rows in parts.items():
        ids = [f"ISIC_00000{i:02d}" for i in rows]
        pd.DataFrame({"image_id": ids, "melanoma": [float(i % 3 == 0) for i in rows],
                      "seborrheic_keratosis": 0.0}).to_csv(data / f"ISIC-2017_{tag}_Part3_GroundTruth.csv", index=False)
        (data / f"ISIC-2017_{tag}_Data").mkdir()
        for i, image_id in zip(rows, ids):
            Image.new("RGB", (32, 24), (30 * i, 80, 60)).save(data / f"ISIC-2017_{tag}_Data" / f"{image_id}.jpg")
    cfg = arl.ARLConfig(data_dir=str(data), pretrained=False)
    assert cfg.split == "official"
    ds = arl.load(cfg)
    run = start_run("arl", arl.ARLConfig, {}, watch_notebook=False)
    s = arl.split(ds, cfg, run, folds=cfg.folds, valid_frac=cfg.valid_frac)
    ids = ds.df.image_id.to_numpy()
    assert ids[s.test].tolist() == ["ISIC_0000006", "ISIC_0000007"]
    assert ids[s.folds[0][1]].tolist() == ["ISIC_0000004", "ISIC_0000005"]
    assert ids[s.folds[0][0]].tolist() == [f"ISIC_000000{i}" for i in range(4)]


def test_arl_scores_an_external_set_on_its_official_test_part_as_melanoma_vs_rest(tmp_path, monkeypatch):
    """ARL's `test_dir`: an ISIC 2018 download holding Training and Test is scored on its Test rows only, each
    model with its test views, its non-melanoma classes as the rest."""
    from PIL import Image

    from lesionkit.papers.arl import recipe as arl

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    ext_dir = tmp_path / "isic2018"
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    for part, labels in (("Training", {"ISIC_0024306": "NV", "ISIC_0024310": "MEL"}),
                         ("Test", {"ISIC_0034524": "NV", "ISIC_0034525": "VASC", "ISIC_0034526": "MEL"})):
        df = pd.DataFrame({"image": list(labels), **{c: [float(v == c) for v in labels.values()] for c in cols}})
        ext_dir.mkdir(exist_ok=True)
        df.to_csv(ext_dir / f"ISIC2018_Task3_{part}_GroundTruth.csv", index=False)
        (ext_dir / f"ISIC2018_Task3_{part}_Input").mkdir()
        for k, i in enumerate(labels):
            Image.new("RGB", (64, 48), (40 * k, 90, 60)).save(ext_dir / f"ISIC2018_Task3_{part}_Input" / f"{i}.jpg")
    cfg = arl.ARLConfig(test_dir=str(ext_dir), smoke=True).effective(max_images=300)
    ds = arl.load(cfg)
    run = start_run("arl", arl.ARLConfig, {}, watch_notebook=False)
    results = arl.train_and_test(ds, arl.split(ds, cfg, run, folds=cfg.folds, valid_frac=cfg.valid_frac), cfg, run)
    out = arl.evaluate_external(results.learners, ds, cfg, run)
    from sklearn.metrics import roc_auc_score

    assert set(out) == set(cfg.models)
    for label, kind in cfg.models.items():
        pred = pd.read_csv(run.dir / "predictions" / f"external_{kind}.csv")
        truth = pd.read_csv(run.dir / "predictions" / f"external_{kind}_truth.csv")
        assert pred["image"].tolist() == ["ISIC_0034524", "ISIC_0034525", "ISIC_0034526"]
        assert truth.iloc[:, -1].tolist() == [0, 0, 1]                         # NV, VASC: rest; MEL: melanoma
        assert out[label]["auc"] == pytest.approx(roc_auc_score(truth.iloc[:, -1], pred.iloc[:, -1]))
    assert arl.evaluate_external(results.learners, ds, arl.ARLConfig(smoke=True).effective(), run) is None
