"""Predictions and TTA run in the precision and memory format the fit used, on a GPU as on a CPU (a stage loaded
from its record keeps them too), and timers wait for CUDA's queued work before they read the clock."""
from __future__ import annotations

import torch

from lesionkit.engine import speed
from lesionkit.engine.predict import predict
from lesionkit.engine.speed import Speed, keep_speed, recorded_speed, speed_of


class _Probe(torch.nn.Module):
    """Two logits; notes the layout and autocast dtype each forward saw."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.seen = torch.nn.Conv2d(3, 2, 1), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        self.seen.append((x.is_contiguous(memory_format=torch.channels_last), dtype))
        return self.conv(x).mean((2, 3)).float()


def test_prediction_and_tta_run_in_the_fit_setting() -> None:
    model = keep_speed(_Probe(), Speed(channels_last=True, bf16=True, half="fp16"))  # a GPU fit without bf16 units
    probs, _ = predict(model, [(torch.rand(2, 3, 4, 4), torch.tensor([0, 1]))], views="flips4")
    assert probs.shape == (2, 2) and len(model.seen) == 4
    assert set(model.seen) == {(True, torch.float16)}
    plain = _Probe()
    predict(plain, [(torch.rand(2, 3, 4, 4),)])
    assert plain.seen == [(False, None)], "a model never fitted here predicts in fp32"


def test_a_stage_record_gives_back_its_setting() -> None:
    assert recorded_speed("both", "fp16") == Speed(channels_last=True, bf16=True, half="fp16")
    assert recorded_speed("channels_last", "fp32") == Speed(channels_last=True)
    assert recorded_speed("auto") is None and recorded_speed(None) is None  # records written before it was kept
    assert speed_of(keep_speed(_Probe(), Speed(bf16=True))).precision == "bf16"


def test_timers_synchronise_cuda(monkeypatch) -> None:
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(str(device)))
    speed.synchronize(torch.device("cuda", 0))
    speed.synchronize("cpu")
    assert waited == ["cuda:0"], "CUDA work is waited for; the CPU has nothing queued"
    calls = []
    monkeypatch.setattr(speed, "synchronize", lambda device: calls.append(torch.device(device).type))
    speed.input_gradient(_Probe(), [torch.rand(1, 3, 4, 4)], Speed())
    speed.step_seconds(_Probe(), [torch.rand(2, 3, 4, 4)], [torch.tensor([0, 1])], torch.nn.CrossEntropyLoss(),
                       Speed(), steps=1)
    assert calls == ["cpu"] * 2 + ["cpu"] * 4, "each timed pass waits before and after"
