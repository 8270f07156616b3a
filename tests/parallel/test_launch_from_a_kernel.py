"""``num_processes`` from a notebook kernel: the kernel stays off the GPU until its stages are launched (forked
workers cannot use CUDA once their parent has), the workers train, and then the kernel predicts on the device it
would have used without the launch (on this CPU machine: gloo workers, the CPU)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.torch_core import default_device, defaults

from lesionkit.engine import learner as learner_mod
from lesionkit.engine.predict import predict_learner
from lesionkit.engine.runner import stage_states, train_stage
from lesionkit.engine.settings import EngineSettings
from lesionkit.papers.common import start
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.parallel import distributed
from lesionkit.records import runs


def _build():
    data = [(torch.randn(3, 8, 8), torch.tensor(i % 2)) for i in range(16)]
    dls = DataLoaders(TfmdDL(data, bs=4), TfmdDL(data[:8], bs=4))  # on fastai's default device, as recipes build
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2))
    return learner_mod.make_learner(dls, model)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A notebook's config cell (``start``) without the kernel's ending guards; fastai's device switch restored."""
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "start_notebook_run",
                        lambda nb, cls, ns: runs.start_run(nb, cls, ns, watch_notebook=False))
    before = defaults.use_cuda
    yield before
    defaults.use_cuda, defaults.lesionkit_off_gpu = before, False


def test_launched_stage_trains_in_the_workers_then_the_kernel_predicts_on_its_own_device(kernel) -> None:
    run = start(QuickstartConfig, {"num_processes": 2, "speedups": "off", "smoke": True})
    assert defaults.use_cuda is False, "before the launch, preview batches stay off the GPU"
    learn = train_stage(run, "s", _build, 1, 1e-3, headless=True, settings=run.cfg.engine_settings())
    assert stage_states(run)["s"]["processes"] == 2, "the launched workers trained the stage"
    assert defaults.use_cuda == kernel, "the kernel's device choice is back to what it was"
    assert learn.dls.device == distributed.kernel_device() == default_device()
    probs, _ = predict_learner(learn, learn.dls.valid)
    assert probs.shape == (8, 2) and next(learn.model.parameters()).device == default_device()


def test_the_kernel_device_is_found_without_initialising_cuda(monkeypatch, kernel) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    distributed.keep_parent_off_gpu()
    assert distributed.kernel_device() == torch.device("cpu")
    distributed.use_gpu_again()
    assert distributed.kernel_device() == torch.device("cuda")
    assert not torch.cuda.is_initialized()


@pytest.mark.parametrize("processes", [1, 2])
def test_run_folds_launches_every_stage_before_the_kernel_first_predicts(monkeypatch, processes: int) -> None:
    from lesionkit.engine import runner

    calls: list[str] = []
    monkeypatch.setattr(runner, "train_variant", lambda run, v, tr, va, seed, key, settings:
                        calls.append("train") or SimpleNamespace(model=None))
    monkeypatch.setattr(runner, "test_predictions", lambda learn, v, ds, rows:
                        calls.append("predict") or (np.full((2, 2), 0.5), np.array([0, 1])))
    monkeypatch.setattr(runner, "record_evaluation", lambda *a, **k: None)
    monkeypatch.setattr(runner, "count_params", lambda model: 0)
    folds = [(np.arange(2), np.arange(2, 4))] * 2
    variants = [SimpleNamespace(key=k, label=k) for k in ("a", "b")]
    runner.run_folds(SimpleNamespace(save_table=lambda *a: None), None, SimpleNamespace(folds=folds, test=np.arange(2)),
                     variants, report=lambda y, p: {"auc": 0.5}, settings=EngineSettings(num_processes=processes))
    expected = ["train"] * 4 + ["predict"] * 4 if processes > 1 else ["train", "predict"] * 4
    assert calls == expected
