"""The evaluation protocol every paper shares, now the engine's: grouped CV with a fixed test set, per-fold rows and
tables, schedules, TTA prediction, task views."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.data.table import LesionDataset
from lesionkit import engine
from lesionkit.data import tasks
from lesionkit.data.splits import make_splits
from lesionkit.metrics import BINARY_KEYS


def _dataset(n_lesions: int = 60, seed: int = 0) -> LesionDataset:
    """Two images per lesion, two lesions per patient, three classes."""
    rng = np.random.default_rng(seed)
    rows = []
    classes = ["mel", "nv", "bkl"]
    for lesion in range(n_lesions):
        label = classes[lesion % 3]
        for k in range(2):
            rows.append({"image_id": f"IMG_{lesion}_{k}", "path": f"/nowhere/{lesion}_{k}.jpg", "label": label,
                         "label_idx": classes.index(label), "lesion_id": f"L{lesion}", "patient_id": f"P{lesion // 2}",
                         "age": float(rng.integers(20, 80)), "sex": "female", "site": "back", "dx_type": "histo",
                         "mask_path": np.nan, "split": np.nan})
    return LesionDataset("toy", Path("/nowhere"), pd.DataFrame(rows), classes)


@pytest.mark.parametrize("folds", [1, 3])
def test_make_splits_keep_groups_apart_and_share_one_test_set(folds: int) -> None:
    ds = _dataset()
    cv = make_splits(ds.df, folds=folds, test_frac=0.2, valid_frac=0.2, seed=1)
    assert len(cv) == folds
    patients = ds.df["patient_id"].to_numpy()
    test_patients = set(patients[cv.test])
    valids = []
    for tr, va in cv.folds:
        assert not set(tr) & set(va) and not (set(tr) | set(va)) & set(cv.test)
        assert not set(patients[tr]) & set(patients[va]) and not set(patients[va]) & test_patients
        assert len(tr) + len(va) + len(cv.test) == len(ds)
        valids.append(va)
    if folds > 1:  # every non-test row validates exactly once
        assert sorted(np.concatenate(valids).tolist()) == sorted(set(range(len(ds))) - set(cv.test.tolist()))
    assert list(cv.sizes().columns) == ["fold", "train", "valid", "test"]


def test_make_splits_are_reproducible_and_reject_zero_folds() -> None:
    ds = _dataset()
    a, b = make_splits(ds.df, 2, seed=3), make_splits(ds.df, 2, seed=3)
    assert np.array_equal(a.test, b.test) and all(np.array_equal(x[0], y[0]) for x, y in zip(a.folds, b.folds))
    with pytest.raises(ValueError, match="folds=0"):
        make_splits(ds.df, 0)


def test_flat_metrics_flattens_nested_reports() -> None:
    report = {"auc": 0.9, "per_class": {"mel": {"auc": 0.8, "sensitivity": 0.5}}, "name": "x", "flag": True}
    assert engine.flat_metrics(report) == {"auc": 0.9, "per_class/mel/auc": 0.8, "per_class/mel/sensitivity": 0.5}


def test_run_folds_collects_rows_per_fold_and_an_ensemble_row(tmp_path: Path, monkeypatch) -> None:
    from lesionkit.engine import runner

    ds = _dataset()
    splits = make_splits(ds.df, folds=2, test_frac=0.2, seed=0)
    trained, written = [], []
    fake = SimpleNamespace(model=torch.nn.Linear(2, 3))
    monkeypatch.setattr(runner, "train_stage", lambda run, key, build, *a, **k: trained.append(key) or fake)
    probs = {0: np.tile([0.2, 0.3, 0.5], (len(splits.test), 1)), 1: np.tile([0.6, 0.3, 0.1], (len(splits.test), 1))}
    y = ds.df["label_idx"].to_numpy()[splits.test]
    monkeypatch.setattr(runner, "test_predictions", lambda learn, v, ds, rows: (probs[len(trained) % 2 == 0], y))
    monkeypatch.setattr(runner, "record_evaluation", lambda run, name, *a, **k: written.append(name))
    run = SimpleNamespace(dir=tmp_path, save_table=lambda df, name: df.to_csv(tmp_path / name, index=False))
    variants = [SimpleNamespace(key=k, label=k.upper(), epochs=1, lr=1e-3, schedule="constant", monitor="valid_loss",
                                patience=0, keep="best", learner=lambda tr, va: None) for k in ("a", "b")]
    out = engine.run_folds(run, ds, splits, variants, lambda y, p: {"mean_p0": float(p[:, 0].mean())},
                           ensemble=True)
    assert trained == ["a_fold0", "a_fold1", "b_fold0", "b_fold1"]
    assert written == ["test_a_fold0", "test_a_fold1", "test_a_ensemble", "test_b_fold0", "test_b_fold1",
                       "test_b_ensemble"]
    assert out.table["fold"].astype(str).tolist() == ["0", "1", "ensemble"] * 2
    assert out.table["mean_p0"].tolist() == pytest.approx([0.2, 0.6, 0.4] * 2)
    assert out.table["params"].iloc[0] == 9 and set(out.learners) == {"a", "b"}
    assert len(pd.read_csv(tmp_path / "folds.csv")) == 6, "rows are written as the folds finish"
    assert engine.fold_means(out.table)["A"]["mean_p0"] == pytest.approx(0.4), "ensemble rows are not folds"


def test_fold_table_and_means_use_population_std() -> None:
    df = pd.DataFrame({"model": ["A", "A", "B", "B"], "fold": [0, 1, 0, 1], "auc": [0.6, 0.8, 0.5, 0.5],
                       "seconds": [1, 2, 3, 4]})
    table = engine.fold_table(df)
    assert table.set_index("metric").loc["auc", "A"] == "0.700 ± 0.100"
    assert "seconds" not in set(table["metric"])
    assert engine.fold_means(df) == {"A": {"auc": pytest.approx(0.7)}, "B": {"auc": 0.5}}


def test_step_schedule_halves_at_fractions_of_training() -> None:
    arl = engine.schedules.step_schedule(1.0, start=0.0, every=0.3)
    assert [arl(p) for p in (0.0, 0.29, 0.31, 0.61, 0.91)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    gessert = engine.schedules.step_schedule(1.0, start=0.2, every=0.2)  # 50 epochs: first halving at epoch 20
    assert [gessert(p) for p in (0.1, 0.39, 0.41, 0.61)] == [1.0, 1.0, 0.5, 0.25]


def test_warmup_cosine_rises_then_anneals_to_zero() -> None:
    s = engine.schedules.warmup_cosine_schedule(1.0, epochs=10)
    assert s(0.0) == pytest.approx(0.1) and s(0.1) == pytest.approx(1.0) and s(1.0) == pytest.approx(0.0, abs=1e-9)
    after = [s(p) for p in np.linspace(0.1, 1.0, 20)]
    assert all(x >= y for x, y in zip(after, after[1:]))
    assert engine.schedules.warmup_cosine_schedule(1.0, epochs=1)(0.0) == pytest.approx(1.0)  # no room to warm up


def test_unknown_schedules_and_optimizers_are_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        engine.Schedule("cosine_restarts")
    with pytest.raises(ValueError, match="choose one of"):
        engine.OptimizerSpec("lamb")


def test_to_probs_handles_single_logit_and_softmax() -> None:
    p = engine.to_probs(torch.tensor([[0.0], [2.0]]))
    assert p.shape == (2, 2) and torch.allclose(p[:, 1], torch.sigmoid(torch.tensor([0.0, 2.0])))
    q = engine.to_probs(torch.tensor([[1.0, 1.0, 1.0]]))
    assert torch.allclose(q, torch.full((1, 3), 1 / 3))


class _Corner(torch.nn.Module):
    """Logits from the top-left pixel of the (last) image plane: flip-sensitive on purpose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[..., 0, 0, 0] if x.dim() == 4 else x[:, 0, 0, 0, 0]
        return torch.stack([v, -v], dim=1)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 5, 3, 4, 4)])
def test_predict_flip_views_average_the_four_corners(shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape)
    y = torch.tensor([0, 1])
    dl = [(x, y, torch.tensor([4.0, 1.0]))]  # an extra target (diagnosis factors) is ignored
    plain, targets = engine.predict(_Corner(), dl, views=False)
    assert targets.tolist() == [0, 1]
    corner = x[..., 0, :, :] if x.dim() == 4 else x[:, 0, 0]
    expected = torch.stack([engine.to_probs(torch.stack([c, -c], 1)) for c in
                            (corner[..., 0, 0], corner[..., 0, -1], corner[..., -1, 0], corner[..., -1, -1])]).mean(0)
    tta, _ = engine.predict(_Corner(), dl, views=True)
    assert np.allclose(tta, expected.numpy(), atol=1e-6) and not np.allclose(tta, plain)


class _Stacked(list):
    stacked_views = True


def test_predict_averages_a_stacked_view_axis() -> None:
    x = torch.zeros(2, 3, 3, 2, 2)
    x[0, 1, 0, 0, 0] = 3.0  # one view of image 0 differs
    probs, y = engine.predict(_Corner(), _Stacked([(x, torch.tensor([1, 0]))]))
    one = engine.to_probs(torch.tensor([[3.0, -3.0]]))[0]
    zero = engine.to_probs(torch.tensor([[0.0, 0.0]]))[0]
    assert np.allclose(probs[0], ((one + 2 * zero) / 3).numpy()) and y.tolist() == [1, 0]


def test_one_vs_rest_and_binary_scoring() -> None:
    ds = _dataset(12)
    b = tasks.one_vs_rest(ds, "mel")
    assert b.classes == ["rest", "mel"] and b.task == "binary"
    assert (b.df["label_idx"] == (ds.df["label"] == "mel")).all() and set(b.df["label"]) == {"rest", "mel"}
    assert ds.df["label"].nunique() == 3  # the source dataset is untouched
    assert tasks.one_vs_rest(ds, "melanoma").classes == ["rest", "mel"]  # a synonym finds the dataset's name
    with pytest.raises(ValueError, match="not in the dataset's classes"):
        tasks.one_vs_rest(ds, "no_such_class")
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert set(engine.score(y, probs, b.classes)) == set(BINARY_KEYS)
    multi = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    report = engine.score(np.array([0, 1, 2, 0]), multi, ds.classes, positive="mel")
    assert report["auc"] == 1.0
    with pytest.raises(ValueError, match="positive class"):
        engine.score(y, probs, b.classes, positive="x")


def test_pick_examples_covers_classes_first() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 2, 0]]
    picked = engine.pick_examples(y, probs, n=3, seed=0)
    assert len(set(picked)) == 3 and set(y[picked]) == {0, 1, 2}


def test_model_inputs_resize_and_normalise(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    ds = SimpleNamespace(df=pd.DataFrame({"path": [str(path)]}))
    x = tasks.model_inputs(ds, [0], (12, 16), norm=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert x.shape == (1, 3, 12, 16)
    assert torch.allclose(x[0, 0], torch.ones(12, 16)) and torch.allclose(x[0, 1], -torch.ones(12, 16))
    assert math.isclose(float(tasks.model_inputs(ds, [0], 8, norm=None).max()), 1.0)


def test_count_params() -> None:
    m = torch.nn.Linear(3, 2)
    m.bias.requires_grad_(False)
    assert engine.count_params(m) == 8 and engine.count_params(m, trainable_only=True) == 6
