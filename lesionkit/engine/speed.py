"""Channels-last and bf16 where they pay, chosen per model by measuring it on its own first batch.

Why measured and not a switch: on a CPU the best choice differs per architecture (this 2-core EPYC: channels-last
1.5× for EfficientNet-Lite0 while bf16 on top of it is slower; bf16 + channels-last 2.1× for ResNet-50), so a
global default would slow some models down. Like ``cudnn.benchmark``, the first training batch times a few
fwd+bwd steps of a copy of the model under each candidate and keeps the fastest (fp32 unless a candidate is
``MARGIN`` faster); the choice is cached per machine, model and batch shape (``$LESIONKIT_CACHE/speed.json``), and a
resumed fit reuses its checkpoint's choice so a run never changes numerics half-way. On a GPU: channels-last and
mixed precision (bf16 where supported, else fp16 with loss scaling), as timm's and fastai's scripts do. Either way
the fit leaves its setting on the model (:func:`speed_of`), and predictions and TTA run in it; attribution keeps
fp32 unless its fidelity rule (:func:`choose_for_attribution`) allows otherwise. Timers synchronise CUDA first.

``speedups`` (a notebook parameter): auto (measured), off (fp32, contiguous), channels_last, bf16, both.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from fastai.callback.core import Callback
from torch import nn

from lesionkit.engine.learner import gpu_precision
from lesionkit.losses import plain
from lesionkit.parallel.distributed import inner_loader, on_main, unwrap, world_size
from lesionkit.utils.files import atomic_write
from lesionkit.utils.paths import cache_root

SPEEDUPS = ("auto", "off", "channels_last", "bf16", "both")
MARGIN = 0.9  # a candidate must take under 90 % of the fp32 step (the VM's timing noise is ~±5 %)
MEASURE_BATCH = 8  # images per measured step: enough to fill the cores, cheap for a 224 px ResNet-50


@dataclass(frozen=True)
class Speed:
    """One precision / memory-format setting. ``bf16``: reduced-precision autocast, in ``half`` ("bf16", or "fp16"
    on a GPU without bf16 units)."""

    channels_last: bool = False
    bf16: bool = False
    half: str = "bf16"

    @property
    def name(self) -> str:
        return {(False, False): "off", (True, False): "channels_last", (False, True): "bf16",
                (True, True): "both"}[(self.channels_last, self.bf16)]

    @classmethod
    def named(cls, name: str) -> "Speed":
        if name not in SPEEDUPS or name == "auto":
            raise ValueError(f"speedups={name!r}: choose one of {SPEEDUPS}")
        return cls(channels_last=name in ("channels_last", "both"), bf16=name in ("bf16", "both"))

    @property
    def precision(self) -> str:
        """What the forward passes compute in: "fp32", "bf16" or "fp16"."""
        return self.half if self.bf16 else "fp32"

    def autocast(self, device_type: str = "cpu") -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=torch.float16 if self.half == "fp16" else torch.bfloat16)

    def apply(self, model: nn.Module) -> nn.Module:
        """Weights to this memory format (4-D conv weights only: any input shape still works), in place."""
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)


def cpu_has_bf16() -> bool:
    """bf16 units (AVX512-BF16 / AMX): without them bf16 autocast is emulated and slower than fp32."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def candidates(mode: str, device_type: str = "cpu") -> list[Speed]:
    """What ``mode`` lets a measurement on ``device_type`` try (fp32 first: the reference)."""
    if mode != "auto":
        return [Speed.named(mode)]
    bf16 = torch.cuda.is_bf16_supported() if device_type == "cuda" else cpu_has_bf16()
    names = ("off", "channels_last", "bf16", "both") if bf16 else ("off", "channels_last")
    return [Speed.named(n) for n in names]


def synchronize(device: Any) -> None:
    """Wait for the work queued on a CUDA ``device`` (a timer would otherwise read when it was launched, not when it
    was done); nothing elsewhere."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def step_seconds(model: nn.Module, xs: Sequence[torch.Tensor], y: Any, loss_func: Any, speed: Speed,
                 steps: int = 2) -> float:
    """Best time of ``steps`` forward+backward passes of ``model`` (after one warm-up) under ``speed``."""
    speed.apply(model)
    device, best = _device_of(model), float("inf")
    for i in range(steps + 1):
        model.zero_grad(set_to_none=True)
        synchronize(device)
        start = time.perf_counter()
        with speed.autocast(device.type):
            loss = loss_func(model(*xs), *y)
        loss.backward()
        synchronize(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return best


def measure(model: nn.Module, xs: Sequence[torch.Tensor], y: Sequence[Any], loss_func: Any,
            options: Sequence[Speed]) -> dict[str, float]:
    """Seconds per step of a copy of ``model`` under each option (the model and every RNG stream untouched)."""

    probe = copy.deepcopy(unwrap(model)).train()
    full = [plain(x) for x in xs], [plain(t) for t in y]  # fastai's tensor types dispatch some losses nowhere
    small = [x[:MEASURE_BATCH] for x in full[0]], [t[:MEASURE_BATCH] for t in full[1]]
    with torch.random.fork_rng(devices=[]):
        try:
            return {s.name: step_seconds(probe, *small, loss_func, s) for s in options}
        except (RuntimeError, ValueError):  # a loss holding per-batch state (diagnosis factors) needs the batch
            return {s.name: step_seconds(probe, *full, loss_func, s) for s in options}


def pick(seconds: dict[str, float]) -> Speed:
    """The fastest option, if it beats fp32 by the margin; else fp32."""
    best = min(seconds, key=seconds.get)
    return Speed.named(best if seconds[best] < MARGIN * seconds.get("off", float("inf")) else "off")


# --- the per-machine cache ----------------------------------------------------------------------------------------
def cache_file() -> Path:
    return cache_root() / "speed.json"


def cache_key(model: nn.Module, xs: Sequence[torch.Tensor]) -> str:
    """Architecture (class, a hash of its module tree, trainable/total parameters), input shapes, batch, threads,
    CPU and torch: what the timing depends on."""
    m = unwrap(model)
    n_params = sum(p.numel() for p in m.parameters())
    n_train = sum(p.numel() for p in m.parameters() if p.requires_grad)
    tree = hashlib.blake2b(repr(m).encode(), digest_size=4).hexdigest()
    shapes = ",".join("x".join(map(str, x.shape[1:])) for x in xs)
    gpu = f"/{torch.cuda.get_device_name(xs[0].device)}" if xs[0].device.type == "cuda" else ""
    return (f"{type(m).__module__}.{type(m).__name__}/{tree}/{n_train}of{n_params}/{shapes}"
            f"/bs{min(len(xs[0]), MEASURE_BATCH)}"
            f"/threads{torch.get_num_threads()}/{platform.processor() or platform.machine()}{gpu}/torch{torch.__version__}")


def _read_cache() -> dict[str, Any]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):
        return {}


def choose(model: nn.Module, xs: Sequence[torch.Tensor], y: Sequence[Any], loss_func: Any,
           mode: str = "auto") -> tuple[Speed, dict[str, float]]:
    """(the setting for this model and batch, the measured seconds per option); cached under ``auto``."""
    if mode != "auto":
        return Speed.named(mode), {}
    key = cache_key(model, xs)
    hit = _read_cache().get(key)
    if hit:
        return Speed.named(hit["choice"]), hit["seconds"]
    seconds = measure(model, xs, y, loss_func, candidates(mode))
    choice = pick(seconds)
    _write_cache(key, {"choice": choice.name, "seconds": seconds})
    return choice, seconds


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a read-only home only costs the measurement next time
        cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file(), json.dumps({**_read_cache(), key: entry}, indent=1))


# --- attribution: the same rule on input-gradient passes, plus a fidelity check for bf16 -----------------------
MAP_TOLERANCE = 0.1  # bf16 is kept for attribution only if its input-gradient map is within 10 % (relative L1)


def input_gradient(model: nn.Module, xs: Sequence[torch.Tensor], speed: Speed) -> tuple[torch.Tensor, float]:
    """(|d top logit / d input| summed over channels, seconds) of one pass: the unit IG, SmoothGrad and Grad-CAM
    repeat."""
    speed.apply(model)
    x = xs[0].detach().clone().requires_grad_(True)
    synchronize(x.device)
    start = time.perf_counter()
    with torch.enable_grad(), speed.autocast(xs[0].device.type):
        out = model(x, *xs[1:]).float()
        out = out.reshape(len(x), -1).max(1).values.sum()
    (grad,) = torch.autograd.grad(out, x)
    synchronize(x.device)
    return grad.abs().sum(1).float(), time.perf_counter() - start


def weights_fingerprint(model: nn.Module) -> str:
    """A cheap hash of the weights (sums of the first and last parameter tensors): a trained checkpoint is judged
    apart from its untrained architecture."""
    params = [p for p in unwrap(model).parameters() if p.is_floating_point()]
    sums = [round(float(p.detach().double().sum()), 6) for p in (params[:2] + params[-2:])]
    return hashlib.blake2b(repr(sums).encode(), digest_size=5).hexdigest()


def relative_error(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().sum() / ref.abs().sum().clamp(min=1e-12))


def choose_for_attribution(model: nn.Module, xs: Sequence[torch.Tensor], mode: str = "auto") -> Speed:
    """The setting for attributing ``model`` (in eval mode): the fastest of the candidates whose input gradients
    stay within :data:`MAP_TOLERANCE` of fp32 (depthwise nets often fail it in bf16: EfficientNet-Lite0's IG maps
    differ by ~19 %, ResNet-18's by ~4 %). Cached like training choices; the caller's model format is restored."""
    if mode != "auto":
        return Speed.named(mode)
    xs = [x[:MEASURE_BATCH] for x in xs]
    key = f"attribution/{weights_fingerprint(model)}/" + cache_key(model, xs)  # fidelity depends on the weights
    hit = _read_cache().get(key)
    if hit:
        return Speed.named(hit["choice"])
    seconds, errors, ref = {}, {}, None
    with formatted(model):
        for option in candidates(mode, xs[0].device.type):
            times = []
            for _ in range(3):  # warm-up, then the best of two
                grad, dt = input_gradient(model, xs, option)
                times.append(dt)
            ref = grad if ref is None else ref
            seconds[option.name], errors[option.name] = min(times[1:]), relative_error(grad, ref)
    faithful = {k: v for k, v in seconds.items() if k == "off" or errors[k] <= MAP_TOLERANCE}  # NaN: unfaithful
    choice = pick(faithful)
    _write_cache(key, {"choice": choice.name, "seconds": seconds, "relative_error": errors})
    return choice


def speed_of(model: nn.Module) -> Speed:
    """The setting a fit left on the model (prediction uses the same); fp32 for a model never fitted here."""
    return getattr(unwrap(model), "lesionkit_speed", None) or Speed()


def keep_speed(model: nn.Module, speed: Speed) -> nn.Module:
    """Leave ``speed`` on ``model`` as its fit's setting (memory format applied): what a fit does, and what loading
    a stage trained elsewhere (another process, an earlier session) restores from its record."""
    speed.apply(unwrap(model))
    unwrap(model).lesionkit_speed = speed
    return model


def recorded_speed(name: str | None, precision: str | None = None) -> Speed | None:
    """The Speed a stage record names (``speedups`` and ``precision``); None for records without one."""
    if name not in SPEEDUPS or name == "auto":
        return None
    speed = Speed.named(name)
    return dataclasses.replace(speed, half="fp16") if precision == "fp16" else speed


@contextlib.contextmanager
def formatted(model: nn.Module, speed: Speed | None = None) -> Iterator[None]:
    """A block with the weights in ``speed``'s memory format (None: whatever the block sets), back to the format
    the fit left (:func:`speed_of`) however the block ends."""
    if speed is not None:
        speed.apply(model)
    try:
        yield
    finally:
        speed_of(model).apply(model)


@contextlib.contextmanager
def inference(model: nn.Module) -> Iterator[None]:
    """``inference_mode`` plus the fitted model's precision (bf16 autocast on the model's device)."""
    device = next((p.device.type for p in model.parameters()), "cpu")
    with torch.inference_mode(), speed_of(model).autocast(device):
        yield


# --- the fastai side --------------------------------------------------------------------------------------------
class CpuSpeedups(Callback):
    """On the first training batch: choose (or take the resumed fit's choice), convert the model; then bf16 autocast
    around every forward + loss, training and validation, exited even when a batch fails."""

    order = -1  # before model-modifying callbacks, as fastai's ChannelsLast

    def __init__(self, mode: str = "auto", resumed: str | None = None) -> None:
        self.mode, self.speed = mode, Speed.named(resumed) if resumed else None
        self._cast: contextlib.AbstractContextManager | None = None

    def before_fit(self) -> None:
        self._threads = torch.get_num_threads()
        threads_for_workers(loader_workers_of(self.dls.train))
        if self.speed is None and self.mode != "auto":
            self.speed = Speed.named(self.mode)
        if self.speed is None and world_size() > 1:  # DDP wraps the model at before_fit: its memory format is set
            self.speed = Speed()  # now, so measuring at the first batch is not possible; fp32 under CPU DDP
        if self.speed is not None:
            self._use(self.speed)

    def before_batch(self) -> None:
        if self.speed is None:
            model, xb, yb, loss = self.learn.model, self.xb, self.yb, self.learn.loss_func
            self.speed, _ = on_main(lambda: choose(model, xb, yb, loss, self.mode))  # one choice for all processes
            self._use(self.speed)
        if self.speed.bf16:
            self._cast = self.speed.autocast()
            self._cast.__enter__()

    def after_pred(self) -> None:
        if self._cast is not None:  # metrics and the loss see fp32 (as fastai's MixedPrecision does)
            from fastai.torch_core import to_float

            self.learn.pred = to_float(self.pred)

    def after_loss(self) -> None:
        self._exit()

    def after_batch(self) -> None:
        self._exit()

    def after_fit(self) -> None:
        self.close()

    def close(self) -> None:
        """What ``fit`` calls however the fit ended: fastai skips after_* events when a batch raises anything but
        its own cancel exceptions, which would leave autocast on (and its weight cache stale) and threads reduced."""
        self._exit()
        if getattr(self, "_threads", None):
            torch.set_num_threads(self._threads)
            self._threads = None

    def _exit(self) -> None:
        if self._cast is not None:
            self._cast.__exit__(None, None, None)
            self._cast = None

    def _use(self, speed: Speed) -> None:
        keep_speed(self.learn.model, speed)
        self.learn.lesionkit_speed = speed  # what EpochCheckpoint saves, so a resumed fit keeps it


class GpuSpeed(Callback):
    """On a GPU, the setting fastai's ChannelsLast / MixedPrecision callbacks train in, left on the model as
    :class:`CpuSpeedups` leaves the CPU's, so predictions and TTA run in it too."""

    order = -1

    def __init__(self, speed: Speed) -> None:
        self.speed = speed

    def before_fit(self) -> None:
        keep_speed(self.learn.model, self.speed)
        self.learn.lesionkit_speed = self.speed


def loader_workers_of(dl: Any) -> int:
    """Worker processes of a fastai loader (its own ``num_workers`` is the shard count, always 1)."""

    return int(getattr(getattr(inner_loader(dl), "fake_l", None), "num_workers", 0) or 0)


def threads_for_workers(workers: int) -> None:
    """With loader workers on the CPU, compute threads + workers stay within this process's share of the cores
    it may use (each worker is one thread: fastai's worker init sets it); never more threads than it had."""
    if workers > 0 and not torch.cuda.is_available():
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        share = max(1, cores // world_size())
        torch.set_num_threads(max(1, min(torch.get_num_threads(), share) - workers))


def speed_callbacks(mode: str = "auto", resumed: str | None = None) -> list[Callback]:
    """The callbacks of ``mode`` on this machine (GPU: fastai's ChannelsLast / mixed precision; CPU: measured)."""
    if mode not in SPEEDUPS:
        raise ValueError(f"speedups={mode!r}: choose one of {SPEEDUPS}")
    if not torch.cuda.is_available():
        return [CpuSpeedups(mode, resumed)]
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import AMPMode, MixedPrecision

    cbs: list[Callback] = []
    channels_last, mixed = mode in ("auto", "both", "channels_last"), mode in ("auto", "both", "bf16")
    if channels_last:
        cbs.append(ChannelsLast())
    if mixed:
        cbs.append(MixedPrecision(AMPMode.BF16 if gpu_precision() == "bf16" else AMPMode.FP16))
    return [*cbs, GpuSpeed(Speed(channels_last, mixed, gpu_precision() if mixed else "bf16"))]
