"""The shared evaluation protocol: grouped CV with a fixed test set, per-fold tables, schedules, TTA prediction."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.data.table import LesionDataset
from lesionkit.experiments import protocol
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


class _Run:
    def __init__(self, d: Path) -> None:
        self.dir = d

    def save_table(self, df: pd.DataFrame, name: str) -> Path:
        df.to_csv(self.dir / name, index=False)
        return self.dir / name


@pytest.mark.parametrize("folds", [1, 3])
def test_cv_splits_keep_groups_apart_and_share_one_test_set(folds: int) -> None:
    ds = _dataset()
    cv = protocol.cv_splits(ds, folds=folds, test_frac=0.2, valid_frac=0.2, seed=1)
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


def test_cv_splits_are_reproducible_and_reject_zero_folds() -> None:
    ds = _dataset()
    a, b = protocol.cv_splits(ds, 2, seed=3), protocol.cv_splits(ds, 2, seed=3)
    assert np.array_equal(a.test, b.test) and all(np.array_equal(x[0], y[0]) for x, y in zip(a.folds, b.folds))
    with pytest.raises(ValueError, match="folds=0"):
        protocol.cv_splits(ds, 0)


def test_flat_metrics_flattens_nested_reports() -> None:
    report = {"auc": 0.9, "per_class": {"mel": {"auc": 0.8, "sensitivity": 0.5}}, "name": "x", "flag": True}
    assert protocol.flat_metrics(report) == {"auc": 0.9, "per_class/mel/auc": 0.8, "per_class/mel/sensitivity": 0.5}


def test_cross_validate_collects_rows_and_keeps_other_models(tmp_path: Path) -> None:
    cv = protocol.CVSplits(test=np.array([9]), folds=[(np.array([0, 1]), np.array([2])),
                                                      (np.array([2, 1]), np.array([0]))])
    run = _Run(tmp_path)
    seen = []

    def fit_eval(k: int, tr: np.ndarray, va: np.ndarray) -> dict:
        seen.append((k, tr.tolist(), va.tolist()))
        return {"auc": 0.5 + k / 10, "per_class": {"a": {"auc": 1.0 - k / 10}}}

    a = protocol.cross_validate(cv, fit_eval, model="A", run=run, log=None)
    protocol.cross_validate(cv, fit_eval, model="B", run=run, log=None)
    assert seen[:2] == [(0, [0, 1], [2]), (1, [2, 1], [0])]
    assert a["auc"].tolist() == [0.5, 0.6] and a["per_class/a/auc"].tolist() == [1.0, 0.9]
    saved = pd.read_csv(tmp_path / "folds.csv")
    assert saved.groupby("model").size().to_dict() == {"A": 2, "B": 2}
    protocol.cross_validate(cv, fit_eval, model="A", run=run, log=None)  # re-running A replaces its rows
    assert len(pd.read_csv(tmp_path / "folds.csv")) == 4


def test_fold_table_and_means_use_population_std() -> None:
    df = pd.DataFrame({"model": ["A", "A", "B", "B"], "fold": [0, 1, 0, 1], "auc": [0.6, 0.8, 0.5, 0.5],
                       "seconds": [1, 2, 3, 4]})
    table = protocol.fold_table(df)
    assert table.set_index("metric").loc["auc", "A"] == "0.700 ± 0.100"
    assert "seconds" not in set(table["metric"])
    assert protocol.fold_means(df) == {"A": {"auc": pytest.approx(0.7)}, "B": {"auc": 0.5}}


def test_step_schedule_halves_at_fractions_of_training() -> None:
    arl = protocol.step_schedule(1.0, start=0.0, every=0.3)
    assert [arl(p) for p in (0.0, 0.29, 0.31, 0.61, 0.91)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    gessert = protocol.step_schedule(1.0, start=0.2, every=0.2)  # 50 epochs: first halving at epoch 20
    assert [gessert(p) for p in (0.1, 0.39, 0.41, 0.61)] == [1.0, 1.0, 0.5, 0.25]


def test_warmup_cosine_rises_then_anneals_to_zero() -> None:
    s = protocol.warmup_cosine_schedule(1.0, epochs=10)
    assert s(0.0) == pytest.approx(0.1) and s(0.1) == pytest.approx(1.0) and s(1.0) == pytest.approx(0.0, abs=1e-9)
    after = [s(p) for p in np.linspace(0.1, 1.0, 20)]
    assert all(x >= y for x, y in zip(after, after[1:]))
    assert protocol.warmup_cosine_schedule(1.0, epochs=1)(0.0) == pytest.approx(1.0)  # no room to warm up


def test_fit_schedule_rejects_unknown_schedules_before_training() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        protocol.fit_schedule(None, 1, 1e-3, schedule="cosine_restarts")
    with pytest.raises(ValueError, match="'adam' or 'sgd'"):
        protocol.opt_func("lamb")


def test_to_probs_handles_single_logit_and_softmax() -> None:
    p = protocol.to_probs(torch.tensor([[0.0], [2.0]]))
    assert p.shape == (2, 2) and torch.allclose(p[:, 1], torch.sigmoid(torch.tensor([0.0, 2.0])))
    q = protocol.to_probs(torch.tensor([[1.0, 1.0, 1.0]]))
    assert torch.allclose(q, torch.full((1, 3), 1 / 3))


class _Corner(torch.nn.Module):
    """Logits from the top-left pixel of the (last) image plane: flip-sensitive on purpose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[..., 0, 0, 0] if x.dim() == 4 else x[:, 0, 0, 0, 0]
        return torch.stack([v, -v], dim=1)


@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (2, 5, 3, 4, 4)])
def test_predict_probs_flip_tta_averages_the_four_corners(shape: tuple[int, ...]) -> None:
    x = torch.rand(*shape)
    y = torch.tensor([0, 1])
    dl = [(x, y, torch.tensor([4.0, 1.0]))]  # an extra target (diagnosis factors) is ignored
    plain, targets = protocol.predict_probs(_Corner(), dl, tta=False)
    assert targets.tolist() == [0, 1]
    corner = x[..., 0, :, :] if x.dim() == 4 else x[:, 0, 0]
    expected = torch.stack([protocol.to_probs(torch.stack([c, -c], 1)) for c in
                            (corner[..., 0, 0], corner[..., 0, -1], corner[..., -1, 0], corner[..., -1, -1])]).mean(0)
    tta, _ = protocol.predict_probs(_Corner(), dl, tta=True)
    assert np.allclose(tta, expected.numpy(), atol=1e-6) and not np.allclose(tta, plain)


def test_predict_views_averages_over_the_view_axis() -> None:
    x = torch.zeros(2, 3, 3, 2, 2)
    x[0, 1, 0, 0, 0] = 3.0  # one view of image 0 differs
    probs, y = protocol.predict_views(_Corner(), [(x, torch.tensor([1, 0]))])
    one = protocol.to_probs(torch.tensor([[3.0, -3.0]]))[0]
    zero = protocol.to_probs(torch.tensor([[0.0, 0.0]]))[0]
    assert np.allclose(probs[0], ((one + 2 * zero) / 3).numpy()) and y.tolist() == [1, 0]


def test_one_vs_rest_and_binary_scoring() -> None:
    ds = _dataset(12)
    b = protocol.one_vs_rest(ds, "mel")
    assert b.classes == ["rest", "mel"] and b.task == "binary"
    assert (b.df["label_idx"] == (ds.df["label"] == "mel")).all() and set(b.df["label"]) == {"rest", "mel"}
    assert ds.df["label"].nunique() == 3  # the source dataset is untouched
    with pytest.raises(ValueError, match="not in the dataset's classes"):
        protocol.one_vs_rest(ds, "melanoma")
    y = np.array([0, 1, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert set(protocol.score(y, probs, b.classes)) == set(BINARY_KEYS)
    multi = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]])
    report = protocol.score(np.array([0, 1, 2, 0]), multi, ds.classes, positive="mel")
    assert report["auc"] == 1.0
    with pytest.raises(ValueError, match="positive class"):
        protocol.score(y, probs, b.classes, positive="x")


def test_pick_examples_covers_classes_first() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 2, 0]]
    picked = protocol.pick_examples(y, probs, n=3, seed=0)
    assert len(set(picked)) == 3 and set(y[picked]) == {0, 1, 2}


def test_model_inputs_resize_and_normalise(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    ds = SimpleNamespace(df=pd.DataFrame({"path": [str(path)]}))
    x = protocol.model_inputs(ds, [0], (12, 16), norm=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert x.shape == (1, 3, 12, 16)
    assert torch.allclose(x[0, 0], torch.ones(12, 16)) and torch.allclose(x[0, 1], -torch.ones(12, 16))
    assert math.isclose(float(protocol.model_inputs(ds, [0], 8, norm=None).max()), 1.0)


def test_count_params() -> None:
    m = torch.nn.Linear(3, 2)
    m.bias.requires_grad_(False)
    assert protocol.count_params(m) == 8 and protocol.count_params(m, trainable_only=True) == 6
