"""The engine's fit and predict on a real learner: history per epoch, failed runs keep config + history and their
checkpoints, TTA, input counts."""
from __future__ import annotations

import json

import pytest
import torch
from fastai.callback.core import Callback

from lesionkit.data import load_dataset
from lesionkit.data.loaders import image_dls
from lesionkit.data.splits import grouped_holdout
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.models import create_model
from lesionkit.records.runs import start_run
from lesionkit.engine import fit, make_learner, predict_learner as predict, tta_views


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
    return run, make_learner(dls, model), ds, va


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_run_killed_mid_training_keeps_config_and_history(small_learner, exc) -> None:
    run, learn, _, _ = small_learner
    with pytest.raises(exc):
        with run:
            fit(learn.add_cb(_StopAt(2, exc)), 3, 1e-3, run=run)
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith(exc.__name__)
    history = run.history()
    assert list(history["epoch"]) == [0, 1] and {"train_loss", "valid_loss", "time"} <= set(history.columns)
    assert (run.dir / "config.yaml").exists()
    assert (run.dir / "checkpoints" / "best.pth").exists(), "the best checkpoint so far survives"
    assert (run.dir / "checkpoints" / "last.pth").exists(), "and the resumable one"


def test_predict_returns_probabilities_and_tta_changes_little(small_learner) -> None:
    run, learn, ds, va = small_learner
    fit(learn, 1, 1e-3, run=run)
    dl = learn.dls.valid
    probs, y = predict(learn, dl)
    probs_tta, y2 = predict(learn, dl, views=True)
    assert probs.shape == (len(va), ds.n_classes) and (y == y2).all()
    assert abs(probs.sum(1) - 1).max() < 1e-4 and abs(probs_tta.sum(1) - 1).max() < 1e-4
    assert not (probs == probs_tta).all()
    assert len(run.history()) == 1, "get_preds must not add history rows"


def test_tta_views_are_the_flip_and_dihedral_groups() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert len(tta_views(x, False)) == 1 and tta_views(x, "none")[0] is x
    flips, dihedral = tta_views(x, True), tta_views(x, "dihedral8")
    assert len(flips) == 4 and len(dihedral) == 8
    assert torch.equal(dihedral[4], x.transpose(-2, -1)) and torch.equal(flips[3], x.flip(-1).flip(-2))
    # the 8 views of a 2×2 image with distinct pixels are the 8 distinct symmetries of the square
    assert len({tuple(v[0, 0].flatten().tolist()) for v in dihedral}) == 8
    patches = torch.rand(2, 5, 3, 4, 4)  # patch grids flip each patch in place, never reorder the patches
    assert torch.equal(tta_views(patches, True)[1][:, 2], patches[:, 2].flip(-1))
    with pytest.raises(ValueError, match="dihedral8"):
        tta_views(x, "rot90")


class _TwoInputs(torch.nn.Module):
    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        assert cam is not None, "the second input (a CAM) was not passed"
        return torch.stack([x.mean((1, 2, 3)), cam.mean((1, 2, 3))], 1)


def test_predict_takes_n_inp_from_the_training_loaders_not_the_test_loader() -> None:
    from types import SimpleNamespace

    x, cam, y = torch.rand(3, 3, 4, 4), torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 1])
    two = SimpleNamespace(model=_TwoInputs(), dls=SimpleNamespace(n_inp=2))  # SE-LCN: (image, cam) → y
    probs, targets = predict(two, [(x, cam, y)])
    assert probs.shape == (3, 2) and targets.tolist() == [0, 1, 1]
    one = SimpleNamespace(model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2)),
                          dls=SimpleNamespace(n_inp=1))  # patch attention: (image) → y, dx factor
    probs, targets = predict(one, [(x, y, torch.ones(3))])
    assert probs.shape == (3, 2) and targets.tolist() == [0, 1, 1]
