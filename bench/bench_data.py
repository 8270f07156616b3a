"""Data-loading throughput vs what a resnet18 training step consumes, on this CPU (issue 3 performance target).

Measures images/s of (a) lesionkit.data.loaders.image_dls at 224 px, per preset and worker count: JPEG decode
(reduced DCT scale), item resize, batch augmentation and normalisation; and (b) a timm resnet18 training step
(forward + backward + SGD) on random batches of the same shape. Target: loader >= 1.5x the training step with the
default preset. Data: $LESIONKIT_DATA/ham10000_224 (real 224 px JPEGs) and isic2020_512 (512 px), else the
synthetic set.

    LESIONKIT_DATA=../shared/data .venv/bin/python bench/bench_data.py [--batches 12] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch


def loader_rate(ds, preset: str, workers: int, bs: int, size: int, batches: int, threads: int) -> float:
    from lesionkit.data.loaders import image_dls

    torch.set_num_threads(threads)
    n = min(len(ds) - bs, bs * (batches + 2))
    idx = np.arange(len(ds))
    dls = image_dls(ds, idx[:n], idx[n:n + bs], size=size, bs=bs, preset=preset, num_workers=workers, device="cpu",
                    leak_check=False, verify=False)
    it = iter(dls.train)
    next(it)                                   # warm-up: worker start, first-call costs
    t0, seen = time.perf_counter(), 0
    for _ in range(batches):
        try:
            xb, _ = next(it)
        except StopIteration:
            break
        seen += len(xb)
    return seen / (time.perf_counter() - t0)


def train_rate(bs: int, size: int, steps: int, threads: int, n_classes: int = 7) -> float:
    import timm

    torch.set_num_threads(threads)
    model = timm.create_model("resnet18", pretrained=False, num_classes=n_classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, n_classes, (bs,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return bs * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=12)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--presets", default="fastai,first_place,arl")
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()

    from lesionkit.data import load_dataset

    base = os.environ.get("LESIONKIT_DATA")
    sources = ([("ham10000_224", Path(base) / "ham10000_224"), ("isic2020_512", Path(base) / "isic2020_512")]
               if base else [("synthetic", None)])
    cores = os.cpu_count() or 1
    result: dict = {"machine": f"{platform.processor() or platform.machine()}, {cores} cores "
                               "(shared with other agents: figures are indicative)",
                    "torch_threads": cores, "bs": a.bs, "size": a.size, "loader": {}}
    result["train_step_img_s"] = round(train_rate(a.bs, a.size, a.steps, cores), 1)
    print(f"resnet18 train step ({cores} threads, bs {a.bs}, {a.size} px): {result['train_step_img_s']:.1f} img/s")
    for name, path in sources:
        ds = load_dataset(path) if path is not None else load_dataset("synthetic")
        for preset in a.presets.split(","):
            for w in (int(v) for v in a.workers.split(",")):
                # with workers, the main process keeps the torch threads for batch transforms
                rate = loader_rate(ds, preset, w, a.bs, a.size, a.batches, threads=cores)
                key = f"{name}/{preset}/workers={w}"
                result["loader"][key] = round(rate, 1)
                ratio = rate / result["train_step_img_s"]
                print(f"loader {key:<40} {rate:8.1f} img/s   {ratio:5.2f}x the training step")
    default = result["loader"].get(f"{sources[0][0]}/fastai/workers=0")
    if default:
        result["ratio_default_preset"] = round(default / result["train_step_img_s"], 2)
        print(f"default preset, 0 workers: {result['ratio_default_preset']}x (target >= 1.5x)")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
