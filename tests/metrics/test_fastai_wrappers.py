"""fastai wrappers: stable names usable as SaveModelCallback monitors, values equal to the plain metric functions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from fastai.callback.tracker import SaveModelCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from torch import nn
from torch.utils.data import TensorDataset

from lesionkit import metrics as M
from lesionkit.metrics.fastai_wrappers import METRIC_NAMES


def _dls(n_classes: int, seed: int = 0) -> DataLoaders:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long() * (n_classes - 2)
    train, valid = TensorDataset(x[:64], y[:64]), TensorDataset(x[64:], y[64:])
    return DataLoaders.from_dsets(train, valid, bs=16, device="cpu")


@pytest.mark.parametrize("task,n_classes", [("multiclass", 3), ("binary", 2)])
def test_names_are_stable_and_monitorable(task: str, n_classes: int, tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    metrics = M.fastai_metrics(task, n_classes)
    assert [m.name for m in metrics] == list(METRIC_NAMES[task])
    learn = Learner(_dls(n_classes), nn.Linear(4, n_classes), loss_func=nn.CrossEntropyLoss(), metrics=metrics,
                    path=tmp_path)
    monitor = "bma" if task == "multiclass" else "auc"
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 0.05, cbs=SaveModelCallback(monitor=monitor, fname="best"))
    assert (tmp_path / "models" / "best.pth").exists()
    names = list(learn.recorder.metric_names)
    assert monitor in names
    recorded = [list(row) for row in learn.recorder.values]  # copy before get_preds touches the recorder
    # SaveModelCallback reloads the best epoch; the best recorded value is the plain function on its predictions
    probs, targs = learn.get_preds(dl=learn.dls.valid)
    best = max(row[names.index(monitor) - 1] for row in recorded)  # values rows have no 'epoch' column
    y, p = targs.numpy(), torch.softmax(probs, dim=1).numpy()  # plain nn.CrossEntropyLoss: get_preds gives logits
    expected = M.balanced_accuracy(y, p) if task == "multiclass" else M.binary_auc(y, p[:, 1])
    assert best == pytest.approx(expected, abs=1e-6)


def test_binary_single_logit_and_one_class_batches():
    auc = next(m for m in M.fastai_metrics("binary", 1) if m.name == "auc")
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    assert auc(logits, torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(1.0)
    assert np.isnan(auc(logits, torch.tensor([0.0, 0.0, 0.0, 0.0])))


def test_bad_task_is_rejected():
    with pytest.raises(ValueError, match="task must be"):
        M.fastai_metrics("regression", 1)
    with pytest.raises(ValueError, match="binary needs"):
        M.fastai_metrics("binary", 3)


def test_nan_ranking_metrics_say_why_once(capsys) -> None:
    from lesionkit.metrics.fastai_wrappers import _binary_auc, _nan_if_one_class, forget_nan_notes

    forget_nan_notes()
    auc = _nan_if_one_class(_binary_auc)
    preds, targs = torch.tensor([0.2, 0.7, 0.4]), torch.zeros(3)
    assert np.isnan(auc(preds, targs)) and np.isnan(auc(preds, targs))
    out = capsys.readouterr().out
    assert out.count("note:") == 1 and "one class only" in out and "all 3 images are of class index 0" in out
