"""The experiment engine: optimisers written out, schedules, one fit that resumes exactly, seeded stages, one
prediction rule, the one split rule (partial patient ids) and the split recorded with the run."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback

from lesionkit.data import load_dataset
from lesionkit.data.loaders import image_dls
from lesionkit.data.splits import Splits, make_splits
from lesionkit.engine import (OptimizerSpec, Schedule, Variant, adam, fit, make_learner, predict, run_splits,
                              stage_states, torch_optimizer, train_stage)
from lesionkit.engine.schedules import resumed
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.metrics import fastai_metrics
from lesionkit.records.runs import start_run


class _Crash(Callback):
    """Raises at the start of epoch ``at`` (fastai counts the epochs of this fit call from 0)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def before_epoch(self) -> None:
        if self.epoch == self.at:
            raise KeyboardInterrupt("killed by the test")


@pytest.fixture()
def tiny(synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    ds = load_dataset(synthetic_dir)
    splits = make_splits(ds.df, folds=1, test_frac=0.25, valid_frac=0.25, seed=0)
    return ds, splits


def _variant(ds, epochs: int = 3, schedule: str = "one_cycle") -> Variant:
    import timm

    return Variant(key="m", label="m", model=lambda: timm.create_model("resnet10t", num_classes=ds.n_classes),
                   dls=lambda tr, va: image_dls(ds, tr, va, size=32, bs=16),
                   optimizer=adam(), schedule=Schedule(schedule), epochs=epochs, lr=3e-3, monitor="bma",
                   metrics=fastai_metrics("multiclass", ds.n_classes))


def _new_run(name: str = "t"):
    return start_run(name, QuickstartConfig, {}, watch_notebook=False)


def _train(run, ds, splits, v: Variant, seed: int = 0):
    tr, va = splits.folds[0]
    return train_stage(run, "m", lambda: v.learner(tr, va), v.epochs, v.lr, v.schedule, v.monitor, seed=seed,
                       headless=True)


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


@pytest.mark.parametrize("spec, cls, expected", [
    (adam(), torch.optim.Adam, {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}),
    (OptimizerSpec("adamw", weight_decay=1e-5), torch.optim.AdamW, {"betas": (0.9, 0.999), "weight_decay": 1e-5}),
    (OptimizerSpec("sgd", momentum=0.9, weight_decay=1e-4), torch.optim.SGD, {"momentum": 0.9, "weight_decay": 1e-4}),
])
def test_optimizer_spec_builds_exactly_the_torch_optimiser(tiny, spec, cls, expected) -> None:
    ds, splits = tiny
    learn = make_learner(image_dls(ds, *splits.folds[0], size=32, bs=8),
                         torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                             torch.nn.LazyLinear(ds.n_classes)), optimizer=spec)
    learn.model(torch.zeros(1, 3, 32, 32))  # materialise the lazy layer
    opt = torch_optimizer(learn)
    assert type(opt) is cls
    for group in opt.param_groups:  # every parameter, BN and biases included, gets the weight decay
        for k, v in expected.items():
            assert group[k] == pytest.approx(v), k


def test_bn_bias_exemption_is_an_explicit_option() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    groups = OptimizerSpec("adamw", weight_decay=0.05, decay_bn_bias=False).param_groups([list(model.parameters())])
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
    assert len(OptimizerSpec("adamw", weight_decay=0.05).param_groups([list(model.parameters())])) == 1


@pytest.mark.parametrize("name", ["one_cycle", "step", "warmup_cosine", "poly", "flat_cos"])
def test_a_resumed_schedule_continues_where_it_stopped(name: str) -> None:
    f = Schedule(name).scheds(1.0, 10)["lr"]
    g = resumed(f, 4, 10)
    for pos in (0.0, 0.3, 0.99):
        assert g(pos) == pytest.approx(f(0.4 + pos * 0.6))


def test_same_seed_same_metrics_and_a_killed_fit_resumes_exactly(tiny) -> None:
    ds, splits = tiny
    v = _variant(ds)
    a = _new_run("a")
    learn_a = _train(a, ds, splits, v)
    b = _new_run("b")  # the same seed: identical weights and history
    learn_b = _train(b, ds, splits, v)
    assert torch.equal(_weights(learn_a.model), _weights(learn_b.model))
    cols = ["epoch", "train_loss", "valid_loss", "bma"]
    pd.testing.assert_frame_equal(a.history()[cols], b.history()[cols])

    c = _new_run("c")  # killed at the start of its third epoch, then resumed in the same record
    tr, va = splits.folds[0]
    with pytest.raises(KeyboardInterrupt):
        train_stage(c, "m", lambda: v.learner(tr, va).add_cb(_Crash(2)), v.epochs, v.lr, v.schedule, v.monitor,
                    headless=True)
    assert (c.dir / "checkpoints" / "m_last.pth").exists() and "m" not in stage_states(c)
    state = torch.load(c.dir / "checkpoints" / "m_last.pth", weights_only=True)  # plain tensors and lists only
    assert state["epoch"] == 1 and set(state) >= {"model", "opt", "rng", "best", "epochs", "stage"}
    learn_c = _train(c, ds, splits, v)
    assert torch.equal(_weights(learn_a.model), _weights(learn_c.model))
    assert list(c.history()["epoch"]) == [0, 1, 2], "each epoch once in the history"
    pd.testing.assert_frame_equal(a.history()[cols], c.history()[cols])
    assert stage_states(c)["m"]["resumed_at"] == 2 and not (c.dir / "checkpoints" / "m_last.pth").exists()
    learn_d = _train(c, ds, splits, v)  # a done stage only loads its weights
    assert torch.equal(_weights(learn_a.model), _weights(learn_d.model)) and len(c.history()) == 3


def test_fit_selects_the_best_epoch_and_stops_early(tiny) -> None:
    ds, splits = tiny
    learn = _variant(ds).learner(*splits.folds[0])
    run = _new_run()
    result = fit(learn, 4, 1e-9, "constant", monitor="valid_loss", patience=1, run=run, headless=True)
    assert result.best_epoch == 0, "lr 1e-9 cannot improve on epoch 0; patience 1 stops after epoch 1"
    assert list(run.history()["epoch"]) == [0, 1], "the epoch that triggers the stop is still recorded"
    state = torch.load(run.dir / "checkpoints" / "last.pth", weights_only=True)
    assert state["epoch"] == 1, "and checkpointed, so a resumed run knows it stopped"
    with pytest.raises(ValueError, match="monitor='auc' is not computed"):
        fit(learn, 1, 1e-3, monitor="auc", headless=True)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_fit_keeps_the_best_or_the_last_epochs_weights(tiny, keep) -> None:
    from fastai.metrics import AccumMetric

    ds, splits = tiny
    scores = iter([3.0, 2.0, 1.0])  # "countdown", higher is better: epoch 0 is the best, epoch 2 the last
    countdown = AccumMetric(lambda p, t: next(scores), name="countdown", flatten=False)
    learn = make_learner(_variant(ds).dls(*splits.folds[0]), _variant(ds).model(), metrics=[countdown])
    run = _new_run()
    result = fit(learn, 3, 3e-3, "constant", monitor="countdown", run=run, headless=True, keep=keep)
    assert result.best_epoch == 0
    best = torch.load(run.dir / "checkpoints" / "best.pth", weights_only=True)
    last = torch.load(run.dir / "checkpoints" / "last.pth", weights_only=True)["model"]
    kept = _weights(learn.model)
    assert not torch.equal(_weights_of(best), _weights_of(last))  # the two choices are different weights
    assert torch.equal(kept, _weights_of(best if keep == "best" else last))
    with pytest.raises(ValueError, match="keep='first'"):
        fit(learn, 1, 1e-3, keep="first", headless=True)


def _weights_of(state: dict) -> torch.Tensor:
    return torch.cat([p.flatten() for p in state.values() if p.is_floating_point()])


@pytest.mark.parametrize("preset", ["arl", "first_place"])
def test_rng_snapshot_covers_the_augmentations_own_streams(tiny, preset: str) -> None:
    """ARL's crops (WorkerRNG) and the 1st place's albumentations draw from their own generators: a resumed epoch
    must draw the same augmentations as the uninterrupted one."""
    from lesionkit.engine import rng_state, set_rng_state

    ds, splits = tiny
    dls = image_dls(ds, *splits.folds[0], size=32, bs=8, preset=preset, seed=0)
    state = rng_state(dls)
    first = dls.train.one_batch()[0].clone()
    set_rng_state(state, dls)
    assert torch.equal(first, dls.train.one_batch()[0])
    assert state["augment"], "the augmentation stream was not found"


def test_headless_fit_prints_one_line_per_epoch(tiny, capsys) -> None:
    ds, splits = tiny
    fit(_variant(ds).learner(*splits.folds[0]), 2, 1e-3, stage="s", headless=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert [ln.split(":")[0] for ln in lines] == ["s epoch 1/2", "s epoch 2/2"]
    assert "valid_loss" in lines[0] and "bma" in lines[0]


class _Corner(torch.nn.Module):
    """Two logits read from the top-left pixel: flips change it, so views are visible in the output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x[:, 0, 0, 0]
        return torch.stack([c, -c], 1)


def test_predict_views_and_the_averaging_rule() -> None:
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0, 0, 0] = 4.0
    dl = [(x, torch.tensor([1]))]
    p, y = predict(_Corner(), dl)
    assert y.tolist() == [1] and p[0, 0] == pytest.approx(torch.sigmoid(torch.tensor(8.0)).item())
    probs, _ = predict(_Corner(), dl, views="flips4", average="probs")
    logits, _ = predict(_Corner(), dl, views="flips4", average="logits")
    one, half = torch.tensor([4.0, -4.0]).softmax(0)[0].item(), 0.5
    assert probs[0, 0] == pytest.approx((one + 3 * half) / 4)
    assert logits[0, 0] == pytest.approx(torch.tensor([1.0, -1.0]).softmax(0)[0].item())

    class Stacked(list):
        stacked_views = True

    views = torch.stack([x[0], x[0].flip(-1)])[None]  # (B=1, V=2, 3, 2, 2)
    stacked, _ = predict(_Corner(), Stacked([(views, torch.tensor([0]))]))
    assert stacked[0, 0] == pytest.approx((one + half) / 2)
    single, _ = predict(torch.nn.Linear(12, 1), [(torch.zeros(3, 12),)], n_inp=1)
    assert single.shape == (3, 2), "one logit gives (1 - p, p)"


def test_partial_patient_ids_split_without_error_or_leak() -> None:
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"image_id": [f"I{i}" for i in range(n)], "lesion_id": [f"L{i // 2}" for i in range(n)],
                       "label_idx": rng.integers(0, 3, n)})
    # the ISIC 2019+2020 merge: 2020 rows have patients (several lesions each), 2019 rows have none
    df["patient_id"] = [f"P{i // 8}" if i < n // 2 else np.nan for i in range(n)]
    splits = make_splits(df, folds=3, test_frac=0.2, seed=0)
    for k in range(3):
        parts = splits.parts(k)
        for col in ("lesion_id", "patient_id"):
            owner = {}
            for part, idx in parts.items():
                for g in df[col].iloc[idx].dropna():
                    assert owner.setdefault(g, part) == part, f"{col} {g} on two sides"
        assert sum(len(p) for p in parts.values()) == n


def test_the_split_is_recorded_and_reused(tiny) -> None:
    ds, _ = tiny
    run = _new_run()
    splits = run_splits(run, ds, folds=2, test_frac=0.2, seed=3)
    table = pd.read_csv(run.dir / "splits.csv")
    assert set(table["part"]) == {"train", "valid", "test"} and sorted(table["fold"].unique()) == [0, 1]
    again = run_splits(_new_run(), ds, folds=2, seed=99, split_from=str(run.dir))
    assert np.array_equal(again.test, splits.test)
    assert all(np.array_equal(a, b) for f, g in zip(again.folds, splits.folds) for a, b in zip(f, g))
    back = Splits.from_frame(table, ds.df)
    assert np.array_equal(back.folds[1][1], splits.folds[1][1])
    with pytest.raises(ValueError, match="not in this dataset"):
        Splits.from_frame(table.assign(image_id="nope"), ds.df)


def test_stage_titles_name_the_model_and_fold() -> None:
    from lesionkit.engine.runner import stage_title

    assert stage_title("arl_fold0", "ARL-CNN18") == "ARL-CNN18 (arl), fold 0"
    assert stage_title("resnet_fold2") == "resnet, fold 2"
    assert stage_title("segmenter", "segmenter") == "segmenter"
