"""The GPU defaults, checked on any machine by what they choose: bf16 where the GPU has it (else fp16 with loss
scaling), channels-last weights, pinned memory with loader workers, SyncBatchNorm and torch.compile as options."""
from __future__ import annotations

import pytest
import torch
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.fp16 import AMPMode, MixedPrecision
from fastai.data.core import DataLoaders, TfmdDL

from lesionkit.config import ConfigError
from lesionkit.data import loaders
from lesionkit.engine import learner as learner_mod
from lesionkit.engine.speed import speed_callbacks
from lesionkit.papers.quickstart.recipe import QuickstartConfig


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


@pytest.mark.parametrize("switch, kinds", [("off", set()), ("channels_last", {ChannelsLast}),
                                           ("bf16", {MixedPrecision})])
def test_gpu_speedups_have_off_switches(monkeypatch, switch, kinds) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert {type(cb) for cb in speed_callbacks(switch)} == kinds


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
