"""Data-loading throughput vs what a resnet18 training step consumes, on this CPU (issue 3 performance target).

Measures images/s of (a) lesionkit.data.loaders.image_dls at 224 px, per preset and worker count: JPEG decode
(reduced DCT scale), item resize, batch augmentation and normalisation; and (b) a timm resnet18 training step
(forward + backward + SGD) on random batches of the same shape. Target: loader >= 1.5x the training step with the
default preset. Data: $LESIONKIT_DATA/ham10000_224 (real 224 px JPEGs) and isic2020_512 (512 px), else the
synthetic set.

The machine may be shared: wall-clock rates then depend on the load, so the script also reports images per
CPU-second of this process (contention-robust; exact for workers=0, where all loading work is in this process)
and takes the training step twice (before and after the loaders) and compares against the faster.

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


class Clock:
    """Wall and process-CPU seconds over a block."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0


def loader_rate(ds, preset: str, workers: int, bs: int, size: int, batches: int) -> tuple[float, float]:
    """(images per wall second, images per CPU-second of this process) over `batches` training batches."""
    from lesionkit.data.loaders import image_dls

    n = min(len(ds) - bs, bs * (batches + 2))
    idx = np.arange(len(ds))
    dls = image_dls(ds, idx[:n], idx[n:n + bs], size=size, bs=bs, preset=preset, num_workers=workers, device="cpu",
                    leak_check=False, verify=False)
    it = iter(dls.train)
    next(it)                                   # warm-up: worker start, first-call costs
    seen = 0
    with Clock() as c:
        for _ in range(batches):
            try:
                xb, _ = next(it)
            except StopIteration:
                break
            seen += len(xb)
    return seen / c.wall, seen / c.cpu


def train_rate(bs: int, size: int, steps: int, n_classes: int = 7) -> tuple[float, float]:
    """(images per wall second, images per CPU-second) of resnet18 forward + backward + SGD step."""
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=n_classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, n_classes, (bs,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    step()
    with Clock() as c:
        for _ in range(steps):
            step()
    return bs * steps / c.wall, bs * steps / c.cpu


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

    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    base = os.environ.get("LESIONKIT_DATA")
    sources = ([("ham10000_224", Path(base) / "ham10000_224"), ("isic2020_512", Path(base) / "isic2020_512")]
               if base else [("synthetic", None)])
    res: dict = {"machine": f"{platform.machine()}, {cores} cores, torch threads {cores}; shared with other agents",
                 "bs": a.bs, "size": a.size, "load_average_start": round(os.getloadavg()[0], 1), "loader": {}}
    t_before = train_rate(a.bs, a.size, a.steps)
    print(f"resnet18 train step: {t_before[0]:.1f} img/s wall, {t_before[1]:.1f} img/CPU-s")
    for name, path in sources:
        ds = load_dataset(path) if path is not None else load_dataset("synthetic")
        for preset in a.presets.split(","):
            for w in (int(v) for v in a.workers.split(",")):
                wall, cpu = loader_rate(ds, preset, w, a.bs, a.size, a.batches)
                key = f"{name}/{preset}/workers={w}"
                res["loader"][key] = {"img_s_wall": round(wall, 1)}
                line = f"loader {key:<38} {wall:7.1f} img/s wall"
                if w == 0:
                    res["loader"][key]["img_per_cpu_s"] = round(cpu, 1)
                    line += f", {cpu:7.1f} img/CPU-s"
                print(line)
    t_after = train_rate(a.bs, a.size, a.steps)
    train_wall, train_cpu = max(t_before[0], t_after[0]), max(t_before[1], t_after[1])
    res.update(train_step_img_s_wall=[round(t_before[0], 2), round(t_after[0], 2)],
               train_step_img_per_cpu_s=[round(t_before[1], 2), round(t_after[1], 2)],
               load_average_end=round(os.getloadavg()[0], 1))
    print(f"resnet18 train step again: {t_after[0]:.1f} img/s wall, {t_after[1]:.1f} img/CPU-s; "
          f"load average {res['load_average_start']} -> {res['load_average_end']} on {cores} cores")
    default = res["loader"].get(f"{sources[0][0]}/fastai/workers=0")
    if default:
        res["ratio_default_wall"] = round(default["img_s_wall"] / train_wall, 2)
        res["ratio_default_cpu"] = round(default["img_per_cpu_s"] / train_cpu, 2)
        print(f"default preset (fastai, 0 workers) vs training step: {res['ratio_default_wall']}x wall, "
              f"{res['ratio_default_cpu']}x per CPU-second (target >= 1.5x)")
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
