"""Training and inference throughput of the registered models: fastai Learner vs a plain PyTorch loop.

For each model at its notebook's default input size (``default_cfg["input_size"]``): training images/s (the best
timed step over alternating rounds of the two loops: the least disturbed one) through a fastai ``Learner`` and a
plain loop (same model weights, batch, inputs, loss and Adam), their ratio (target ≥ 0.95) and the same ratio
measured inside fastai's own steps (model + optimiser time over the whole step: immune to the machine's speed
drifting between the two loops, which on this VM moves the first ratio by ±20 %), the achieved training
GFLOP/s (3 × the forward FLOPs counted by ``torch.utils.flop_counter``) against the machine's matmul peak (a 2048²
fp32 matmul, measured here), and inference images/s.

    .venv/bin/python bench/bench_models.py                     # one model per family, CPU, 2 threads
    .venv/bin/python bench/bench_models.py --models all --json runs/bench/models.json
    .venv/bin/python bench/bench_models.py --models sge_b3 --steps 3 --batch 4
    .venv/bin/python bench/bench_models.py --device cuda --amp bf16 --batch 32 --steps 10
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_MODELS = ["arl_resnet50", "sge_b3", "s2cbam_b3", "multimodal_b2", "artefact_b2", "selcn_symmetry",
                  "selcn_classifier", "selcn_segmenter", "patch_inception_v3"]


def matmul_peak_gflops(device: str, n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``repeats`` GFLOP/s of an n×n matmul (2n³ FLOPs)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_batch(model: nn.Module, batch: int, device: str) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, nn.Module]:
    """Inputs, targets and a loss that fit the model's output (one logit, multi-head, segmentation, classes)."""
    from lesionkit.losses import MultiHeadCrossEntropy

    size = model.default_cfg["input_size"]
    inputs: tuple[torch.Tensor, ...] = (torch.randn(batch, *size, device=device),)
    if getattr(model, "n_meta", 0):
        inputs += (torch.randn(batch, model.n_meta, device=device),)
    model.eval()
    with torch.no_grad():
        out = model(*[t[:2] for t in inputs])
    if out.dim() == 4:
        return inputs, torch.randint(0, out.shape[1], (batch, *out.shape[2:]), device=device), nn.CrossEntropyLoss()
    if out.dim() == 3:
        return inputs, torch.randint(0, out.shape[2], (batch, out.shape[1]), device=device), MultiHeadCrossEntropy()
    if out.shape[1] == 1:
        return inputs, torch.randint(0, 2, (batch, 1), device=device).float(), nn.BCEWithLogitsLoss()
    return inputs, torch.randint(0, out.shape[1], (batch,), device=device), nn.CrossEntropyLoss()


def _autocast(device: str, amp: str | None):
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def plain_train(model: nn.Module, inputs: tuple, target: torch.Tensor, loss_func: nn.Module, steps: int,
                warmup: int, device: str, amp: str | None = None, speed: Any = None) -> float:
    """Images/s of a plain loop: forward, loss, zero_grad, backward, Adam step. ``speed``: a
    ``lesionkit.engine.speed.Speed`` (memory format + CPU bf16 autocast) instead of ``amp``."""
    model.train()
    if speed is not None:
        speed.apply(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=amp == "fp16")
    times = []
    for _ in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with (speed.autocast(device) if speed is not None else _autocast(device, amp)):
            loss = loss_func(model(*inputs), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        times.append(time.perf_counter() - start)
    return inputs[0].shape[0] / min(times[warmup:])


def fastai_train(model: nn.Module, inputs: tuple, target: torch.Tensor, loss_func: nn.Module, steps: int,
                 warmup: int, device: str, amp: str | None, cbs: tuple = ()) -> tuple[float, float]:
    """Images/s through ``Learner.fit`` on the same batch (repeated): the best interval between batch ends after the
    warmup, which includes fastai's data loading and callbacks. Also the share of each step spent in the model,
    loss, backward and optimiser step (``before_batch`` → ``after_step``, median over the timed steps): measured
    inside the same steps, it is the fastai/plain ratio free of the machine's speed drifting between two loops."""
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    from lesionkit.engine import adamw

    stamps: dict[str, list[float]] = {"start": [], "stepped": [], "end": []}

    def _stamp(key: str, cb: Callback) -> None:
        if cb.training:
            _sync(device)
            stamps[key].append(time.perf_counter())

    class StepStart(Callback):
        order = -100  # first at before_batch

        def before_batch(self) -> None:
            _stamp("start", self)

    class StepClock(Callback):
        order = 100  # last at after_step / after_batch

        def after_step(self) -> None:
            _stamp("stepped", self)

        def after_batch(self) -> None:
            _stamp("end", self)

    batches = [(*inputs, target)] * (warmup + steps + 1)  # prebatched (bs=None): no collation cost on either side
    dls = DataLoaders(DataLoader(batches, bs=None, num_workers=0), DataLoader(batches[:1], bs=None, num_workers=0),
                      device=torch.device(device))  # no workers: fastai's default (the core count) would halve threads
    dls.n_inp = len(inputs)
    learn = Learner(dls, model, loss_func=loss_func, opt_func=adamw(weight_decay=0.01).opt_func(), lr=1e-4, cbs=[StepStart(), StepClock(), *cbs])
    if amp:
        learn = learn.to_bf16() if amp == "bf16" else learn.to_fp16()
    with learn.no_logging(), learn.no_bar():
        learn.fit(1)
    end, start, stepped = stamps["end"], stamps["start"], stamps["stepped"]
    intervals = [(i, end[i] - end[i - 1]) for i in range(warmup + 1, len(end))]
    share = sorted((stepped[i] - start[i]) / dt for i, dt in intervals)[len(intervals) // 2]
    return inputs[0].shape[0] / min(dt for _, dt in intervals), share


def inference(model: nn.Module, inputs: tuple, steps: int, warmup: int, device: str, amp: str | None) -> float:
    model.eval()
    times = []
    with torch.inference_mode(), _autocast(device, amp):
        for _ in range(warmup + steps):
            _sync(device)
            start = time.perf_counter()
            model(*inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
    return inputs[0].shape[0] / min(times[warmup:])


def train_flops(model: nn.Module, inputs: tuple) -> int:
    """Training FLOPs per step, estimated as 3 × the forward FLOPs (backward ≈ 2 × forward).

    The forward is counted by torch's ``FlopCounterMode`` (matmuls and convolutions). Its count of
    ``convolution_backward`` is not used: for grouped/depthwise convolutions (every EfficientNet) it overcounts by
    more than an order of magnitude.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return 3 * counter.get_total_flops()


def bench_one(name: str, batch: int, steps: int, warmup: int, device: str, amp: str | None,
              rounds: int = 2) -> dict[str, Any]:
    from lesionkit.models import create_model

    torch.manual_seed(0)
    model = create_model(name).to(device)
    inputs, target, loss_func = make_batch(model, batch, device)
    flops = train_flops(model, inputs)
    state = copy.deepcopy(model.state_dict())
    plain = fastai = 0.0
    shares = []
    for _ in range(rounds):  # alternate the two loops so a slow spell of the machine hits both alike
        model.load_state_dict(state)
        plain = max(plain, plain_train(model, inputs, target, loss_func, steps, warmup, device, amp))
        model.load_state_dict(state)
        rate, share = fastai_train(model, inputs, target, loss_func, steps, warmup, device, amp)
        fastai, shares = max(fastai, rate), shares + [share]
    infer = inference(model, inputs, steps, warmup, device, amp)
    seconds_per_image = 1 / plain
    return dict(model=name, input=tuple(model.default_cfg["input_size"]), batch=batch, fastai_img_s=fastai,
                plain_img_s=plain, ratio=fastai / plain, same_step_ratio=max(shares), train_gflop_per_img=flops / batch / 1e9,
                train_gflop_s=flops / batch / seconds_per_image / 1e9, infer_img_s=infer)


def markdown(rows: list[dict[str, Any]], peak: float) -> str:
    head = ("| model | input | batch | fastai img/s | plain img/s | ratio | same-step ratio | train GFLOP/img | "
            "train GFLOP/s | % of peak | infer img/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['model']} | {'×'.join(map(str, r['input'][1:]))} | {r['batch']} | {r['fastai_img_s']:.2f} | "
             f"{r['plain_img_s']:.2f} | {r['ratio']:.2f} | {r['same_step_ratio']:.3f} | {r['train_gflop_per_img']:.1f} | {r['train_gflop_s']:.1f} | "
             f"{100 * r['train_gflop_s'] / peak:.0f} % | {r['infer_img_s']:.2f} |" for r in rows]
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="registered names, or 'all' (default: one per family)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2, help="alternating plain/fastai rounds; the best of each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="mixed precision (GPU)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops(args.device)
    print(f"matmul peak (2048², fp32, {args.threads} threads, {args.device}): {peak:.1f} GFLOP/s", flush=True)
    rows = []
    if args.models == ["all"]:
        from lesionkit.models import list_models

        args.models = list_models()
    failed = {}
    for name in args.models or DEFAULT_MODELS:
        try:
            rows.append(bench_one(name, args.batch, args.steps, args.warmup, args.device, args.amp, args.rounds))
        except Exception as exc:  # one broken model must not cost the other rows of a long run
            failed[name] = f"{type(exc).__name__}: {exc}"
            print(f"{name} FAILED: {failed[name]}", file=sys.stderr, flush=True)
            continue
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    print(markdown(rows, peak))
    if args.json:
        args.json.write_text(json.dumps(dict(peak_gflop_s=peak, rows=rows, failed=failed), indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
