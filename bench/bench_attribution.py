"""Throughput of attribution on this CPU: batched versus one image at a time.

IntegratedGradients (50 steps) over 32 images at 224 px: the whole batch through Captum's ``internal_batch_size``
versus a loop over single images; Occlusion likewise with ``perturbations_per_eval``. Prints a table and writes JSON.

    .venv/bin/python bench/bench_attribution.py [--model resnet18] [--n 32] [--size 224] [--out bench.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lesionkit.attribution import attribute


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(model_name: str, n: int, n_loop: int, size: int, steps: int, n_occ: int, window: int, stride: int,
        threads: int | None, ig_batches: list[int], ppes: list[int]) -> list[dict]:
    import timm

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = timm.create_model(model_name, pretrained=False, num_classes=7).eval()
    x = torch.randn(n, 3, size, size)
    attribute(model, x[:1], "ig", n_steps=2)  # warm-up (allocator, captum imports)
    rows = []

    def record(method: str, mode: str, images: int, seconds: float, **settings) -> None:
        row = {"method": method, "mode": mode, "images": images, "seconds": round(seconds, 2),
               "images_per_s": round(images / seconds, 3), **settings}
        rows.append(row)
        print(json.dumps(row), flush=True)

    # IntegratedGradients: one image at a time (its steps in one forward) vs the batch split into chunks
    t = _time(lambda: [attribute(model, x[i : i + 1], "ig", n_steps=steps, internal_batch_size=steps)
                       for i in range(n_loop)])
    record("integrated_gradients", "one_at_a_time", n_loop, t, n_steps=steps, internal_batch_size=steps)
    for ibs in ig_batches:
        t = _time(lambda: attribute(model, x, "ig", n_steps=steps, internal_batch_size=ibs))
        record("integrated_gradients", "batched", n, t, n_steps=steps, internal_batch_size=ibs)

    # Occlusion: perturbations per forward, one image at a time vs the batch together
    xo = x[:n_occ]
    per_image = ((size - window) // stride + 1) ** 2
    for ppe in ppes:
        t = _time(lambda: [attribute(model, xo[i : i + 1], "occlusion", window=window, stride=stride,
                                     perturbations_per_eval=ppe) for i in range(len(xo))])
        record("occlusion", "one_at_a_time", len(xo), t, window=window, stride=stride, perturbations_per_eval=ppe,
               perturbations_per_image=per_image)
    ppe = max(1, max(ppes) // len(xo))
    t = _time(lambda: attribute(model, xo, "occlusion", window=window, stride=stride, perturbations_per_eval=ppe))
    record("occlusion", "batched", len(xo), t, window=window, stride=stride, perturbations_per_eval=ppe,
           perturbations_per_image=per_image)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--n", type=int, default=32, help="images for batched IntegratedGradients")
    p.add_argument("--n-loop", type=int, default=32, help="images for the one-at-a-time loop (a rate: fewer is fine)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--n-occ", type=int, default=8, help="images for Occlusion (its cost is per image)")
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ig-batches", type=int, nargs="+", default=[100])
    p.add_argument("--ppe", type=int, nargs="+", default=[1, 64])
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    rows = run(a.model, a.n, a.n_loop, a.size, a.steps, a.n_occ, a.window, a.stride, a.threads, a.ig_batches, a.ppe)
    env = {"model": a.model, "size": a.size, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine()}
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    print(f"\n{'method':22s} {'mode':14s} {'settings':40s} {'img/s':>8s}")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r.items() if k not in {"method", "mode", "images", "seconds",
                                                                            "images_per_s"})
        print(f"{r['method']:22s} {r['mode']:14s} {settings:40s} {r['images_per_s']:8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
