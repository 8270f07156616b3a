"""Library logic of the multimodal notebook: artefact labels, per-head scores, splits, TTA, config (no training)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.config import ConfigError
from lesionkit.data.table import LesionDataset
from lesionkit.experiments import multimodal as mm
from lesionkit.models.multimodal import ARTEFACT_HEADS


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


def test_artefact_targets_map_synthetic_columns_to_the_six_heads() -> None:
    df = pd.DataFrame({"hair": ["none", "short", "medium", "dense"], "black_frame": [0, 1, 0, 0],
                       "ruler": [1, 0, 0, 0], "bubbles": [0, 0, 1, 0]})
    t = mm.artefact_targets(df)
    assert list(t.columns) == list(ARTEFACT_HEADS)
    assert t["hair_short"].tolist() == [0, 1, 0, 0]
    assert t["hair_medium"].tolist() == [0, 0, 1, 0]
    assert t["hair_dense"].tolist() == [0, 0, 0, 1]
    assert t["other"].tolist() == [0, 0, 1, 0]  # bubbles count as "other"
    assert t["ruler"].tolist() == [1, 0, 0, 0] and t["black_frame"].tolist() == [0, 1, 0, 0]


def test_artefact_targets_absent_or_bad() -> None:
    assert mm.artefact_targets(pd.DataFrame({"image_id": ["a"], "sex": ["male"]})) is None
    with pytest.raises(ValueError, match="curly"):
        mm.artefact_targets(pd.DataFrame({"hair": ["curly"], "black_frame": [0], "ruler": [0], "bubbles": [0]}))
    heads = pd.DataFrame({h: [1, 0] for h in ARTEFACT_HEADS})
    assert mm.artefact_targets(heads).to_numpy().tolist() == heads.to_numpy().tolist()


def test_head_accuracy_table_counts_from_zero() -> None:
    y = np.array([[0, 1], [0, 0], [1, 0], [1, 1]])
    pred = np.array([[0, 1], [1, 0], [1, 0], [0, 0]])
    t = mm.head_accuracy_table(y, pred, ["a", "b"]).set_index("head")
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


def test_patient_split_has_no_leak_and_kfold_tests_every_row_once() -> None:
    ds = _ds(n_patients=20)
    cfg = mm.MultimodalConfig(test_frac=0.2, valid_frac=0.15)
    (parts,) = mm.make_splits(ds, cfg)
    pats = {k: set(ds.df["patient_id"].iloc[v]) for k, v in parts.items()}
    assert not (pats["train"] & pats["test"]) and not (pats["train"] & pats["valid"])
    folds = mm.make_splits(ds, mm.MultimodalConfig(folds=4))
    tested = np.concatenate([f["test"] for f in folds])
    assert len(folds) == 4 and sorted(tested.tolist()) == list(range(len(ds)))
    for f in folds:
        assert not set(ds.df["patient_id"].iloc[f["train"]]) & set(ds.df["patient_id"].iloc[f["test"]])


def test_image_split_is_the_codes_variant_valid_equals_test() -> None:
    ds = _ds(n_patients=20)
    (parts,) = mm.make_splits(ds, mm.MultimodalConfig(split="image"))
    assert np.array_equal(parts["valid"], parts["test"])
    assert len(parts["train"]) + len(parts["test"]) == len(ds)


def test_split_table_counts_melanomas() -> None:
    ds = _ds(n_patients=20)
    splits = mm.make_splits(ds, mm.MultimodalConfig())
    t = mm.split_table(ds, splits)
    assert t["images"].sum() == len(ds)
    assert t["melanomas"].sum() == int((ds.df["label_idx"] == 1).sum())


def test_metadata_preview_encodes_sites_from_training_rows_only() -> None:
    ds = _ds(n_patients=20)
    parts = {"train": np.flatnonzero(ds.df["site"] != "head/neck"), "valid": np.array([], int),
             "test": np.flatnonzero(ds.df["site"] == "head/neck")}
    prev = mm.metadata_preview(ds, parts, mm.MultimodalConfig())
    assert "site_head/neck" not in prev.columns and {"site_torso", "site_nan", "sex", "age"} <= set(prev.columns)
    row = prev.iloc[0]
    assert row["age"] == pytest.approx(ds.df["age"].iloc[parts["train"][0]] / 90)


class _Asym(torch.nn.Module):
    """Logits depend on where the image's mass sits, so flips and transposes change them."""

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        w = torch.linspace(-1, 1, x.shape[-1])
        a = (x.mean(1) * w).sum((1, 2)) + 0.5 * (x.mean(1) * w[:, None]).sum((1, 2)) + meta[:, 0]
        return torch.stack([torch.zeros_like(a), a], 1)


class _FakeLearn:
    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model


def test_tta_averages_softmax_over_the_eight_views() -> None:
    torch.manual_seed(0)
    x, meta, y = torch.rand(3, 3, 8, 8), torch.rand(3, 2), torch.tensor([0, 1, 1])
    learn = _FakeLearn(_Asym())
    p1, y1 = mm.predict(learn, [(x, meta, y)], tta=False)
    p8, _ = mm.predict(learn, [(x, meta, y)], tta=True)
    views = []
    for t in (False, True):
        for f in ((), (2,), (3,), (2, 3)):
            v = x.transpose(2, 3) if t else x
            views.append(_Asym()(torch.flip(v, f) if f else v, meta).softmax(1))
    assert np.allclose(p8, torch.stack(views).mean(0).numpy(), atol=1e-6)
    assert np.allclose(p1, views[0].numpy(), atol=1e-6) and not np.allclose(p1, p8)
    assert y1.tolist() == [0, 1, 1] and np.allclose(p8.sum(1), 1)


def test_image_only_wrapper_ignores_meta() -> None:
    from lesionkit.models import create_model

    model = create_model("multimodal_b2_image", backbone="tf_efficientnet_lite0", num_classes=2).eval()
    wrapped = mm._MetaOptional(model, use_meta=False).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wrapped(x, torch.rand(2, 5)), model(x))


def test_fit_warmup_cosine_peaks_at_ten_times_the_base_lr(monkeypatch: pytest.MonkeyPatch) -> None:
    from lesionkit.experiments import protocol

    calls = []
    monkeypatch.setattr(protocol, "fit_schedule", lambda learn, e, lr, s, monitor: calls.append((e, lr, s, monitor)))
    learn = type("L", (), {"lesionkit_monitor": "auc"})()
    mm.fit(learn, 5, 3e-5, "warmup_cosine")
    mm.fit(learn, 5, 3e-5, "one_cycle")
    assert calls == [(5, pytest.approx(3e-4), "warmup_cosine", "auc"), (5, 3e-5, "one_cycle", "auc")]


def test_config_defaults_are_the_papers_and_smoke_shrinks() -> None:
    cfg = mm.MultimodalConfig.from_params({"epochs": "100", "pretrained": "false"})
    assert (cfg.backbone, cfg.image_size, cfg.lr, cfg.batch_size, cfg.schedule) == \
        ("tf_efficientnet_b2", 256, 3e-5, 64, "warmup_cosine")
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
