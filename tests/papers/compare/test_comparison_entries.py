"""The comparison notebook's library: one split for every entry, the table, the tested differences, external
columns, map scores per entry, budgets, and the checks made before anything trains."""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lesionkit.config import ConfigError
from lesionkit.metrics.classification import balanced_accuracy
from lesionkit.papers.compare import recipe as cmp
from lesionkit.papers.compare import maps as cm
from lesionkit.records.runs import start_run

ENTRIES = "baseline,sge,arl,dx_weighting,metadata,patch_attention,se_lcn_cam"


def _start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **params):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    return start_run("compare_test", cmp.CompareConfig, params, watch_notebook=False)


@pytest.fixture(scope="module")
def trained(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every kind of entry (a model, a loss, a second input, the SE-LCN cascade) on two folds, 48 px, stopped by a
    wall-time budget after its first epoch; external set and map scores included."""
    mp = pytest.MonkeyPatch()
    try:
        run = _start(tmp_path_factory.mktemp("compare"), mp, data_dir="synthetic", max_images=160,
                     test_dir=str(synthetic_dir), entries=ENTRIES, image_size=48, epochs=3, budget="seconds",
                     budget_seconds=0.01, folds=2,
                     pretrained=False, batch_size=16, n_maps=3, n_boot=600, map_steps=3, cascade_epochs=1,
                     attribution_methods="native,gradcam", seg_encoder="tu-tf_efficientnet_lite0")
        cfg = run.cfg
        ds = cmp.load(cfg)
        splits = cmp.split(ds, cfg, run)
        ctx = cmp.prepare(ds, splits, cfg, run)
        res = cmp.train(ctx, cmp.variants(ctx))
        table, diffs = cmp.results_table(res, ctx), cmp.differences(res, ctx)
        external, maps = cmp.evaluate_external(res, ctx), cm.score_maps(res, ctx)
        yield SimpleNamespace(run=run, ds=ds, splits=splits, ctx=ctx, res=res, table=table, diffs=diffs,
                              external=external, maps=maps)
    finally:
        mp.undo()


def test_the_table_has_one_row_per_entry_with_every_metric(trained) -> None:
    keys = ["resnet", *ENTRIES.split(",")]  # ARL's reference is added in front
    t = trained.table
    assert t["entry"].tolist() == keys
    for m in cmp.TABLE_METRICS:
        assert t[m].between(0, 1).all() and (t[f"{m}_std"] >= 0).all(), m
    assert (t["folds"] == 2).all() and (t["params"] > 0).all() and (t["train_seconds"] > 0).all()
    assert t.set_index("entry")["reference"].to_dict()["arl"] == "resnet"
    assert (Path(trained.run.dir) / "comparison.csv").is_file()


def test_every_entry_saw_the_same_rows_as_the_split(trained) -> None:
    wide = cmp.same_rows(trained.run)
    ids = trained.ds.df["image_id"]
    for k, (tr, va) in enumerate(trained.splits.folds):
        for part, rows in (("train", tr), ("valid", va), ("test", trained.splits.test)):
            want = hashlib.sha1(",".join(sorted(ids.iloc[rows])).encode()).hexdigest()[:16]
            assert set(wide.loc[(k, part)]) == {want}, (k, part)
    path = trained.run.dir / "entry_splits.csv"
    original = path.read_text()
    log = pd.read_csv(path, dtype={"digest": str})
    log.loc[(log["entry"] == "sge") & (log["part"] == "train"), "digest"] = "tampered"
    log.to_csv(path, index=False)
    try:
        with pytest.raises(AssertionError, match="entry sge"):
            cmp.same_rows(trained.run)
    finally:
        path.write_text(original)
    cmp.same_rows(trained.run)  # restored


def test_a_time_budget_stops_every_fit_after_its_first_epoch(trained) -> None:
    hist = trained.run.history()
    epochs = hist[hist["stage"].str.contains("_fold")].groupby("stage")["epoch"].nunique()
    assert (epochs == 1).all(), epochs.to_dict()


def test_differences_compare_each_entry_with_its_reference(trained) -> None:
    d = trained.diffs
    assert len(d) == 6 * 3  # every entry but the two references, three metrics
    assert set(d.loc[d["entry"] == "arl", "reference"]) == {"resnet"}
    assert set(d.loc[d["entry"] != "arl", "reference"]) == {"baseline"}
    # the synthetic set has several images per lesion: DeLong's independence fails, the clustered bootstrap's p stays
    assert (d["test"] == "paired bootstrap").all()
    assert (d["ci_level"] > 0.95).all() and (d["p_adjusted"] >= d["p_value"]).all()
    assert (d["ci_low"] <= d["diff"]).all() and (d["diff"] <= d["ci_high"]).all()


def test_external_columns_sit_beside_the_test_columns(trained) -> None:
    ext = trained.external
    assert ext["entry"].tolist() == trained.table["entry"].tolist()
    assert {"bma (test)", "bma (external)", "mel_auc (external)"} <= set(ext.columns)
    assert ext["bma (external)"].between(0, 1).all()


def test_maps_are_scored_for_every_entry_on_the_same_images(trained) -> None:
    per_image, summary, what = trained.maps
    assert what == "data_dir's test rows"
    assert set(per_image["entry"]) == set(trained.table["entry"])
    assert per_image.groupby("entry")["image_id"].apply(lambda s: tuple(sorted(set(s)))).nunique() == 1
    for col in cm.MAP_SCORES:
        assert per_image[col].notna().any(), col
    native = set(per_image.loc[per_image["method"] == "native", "entry"])
    assert {"sge", "arl"} <= native and "baseline" not in native and "metadata" not in native
    assert set(summary.columns) >= {"entry", "method", "mass_inside_mean", "deletion_auc_mean", "bma"}
    assert set(cm.stores(trained.run, ["baseline", "arl"])) == {"baseline", "arl"}


def _fake(y: np.ndarray, probs: dict[str, np.ndarray], tmp_path: Path, monkeypatch, per_lesion: int = 1) -> tuple:
    """A finished comparison of ``probs`` (entry → test probabilities) on test labels ``y``, ``per_lesion`` images
    per lesion (consecutive rows)."""
    run = _start(tmp_path, monkeypatch, n_boot=2000)
    n = len(y)
    df = pd.DataFrame({"image_id": [f"I{i}" for i in range(n)],
                       "lesion_id": [f"L{i // per_lesion}" for i in range(n)],
                       "patient_id": [f"P{i // per_lesion}" for i in range(n)], "label_idx": y})
    ds = SimpleNamespace(df=df, classes=["nv", "mel"])
    ctx = SimpleNamespace(ds=ds, cfg=run.cfg, run=run, splits=SimpleNamespace(test=np.arange(n)))
    res = SimpleNamespace(probs={k: [p] for k, p in probs.items()},
                          variants={k: SimpleNamespace(key=k) for k in probs})
    return res, ctx


def test_bootstrap_covers_zero_for_identical_models_and_a_known_difference(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    score = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.25, len(y)), 0.01, 0.99)
    good = np.stack([1 - score, score], 1)
    worse = good.copy()
    flip = np.flatnonzero(y == 1)[:60]  # 60 of 150 melanomas scored below every benign: AUC and BMA drop a lot
    worse[flip] = [0.999, 0.001]
    res, ctx = _fake(y, {"baseline": good, "sge": good.copy(), "spatial": worse}, tmp_path, monkeypatch)
    d = cmp.differences(res, ctx).set_index(["entry", "metric"])
    same = d.loc["sge"]
    assert (same["diff"] == 0).all() and (same["ci_low"] <= 0).all() and (same["ci_high"] >= 0).all()
    assert not same["significant"].any()
    true_bma = balanced_accuracy(y, worse, ties="first") - balanced_accuracy(y, good, ties="first")
    row = d.loc[("spatial", "bma")]
    assert row["diff"] == pytest.approx(true_bma) and row["ci_low"] <= true_bma <= row["ci_high"] < 0
    assert d.loc[("spatial", "mel_auc"), "significant"] and d.loc[("spatial", "mel_auc"), "test"] == "DeLong"


def test_budget_in_images_is_whole_epochs_of_the_training_rows() -> None:
    cfg = cmp.CompareConfig(budget="images", budget_images=1000)
    splits = SimpleNamespace(folds=[(np.arange(400), np.arange(50)), (np.arange(380), np.arange(60))])
    assert cmp.budget_epochs(cfg, splits) == 3
    assert cmp.budget_epochs(cmp.CompareConfig(epochs=7), splits) == 7


def test_bad_settings_are_refused_before_anything_trains(tmp_path: Path, synthetic_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown.*'vit'"):
        cmp.CompareConfig.from_params({"entries": "baseline,vit"})
    with pytest.raises(ConfigError, match="multiple of 16"):
        cmp.CompareConfig.from_params({"entries": "se_lcn_cam", "image_size": 40})
    with pytest.raises(ConfigError, match="budget_seconds"):
        cmp.CompareConfig.from_params({"budget": "seconds"})
    assert cmp.CompareConfig(entries="arl").entry_keys == ["resnet", "arl"]
    df = pd.read_csv(synthetic_dir / "labels.csv") if (synthetic_dir / "labels.csv").exists() else None
    if df is None:
        pytest.skip("synthetic layout without labels.csv")
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in synthetic_dir.iterdir():
        (bare / p.name).symlink_to(p)
    (bare / "labels.csv").unlink()
    df.drop(columns=["dx_type"]).to_csv(bare / "labels.csv", index=False)
    with pytest.raises(ConfigError, match="dx_weighting.*dx_type"):
        cmp.load(cmp.CompareConfig.from_params({"data_dir": str(bare), "entries": "dx_weighting"}))


def test_delong_only_where_every_test_lesion_has_one_image(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 100)
    s = np.clip(0.5 + 0.2 * (2 * y - 1) + rng.normal(0, 0.3, len(y)), 0.01, 0.99)
    probs = {"baseline": np.stack([1 - s, s], 1), "metadata": np.stack([s, 1 - s], 1)[::-1].copy()}
    res, ctx = _fake(y, probs, tmp_path / "a", monkeypatch)
    assert cmp.differences(res, ctx).set_index("metric").loc["mel_auc", "test"] == "DeLong"
    res, ctx = _fake(y, probs, tmp_path / "b", monkeypatch, per_lesion=2)
    d = cmp.differences(res, ctx)
    assert (d["test"] == "paired bootstrap").all()


def test_images_the_cascade_trained_on_are_left_out_for_every_entry(tmp_path: Path) -> None:
    from lesionkit.data.table import LesionDataset
    from lesionkit.papers.compare.cascade import unseen

    paths = [tmp_path / f"{i}.png" for i in range(4)]
    df = pd.DataFrame({"image_id": [p.stem for p in paths], "path": [str(p) for p in paths], "label": "nv",
                       "label_idx": 0, "lesion_id": np.nan, "patient_id": np.nan})
    ds = LesionDataset("toy", tmp_path, df, ["nv", "mel"], "binary")
    ctx = SimpleNamespace(cascade=SimpleNamespace(trained_on=frozenset({str(paths[1].resolve())})))
    assert unseen(ds, ctx, "map_dir").df["image_id"].tolist() == ["0", "2", "3"]
    assert unseen(ds, SimpleNamespace(cascade=None), "map_dir") is ds
    everything = SimpleNamespace(cascade=SimpleNamespace(trained_on=frozenset(str(p.resolve()) for p in paths)))
    with pytest.raises(ValueError, match="every image trained"):
        unseen(ds, everything, "map_dir")


def test_positive_auto_is_melanoma_or_a_binary_tasks_positive_class() -> None:
    def ds(*classes: str) -> SimpleNamespace:
        return SimpleNamespace(classes=list(classes), root=Path("/data"))

    auto = cmp.CompareConfig()
    assert cmp.positive_class(ds("akiec", "mel", "nv"), auto) == "mel"
    assert cmp.positive_class(ds("other", "melanoma"), auto) == "melanoma"
    assert cmp.positive_class(ds("benign", "malignant"), auto) == "malignant"
    with pytest.raises(ConfigError, match="no mel"):
        cmp.positive_class(ds("akiec", "bcc", "nv"), auto)
    with pytest.raises(ConfigError, match="'bcc' is not a class"):
        cmp.positive_class(ds("other", "melanoma"), cmp.CompareConfig(positive="bcc"))
