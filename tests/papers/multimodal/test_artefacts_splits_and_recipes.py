"""Library logic of the multimodal notebook: artefact labels, per-head scores, splits, the recipes (optimiser,
schedule, TTA), the comparison table and config (no training)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import max_drop_path

from lesionkit.config import ConfigError
from lesionkit.papers.multimodal.artefacts import artefact_targets, head_accuracy_table
from lesionkit.data.splits import Splits, make_splits
from lesionkit.data.table import LesionDataset
from lesionkit.papers.multimodal import recipe as mm
from lesionkit.models.multimodal import ARTEFACT_HEADS
from lesionkit.records.runs import start_run

LITE = {"backbone": "tf_efficientnet_lite0"}


def _ds(n_patients: int = 12, per_patient: int = 3, classes: tuple[str, ...] = ("other", "melanoma")) -> LesionDataset:
    rows = []
    for p in range(n_patients):
        for j in range(per_patient):
            lab = classes[1] if p % 4 == 0 else classes[0]
            rows.append({"image_id": f"I{p:02d}_{j}", "path": f"/nonexistent/I{p:02d}_{j}.jpg", "label": lab,
                         "label_idx": classes.index(lab), "lesion_id": f"L{p:02d}_{j}", "patient_id": f"P{p:02d}",
                         "age": 30.0 + p, "sex": "male" if p % 2 else "female",
                         "site": ["torso", "head/neck", "lower extremity"][p % 3], "dx_type": "histo",
                         "mask_path": np.nan, "split": np.nan})
    task = "binary" if len(classes) == 2 else "multiclass"
    return LesionDataset("toy", Path("/nonexistent"), pd.DataFrame(rows), list(classes), task)


@pytest.fixture()
def new_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    return lambda **params: start_run("multimodal_test", mm.MultimodalConfig, params, watch_notebook=False)


def test_artefact_targets_map_synthetic_columns_to_the_six_heads() -> None:
    df = pd.DataFrame({"hair": ["none", "short", "medium", "dense"], "black_frame": [0, 1, 0, 0],
                       "ruler": [1, 0, 0, 0], "bubbles": [0, 0, 1, 0]})
    t = artefact_targets(df)
    assert list(t.columns) == list(ARTEFACT_HEADS)
    assert t["hair_short"].tolist() == [0, 1, 0, 0]
    assert t["hair_medium"].tolist() == [0, 0, 1, 0]
    assert t["hair_dense"].tolist() == [0, 0, 0, 1]
    assert t["other"].tolist() == [0, 0, 1, 0]  # bubbles count as "other"
    assert t["ruler"].tolist() == [1, 0, 0, 0] and t["black_frame"].tolist() == [0, 1, 0, 0]


def test_artefact_targets_absent_or_bad() -> None:
    assert artefact_targets(pd.DataFrame({"image_id": ["a"], "sex": ["male"]})) is None
    with pytest.raises(ValueError, match="curly"):
        artefact_targets(pd.DataFrame({"hair": ["curly"], "black_frame": [0], "ruler": [0], "bubbles": [0]}))
    heads = pd.DataFrame({h: [1, 0] for h in ARTEFACT_HEADS})
    assert artefact_targets(heads).to_numpy().tolist() == heads.to_numpy().tolist()


def test_head_accuracy_table_counts_from_zero() -> None:
    y = np.array([[0, 1], [0, 0], [1, 0], [1, 1]])
    pred = np.array([[0, 1], [1, 0], [1, 0], [0, 0]])
    t = head_accuracy_table(y, pred, ["a", "b"]).set_index("head")
    assert t.loc["a", "accuracy"] == pytest.approx(0.5)  # the code's n_correct = 2 start would give 1.0
    assert t.loc["a", "recall_none"] == pytest.approx(0.5) and t.loc["a", "recall_yes"] == pytest.approx(0.5)
    assert t.loc["b", "accuracy"] == pytest.approx(0.75)
    assert t.loc["b", "recall_yes"] == pytest.approx(0.5) and t.loc["b", "prevalence"] == pytest.approx(0.5)


def test_to_melanoma_relabels_multiclass_and_rejects_sets_without_mel() -> None:
    ds = _ds(classes=("nv", "mel", "bkl"))
    out = mm.to_melanoma(ds)
    assert out.classes == ["other", "melanoma"] and out.task == "binary"
    assert (out.df["label_idx"] == (ds.df["label"] == "mel")).all()
    with pytest.raises(ValueError, match="melanoma target"):
        mm.to_melanoma(_ds(classes=("nv", "bkl", "df")))


def test_patient_split_has_no_leak_and_kfold_validates_every_non_test_row_once(new_run) -> None:
    ds = _ds(n_patients=20)
    splits = mm.make_splits(ds, mm.MultimodalConfig(test_frac=0.2, valid_frac=0.15), new_run())
    pats = {k: set(ds.df["patient_id"].iloc[v]) for k, v in splits.parts(0).items()}
    assert not (pats["train"] & pats["test"]) and not (pats["train"] & pats["valid"])
    run = new_run(folds=4)
    folds = mm.make_splits(ds, run.cfg, run)
    validated = np.concatenate([va for _, va in folds.folds])
    assert len(folds) == 4 and sorted(validated.tolist()) == sorted(set(range(len(ds))) - set(folds.test.tolist()))
    for tr, va in folds.folds:
        assert not set(ds.df["patient_id"].iloc[tr]) & set(ds.df["patient_id"].iloc[np.r_[va, folds.test]])
    assert (run.dir / "splits.csv").is_file()


def test_image_split_is_the_codes_variant_valid_equals_test(new_run) -> None:
    ds = _ds(n_patients=20)
    splits = mm.make_splits(ds, mm.MultimodalConfig(split_by="image"), new_run())
    (train, valid), = splits.folds
    assert np.array_equal(valid, splits.test)
    assert len(train) + len(splits.test) == len(ds)


def test_split_table_counts_melanomas(new_run) -> None:
    ds = _ds(n_patients=20)
    t = mm.split_table(ds, mm.make_splits(ds, mm.MultimodalConfig(), new_run()))
    assert t["images"].sum() == len(ds)
    assert t["melanomas"].sum() == int((ds.df["label_idx"] == 1).sum())


def test_metadata_preview_encodes_sites_from_training_rows_only() -> None:
    ds = _ds(n_patients=20)
    splits = Splits(test=np.flatnonzero(ds.df["site"] == "head/neck"),
                    folds=[(np.flatnonzero(ds.df["site"] != "head/neck"), np.array([], int))])
    prev = mm.metadata_preview(ds, splits, mm.MultimodalConfig())
    assert "site_head/neck" not in prev.columns and {"site_torso", "site_nan", "sex", "age"} <= set(prev.columns)
    assert prev.iloc[0]["age"] == pytest.approx(ds.df["age"].iloc[splits.folds[0][0][0]] / 90)


class _Asym(torch.nn.Module):
    """Logits depend on where the image's mass sits, so flips and transposes change them."""

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        w = torch.linspace(-1, 1, x.shape[-1])
        a = (x.mean(1) * w).sum((1, 2)) + 0.5 * (x.mean(1) * w[:, None]).sum((1, 2)) + meta[:, 0]
        return torch.stack([torch.zeros_like(a), a], 1)


def _toy_splits(ds: LesionDataset) -> Splits:
    idx = np.arange(len(ds))
    return Splits(test=idx[-12:], folds=[(idx[:-24], idx[-24:-12])])


def test_tta_averages_softmax_over_the_eight_views() -> None:
    from lesionkit.engine import predict

    ds = _ds(n_patients=20)
    v = mm.variant(ds, _toy_splits(ds), mm.MultimodalConfig(**LITE), use_meta=True)
    assert (v.views, v.average) == ("dihedral8", "probs")
    assert mm.variant(ds, _toy_splits(ds), mm.MultimodalConfig(tta=False, **LITE), use_meta=True).views == "none"
    torch.manual_seed(0)
    x, meta, y = torch.rand(3, 3, 8, 8), torch.rand(3, 2), torch.tensor([0, 1, 1])
    p1, y1 = predict(_Asym(), [(x, meta, y)], views="none", n_inp=2)
    p8, _ = predict(_Asym(), [(x, meta, y)], views=v.views, average=v.average, n_inp=2)
    views = []
    for t in (False, True):
        for f in ((), (2,), (3,), (2, 3)):
            xv = x.transpose(2, 3) if t else x
            views.append(_Asym()(torch.flip(xv, f) if f else xv, meta).softmax(1))
    assert np.allclose(p8, torch.stack(views).mean(0).numpy(), atol=1e-6)
    assert np.allclose(p1, views[0].numpy(), atol=1e-6) and not np.allclose(p1, p8)
    assert y1.tolist() == [0, 1, 1] and np.allclose(p8.sum(1), 1)


def test_image_only_model_ignores_the_meta_batches_it_shares_with_the_multimodal_one() -> None:
    ds = _ds(n_patients=20)
    model = mm.variant(ds, _toy_splits(ds), mm.MultimodalConfig(**LITE), use_meta=False).model().eval()
    assert model.n_meta == 0
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x, torch.rand(2, 5)), model(x))


def test_schedule_warms_up_from_a_tenth_of_lr_to_lr_then_cosine() -> None:
    """§A.7/§C.5: GradualWarmupScheduler(multiplier 10, total_epoch 1) + cosine to 0, from --init-lr 3e-5: `lr` is
    the peak, 3e-4."""
    ds, cfg = _ds(n_patients=20), mm.MultimodalConfig(epochs=5, **LITE)
    v = mm.variant(ds, _toy_splits(ds), cfg, use_meta=True)
    assert (v.schedule.name, v.schedule.warmup_epochs, v.schedule.warmup_factor, v.epochs) == \
        ("warmup_cosine", 1.0, 10.0, 5)
    assert v.schedule.stepping == "epoch"  # the code steps its scheduler once per epoch
    lr = v.schedule.scheds(v.lr, v.epochs)["lr"]
    assert lr(0.0) == pytest.approx(3e-5) and lr(0.19) == pytest.approx(3e-5) and lr(1 / 5) == pytest.approx(3e-4)
    assert lr(0.999) == pytest.approx(3e-4 * (1 + np.cos(np.pi * 3 / 4)) / 2)  # the last epoch stays above 0
    assert (v.monitor, mm.MultimodalConfig().epochs) == ("auc", 20)
    other = mm.variant(ds, _toy_splits(ds), mm.MultimodalConfig(schedule="one_cycle", **LITE), use_meta=False)
    assert (other.schedule.name, other.lr) == ("one_cycle", 3e-4)  # `lr` is the peak of every schedule


def _assert_torch_adam_without_weight_decay(learn, lr: float) -> None:
    from lesionkit.engine import torch_optimizer

    opt = torch_optimizer(learn)
    assert type(opt) is torch.optim.Adam
    for group in opt.param_groups:
        assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and group["weight_decay"] == 0.0
        assert group["amsgrad"] is False
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in learn.model.parameters() if p.requires_grad}  # no parameter left out
    learn.opt.set_hyper("lr", lr)
    assert all(g["lr"] == pytest.approx(lr) for g in opt.param_groups)


def test_papers_optimisers_from_the_modules_recipes(synthetic_dir: Path) -> None:
    """§C.5 (train.py L182): torch Adam(lr 3e-5), no weight decay, for both models; §C.6: Adam(lr 1e-4), no
    weight decay, constant, 30 epochs, batch 16 for the artefact classifier."""
    from lesionkit.papers.multimodal.artefacts import artefact_targets as targets_of
    from lesionkit.losses import MultiHeadCrossEntropy

    cfg = mm.MultimodalConfig(data_dir=str(synthetic_dir), max_images=60, image_size=32, **LITE)
    ds = mm.load_data(cfg)
    splits = make_splits(ds.df, test_frac=0.25, valid_frac=0.25)
    tr, va = splits.folds[0]
    for use_meta in (False, True):
        v = mm.variant(ds, splits, cfg, use_meta)
        assert v.optimizer.describe()["class"] == "torch.optim.Adam" and v.lr == pytest.approx(cfg.lr)
        learn = v.learner(tr, va)
        _assert_torch_adam_without_weight_decay(learn, v.lr)
        assert 0.15 < max_drop_path(learn.model) < 0.2  # efficientnet_pytorch's drop-connect 0.2 (§C.4), by depth
    off = mm.variant(ds, splits, mm.MultimodalConfig(drop_path_rate=0.0, **LITE), use_meta=True)
    assert max_drop_path(off.model()) == 0.0
    art = mm.artefact_variant(ds, targets_of(ds.df), mm.MultimodalConfig(**LITE))
    assert (art.lr, art.epochs, art.schedule.name, art.monitor) == (1e-4, 30, "constant", "valid_loss")
    assert mm.MultimodalConfig().artefact_batch_size == 16
    art = mm.artefact_variant(ds, targets_of(ds.df), cfg)
    learn = art.learner(tr, va)
    assert isinstance(learn.loss_func, MultiHeadCrossEntropy)
    assert 0.15 < max_drop_path(learn.model) < 0.2
    _assert_torch_adam_without_weight_decay(learn, art.lr)


def test_evaluate_scores_the_fold_ensemble_with_the_fold_spread(new_run) -> None:
    from lesionkit.engine import FoldResults

    ds = _ds(n_patients=20)
    run = new_run()
    splits = Splits(test=np.arange(20), folds=[(np.arange(20, 60), np.arange(20, 60))] * 2)
    y = ds.df["label_idx"].to_numpy()[:20]
    rows, probs = [], {}
    for key, label in mm.MODELS.items():
        for k, auc in enumerate((0.6, 0.8)):
            rows.append({"model": label, "fold": k, **{m: auc for m in mm.METRICS}, "seconds": 2.0})
        rows.append({"model": label, "fold": "ensemble", **{m: 0.9 for m in mm.METRICS}})
        probs[key] = [np.stack([1 - y * 0.7, y * 0.7], 1)] * 2
    table = mm.evaluate(ds, splits, FoldResults(table=pd.DataFrame(rows), probs=probs, y=y), run).set_index("model")
    row = table.loc["image + metadata"]
    assert row["auc"] == 0.9 and row["auc_fold_mean"] == pytest.approx(0.7)
    assert row["auc_fold_std"] == pytest.approx(0.1)  # ddof 0, as the papers
    assert row["train_seconds"] == 4.0 and row["n_melanoma"] == int(y.sum())
    assert pd.read_csv(run.dir / "predictions" / "test_meta.csv").columns.tolist() == ["image_name", "target"]


def test_config_defaults_are_the_papers_and_smoke_shrinks() -> None:
    cfg = mm.MultimodalConfig.from_params({"epochs": "100", "pretrained": "false"})
    assert (cfg.backbone, cfg.image_size, cfg.lr, cfg.batch_size, cfg.schedule) == \
        ("tf_efficientnet_b2.aa_in1k", 256, 3e-4, 64, "warmup_cosine")
    assert cfg.epochs == 100 and cfg.pretrained is False and cfg.effective() is cfg
    small = mm.MultimodalConfig.from_params({"smoke": True}).effective()
    assert small.epochs == 1 and small.image_size == 64 and small.backbone == "tf_efficientnet_lite0"
    assert small.max_images > 0 and small.tta is False


@pytest.mark.parametrize("params, message", [({"attribution_methods": "magic"}, "attribution_methods"),
                                             ({"split": "lesion"}, "split"), ({"epochs": "ten"}, "epochs"),
                                             ({"eppochs": 3}, "did you mean"),
                                             ({"data_dir": "/no/such/folder"}, "does not exist")])
def test_config_rejects_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mm.MultimodalConfig.from_params(params)


def test_load_data_uses_isic_sites_and_subsamples_whole_patients(synthetic_dir: Path) -> None:
    cfg = mm.MultimodalConfig(data_dir=str(synthetic_dir), max_images=60)
    ds = mm.load_data(cfg)
    assert ds.task == "binary" and ds.classes == ["other", "melanoma"]
    raw = pd.read_csv(synthetic_dir / "labels.csv").set_index("image_id")
    assert (ds.df["site"].to_numpy() == raw.loc[ds.df["image_id"], "anatom_site_general_challenge"].to_numpy()).all()
    assert len(ds) < len(raw)
    kept = set(ds.df["patient_id"])
    assert raw[raw["patient_id"].isin(kept)].shape[0] == len(ds)  # whole patients only
