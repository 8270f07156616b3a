"""The GPU defaults, checked on any machine by what they choose: bf16 where the GPU has it (else fp16 with loss
scaling), channels-last weights, pinned memory with loader workers, SyncBatchNorm and torch.compile as options,
cuDNN benchmark unless `deterministic`."""
from __future__ import annotations

import json

import pytest
import torch
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.fp16 import AMPMode, MixedPrecision
from fastai.data.core import DataLoaders, TfmdDL

from lesionkit.config import ConfigError
from lesionkit.data import loaders
from lesionkit.engine import learner as learner_mod
from lesionkit.engine.runner import train_stage
from lesionkit.engine.seed import seed_everything
from lesionkit.engine.speed import GpuSpeed, speed_callbacks
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.records.runs import start_run


def _learn():
    data = [(torch.randn(3, 8, 8), torch.tensor(0)) for _ in range(4)]
    dls = DataLoaders(TfmdDL(data, bs=2), TfmdDL(data, bs=2), device="cpu")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    return learner_mod.make_learner(dls, model)


@pytest.mark.parametrize("bf16, mode", [(True, AMPMode.BF16), (False, AMPMode.FP16)])
def test_gpu_speedups_pick_bf16_where_supported_else_fp16(monkeypatch, bf16, mode) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    cbs = speed_callbacks("auto")
    (mp,) = [cb for cb in cbs if isinstance(cb, MixedPrecision)]
    assert mp.amp_mode == mode
    assert any(isinstance(cb, ChannelsLast) for cb in cbs)
    (kept,) = [cb.speed for cb in cbs if isinstance(cb, GpuSpeed)]  # what predictions will run in
    assert kept.channels_last and kept.precision == ("bf16" if bf16 else "fp16")


@pytest.mark.parametrize("switch, kinds", [("off", set()), ("channels_last", {ChannelsLast}),
                                           ("bf16", {MixedPrecision})])
def test_gpu_speedups_have_off_switches(monkeypatch, switch, kinds) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cbs = speed_callbacks(switch)
    assert {type(cb) for cb in cbs} - {GpuSpeed} == kinds
    (kept,) = [cb.speed for cb in cbs if isinstance(cb, GpuSpeed)]
    assert kept.name == switch


def test_cpu_learner_has_no_gpu_callbacks() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert not any(isinstance(cb, (MixedPrecision, ChannelsLast)) for cb in speed_callbacks("auto") + list(_learn().cbs))


def test_auto_loader_workers_none_on_cpu_up_to_eight_per_gpu_process(monkeypatch) -> None:
    assert loaders.loader_workers(3) == 3 and loaders.loader_workers(0) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loaders.loader_workers(-1) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert loaders.loader_workers(-1) == 8  # 64 cores / 4 processes = 16, capped at 8
    monkeypatch.setattr("os.cpu_count", lambda: 12)
    assert loaders.loader_workers(-1) == 3


def test_sync_bn_is_refused_without_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="sync_bn"):
        QuickstartConfig.from_params({"sync_bn": True})


@pytest.fixture
def algorithm_flags(monkeypatch):
    """Whatever a test switches (cuDNN's flags, torch's deterministic mode, cuBLAS's workspace) is put back."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    cudnn.deterministic, cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_deterministic_is_a_parameter_of_every_notebook_off_by_default() -> None:
    from lesionkit.papers import NOTEBOOK_CONFIGS
    from lesionkit.papers.common import TrainConfig

    training = {name: cls for name, cls in NOTEBOOK_CONFIGS.items() if issubclass(cls, TrainConfig)}
    assert set(NOTEBOOK_CONFIGS) - set(training) == {"evaluate"}, "every notebook but evaluate (it trains nothing)"
    for name, cls in training.items():
        assert cls.from_params({}).engine_settings().deterministic is False, name
        assert cls.from_params({"deterministic": "true"}).engine_settings().deterministic is True, name


def test_a_gpu_runs_cudnn_benchmark_unless_deterministic(monkeypatch, algorithm_flags) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert seed_everything(0, deterministic=False) == {"deterministic": False, "cudnn_benchmark": True}
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert not torch.are_deterministic_algorithms_enabled()
    assert seed_everything(0, deterministic=True) == {"deterministic": True, "cudnn_benchmark": False}
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled()


def test_a_cpu_run_is_unchanged_by_the_switch(monkeypatch, algorithm_flags) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for deterministic in (False, True):
        assert seed_everything(0, deterministic) == {"deterministic": True, "cudnn_benchmark": False}
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark  # fastai's set_seed
        assert not torch.are_deterministic_algorithms_enabled()


def test_the_run_records_its_algorithms(tmp_path, monkeypatch, algorithm_flags) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path))
    run = start_run("nb", QuickstartConfig, {"speedups": "off", "deterministic": True}, watch_notebook=False)
    def build():
        learn = _learn()
        learn.model[2] = torch.nn.Linear(4 * 6 * 6, 2)  # sized: the fit's callbacks read the weights before it runs
        return learn

    train_stage(run, "s", build, 1, 1e-3, headless=True, settings=run.cfg.engine_settings())
    info = json.loads((run.dir / "run.json").read_text())
    assert (info["deterministic"], info["cudnn_benchmark"]) == (True, False)  # a CPU run repeats either way
