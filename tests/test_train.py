"""Training glue: history written per epoch, failed runs keep config + history, best epoch restored."""
from __future__ import annotations

import json

import pytest
import torch
from fastai.callback.core import Callback

from lesionkit.data import load_dataset
from lesionkit.data.loaders import image_dls
from lesionkit.data.splits import grouped_holdout
from lesionkit.experiments.quickstart import QuickstartConfig
from lesionkit.registry import create_model
from lesionkit.runs import start_run
from lesionkit.train import fit, make_learner, predict


class _StopAt(Callback):
    def __init__(self, epoch: int, exc: type[BaseException]) -> None:
        self.at, self.exc = epoch, exc

    def before_epoch(self) -> None:
        if self.epoch == self.at:
            raise self.exc("stopped by the test")


@pytest.fixture()
def small_learner(synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    torch.manual_seed(0)
    ds = load_dataset(synthetic_dir)
    tr, va = grouped_holdout(ds.df, test_frac=0.25, group_col="patient_id", stratify_col="label_idx", seed=0)
    run = start_run("t", QuickstartConfig, {"epochs": 3}, watch_notebook=False)
    model = create_model("resnet18", num_classes=ds.n_classes)
    dls = image_dls(ds, tr, va, size=48, bs=32)
    return run, make_learner(dls, model, run, monitor="valid_loss"), ds, va


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_run_killed_mid_training_keeps_config_and_history(small_learner, exc) -> None:
    run, learn, _, _ = small_learner
    with pytest.raises(exc):
        with run:
            fit(learn.add_cb(_StopAt(2, exc)), 3, 1e-3)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith(exc.__name__)
    history = run.history()
    assert list(history["epoch"]) == [0, 1] and {"train_loss", "valid_loss", "time"} <= set(history.columns)
    assert (run.dir / "config.yaml").exists()
    assert (run.dir / "checkpoints" / "best.pth").exists(), "the best checkpoint so far survives"


def test_predict_returns_probabilities_and_tta_changes_little(small_learner) -> None:
    run, learn, ds, va = small_learner
    fit(learn, 1, 1e-3)
    dl = learn.dls.valid
    probs, y = predict(learn, dl)
    probs_tta, y2 = predict(learn, dl, tta=True)
    assert probs.shape == (len(va), ds.n_classes) and (y == y2).all()
    assert abs(probs.sum(1) - 1).max() < 1e-4 and abs(probs_tta.sum(1) - 1).max() < 1e-4
    assert not (probs == probs_tta).all()
    assert len(run.history()) == 1, "get_preds must not add history rows"
