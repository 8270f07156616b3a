"""The GPU check: one command on a GPU machine (no internet, under 8 minutes on one GPU) that runs what only a GPU
exercises and writes what it saw as JSON + a Markdown table.

1. **notebooks**: every notebook's smoke settings through papermill on CUDA (``pretrained=False``: no download),
   each with its run record's status, the device it recorded, the precision its stages trained in and whether
   cuDNN ran deterministic or benchmark.
2. **two processes**: with 2+ GPUs, the quickstart with ``num_processes 2`` (Accelerate's notebook launcher forks
   one worker per GPU from the kernel, then the kernel predicts on its GPU).
3. **throughput** per notebook's default model at its size and batch: training img/s and peak GPU memory in fp32
   and in the engine's setting (channels-last + bf16, or fp16 with loss scaling, where the GPU lacks bf16), and
   the training loader's img/s with its automatic workers (the notebook's preset, on the synthetic default) beside
   the step's consumption: a loader slower than the step starves the GPU.

``--cpu-dry-run`` walks the same code with CUDA hidden: tiny sizes, a couple of steps, one model per kind of
loader (image, image + metadata, patch grid), and one smoke notebook, the two-process quickstart on gloo (the
single-process notebooks only with ``--notebooks``); the test suite runs it.

    python bench/gpu_check.py [--out runs/gpu_check] [--notebooks 00_quickstart,arl] [--steps 20]
    python bench/gpu_check.py --cpu-dry-run --out /tmp/gpu_check
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Target:
    """A notebook's default model, input size, batch and training augmentation (its loader)."""

    model: str
    size: int
    batch: int
    preset: str
    loader: str = "image"  # image | meta (image + metadata) | patch (patch grids of a 450x600 image)


TARGETS = {
    "00_quickstart": Target("tf_efficientnet_lite0", 128, 32, "fastai"),
    "arl": Target("arl_resnet50", 224, 32, "arl"),
    "attention_b3": Target("sge_b3", 384, 64, "first_place"),
    "compare": Target("tf_efficientnet_lite0", 128, 32, "fastai"),
    "multimodal": Target("multimodal_b2", 256, 64, "first_place", "meta"),
    "patch_attention": Target("patch_inception_v3", 224, 5, "none", "patch"),
    "se_lcn": Target("selcn_classifier", 256, 32, "fastai"),
}


PATCH_DRY, PATCH_DRY_FULL = 80, (96, 128)  # the dry run's patch grid: Inception takes 75 px at least


@dataclass(frozen=True)
class Plan:
    """How much each part does: the GPU check's sizes, or the dry run's tiny ones."""

    dry: bool
    notebooks: tuple[str, ...]
    models: tuple[str, ...]  # the notebooks whose default models are timed (one per distinct model)
    steps: int
    warmup: int
    loader_batches: int
    size: int | None = None  # None: each target's own
    batch: int | None = None

    @classmethod
    def make(cls, dry: bool, notebooks: str, steps: int) -> Plan:
        names = tuple(TARGETS) if notebooks == "all" else tuple(n.strip() for n in notebooks.split(",") if n.strip())
        unknown = [n for n in names if n not in TARGETS]
        if unknown:
            raise SystemExit(f"--notebooks: unknown {unknown}; choose from {sorted(TARGETS)}")
        if dry:
            kinds = ("00_quickstart", "multimodal", "patch_attention")
            return cls(True, () if notebooks == "all" else names, kinds, 2, 1, 3, size=32, batch=4)
        distinct = tuple({TARGETS[n].model: n for n in reversed(names)}.values())[::-1]  # compare = quickstart's
        return cls(False, names, distinct, steps, 5, 30)


# --- 1 + 2: notebooks through papermill ----------------------------------------------------------------------------
def notebook_row(name: str, params: dict[str, Any], timeout: int = 900) -> dict[str, Any]:
    """One papermill run (lesionkit's demo runner) and what its record says about the device it used."""
    from lesionkit.cli.demo import notebooks_dir, run_notebook

    res = run_notebook(notebooks_dir() / f"{name}.ipynb", params, timeout=timeout)
    row = {"notebook": name, "params": params, "status": res["status"], "seconds": res["seconds"],
           "error": res["error"]}
    run_dir = Path(res["run_dir"])
    if (run_dir / "run.json").is_file():
        info = json.loads((run_dir / "run.json").read_text())
        row.update(status=info.get("status", row["status"]), deterministic=info.get("deterministic"),
                   cudnn_benchmark=info.get("cudnn_benchmark"))
    if (run_dir / "env.json").is_file():
        device = json.loads((run_dir / "env.json").read_text()).get("device", {})
        row.update(cuda=device.get("cuda"), gpu=device.get("gpu"))
    if (run_dir / "stages.json").is_file():
        stages = json.loads((run_dir / "stages.json").read_text())
        row["stages"] = {k: {f: s.get(f) for f in ("processes", "speedups", "precision", "seconds")}
                         for k, s in stages.items()}
    print(f"notebook {name} {params}: {row['status']} in {row['seconds']} s", flush=True)
    return row


def smoke_params(plan: Plan, **extra: Any) -> dict[str, Any]:
    return {"smoke": True, "pretrained": False, **({"image_size": plan.size} if plan.dry else {}), **extra}


def notebooks(plan: Plan) -> list[dict[str, Any]]:
    return [notebook_row(name, smoke_params(plan)) for name in plan.notebooks]


def two_processes(plan: Plan) -> dict[str, Any]:
    """The quickstart with num_processes 2: on two GPUs (NCCL), or on gloo in the dry run; skipped otherwise."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < 2 and not plan.dry:
        return {"notebook": "00_quickstart", "status": "skipped", "why": f"{gpus} GPU(s): needs 2"}
    return notebook_row("00_quickstart", smoke_params(plan, num_processes=2, run_name="two-processes"))


# --- 3: throughput ---------------------------------------------------------------------------------------------------
def batch_for(model: Any, batch: int, size: int | None, device: Any) -> tuple[list[Any], Any, Any]:
    """Inputs at the model's own shape (or ``size`` px), targets and a loss that fit its output."""
    import torch

    from lesionkit.losses import MultiHeadCrossEntropy

    shape = list(model.default_cfg["input_size"])
    if size:  # the dry run's tiny side
        shape[-2:] = [size, size]
    xs = [torch.randn(batch, *shape, device=device)]
    if getattr(model, "n_meta", 0):
        xs.append(torch.randn(batch, model.n_meta, device=device))
    model.eval()
    with torch.no_grad():
        out = model(*[x[:2] for x in xs])
    if out.dim() == 3:
        return xs, torch.randint(0, out.shape[2], (batch, out.shape[1]), device=device), MultiHeadCrossEntropy()
    if out.shape[1] == 1:
        return xs, torch.randint(0, 2, (batch, 1), device=device).float(), torch.nn.BCEWithLogitsLoss()
    return xs, torch.randint(0, out.shape[1], (batch,), device=device), torch.nn.CrossEntropyLoss()


def engine_speed(model: Any, xs: list[Any], y: Any, loss_func: Any) -> Any:
    """The setting the engine's fit would train in here: on a GPU what its callbacks do, on a CPU its measured
    rule."""
    from lesionkit.engine.speed import GpuSpeed, choose, speed_callbacks

    if xs[0].device.type == "cuda":
        return next(cb.speed for cb in speed_callbacks("auto") if isinstance(cb, GpuSpeed))
    return choose(model, xs, [y], loss_func, "auto")[0]


def train_rate(model: Any, xs: list[Any], y: Any, loss_func: Any, speed: Any, plan: Plan) -> dict[str, Any]:
    """Training img/s (forward, backward, AdamW step; timed between CUDA synchronisations) and peak GPU memory."""
    import torch

    from lesionkit.engine.speed import synchronize

    device = xs[0].device
    speed.apply(model.train())
    if speed.channels_last and xs[0].ndim == 4:
        xs = [xs[0].contiguous(memory_format=torch.channels_last), *xs[1:]]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=speed.precision == "fp16")
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = 0.0
    for i in range(plan.warmup + plan.steps):
        if i == plan.warmup:
            synchronize(device)
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with speed.autocast(device.type):
            loss = loss_func(model(*xs), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"img_s": len(xs[0]) * plan.steps / seconds, "peak_mib": peak}


def synthetic_set(plan: Plan, workdir: Path) -> Any:
    from lesionkit.data import load_dataset
    from lesionkit.data.synthetic import default_synthetic_dir, make_synthetic

    root = make_synthetic(workdir / "synthetic", n_lesions=24, size=64, seed=0) if plan.dry else default_synthetic_dir()
    return load_dataset(root)


def loader_rate(target: Target, plan: Plan, ds: Any) -> dict[str, Any]:
    """img/s of the notebook's training loader (its augmentation, automatic workers; batch transforms on the
    device), after its first batch (worker start-up, reported apart)."""
    import numpy as np

    from lesionkit.data.loaders import image_dls, loader_workers, meta_dls
    from lesionkit.data.views import patch_dls
    from lesionkit.engine.speed import synchronize

    size, bs = (PATCH_DRY if target.loader == "patch" else plan.size) or target.size, plan.batch or target.batch
    workers = 2 if plan.dry else loader_workers(-1)  # the dry run walks the worker path too
    tr, va = np.arange(len(ds) - 2), np.arange(len(ds) - 2, len(ds))
    common = {"bs": bs, "seed": 0, "num_workers": workers, "verify": False, "leak_check": False}
    if target.loader == "patch":
        full = PATCH_DRY_FULL if plan.dry else (450, 600)
        dls = patch_dls(ds, tr, va, patch=size, full=full, **common)
    else:
        build = meta_dls if target.loader == "meta" else image_dls
        dls = build(ds, tr, va, size=size, preset=target.preset, **common)
    seen, first, start = 0, None, time.perf_counter()
    while seen < plan.loader_batches + 1:
        for batch in dls.train:
            synchronize(batch[0].device)
            if first is None:
                first, start = time.perf_counter() - start, time.perf_counter()
            seen += 1
            if seen > plan.loader_batches:
                break
    return {"loader_workers": workers, "loader_img_s": bs * plan.loader_batches / (time.perf_counter() - start),
            "loader_first_batch_s": first}


def throughput_row(name: str, plan: Plan, ds: Any) -> dict[str, Any]:
    import torch

    from lesionkit.engine.speed import Speed
    from lesionkit.models import create_model

    target = TARGETS[name]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    patches = target.loader == "patch"
    tiny = {"patch_size": PATCH_DRY, "image_size": PATCH_DRY_FULL} if patches and plan.dry else {}
    model = create_model(target.model, num_classes=7, **tiny).to(device)
    xs, y, loss_func = batch_for(model, plan.batch or target.batch, None if patches else plan.size, device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fp32 = train_rate(model, xs, y, loss_func, Speed(), plan)
    model.load_state_dict(state)
    speed = engine_speed(model, xs, y, loss_func)
    engine = train_rate(model, xs, y, loss_func, speed, plan)
    shape = xs[0].shape  # what ran: the target's size and batch, or the dry run's
    row = {"notebook": name, **asdict(target), "size": shape[-1], "batch": shape[0], "device": str(device),
           "fp32_img_s": fp32["img_s"],
           "fp32_peak_mib": fp32["peak_mib"], "engine_setting": f"{speed.name} ({speed.precision})",
           "engine_img_s": engine["img_s"], "engine_peak_mib": engine["peak_mib"],
           "engine_speedup": engine["img_s"] / fp32["img_s"], **loader_rate(target, plan, ds)}
    row["loader_keeps_up"] = row["loader_img_s"] >= row["engine_img_s"]
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return row


def throughput(plan: Plan, workdir: Path) -> list[dict[str, Any]]:
    ds = synthetic_set(plan, workdir)
    return [throughput_row(name, plan, ds) for name in plan.models]


# --- report ------------------------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# GPU check ({result['device']}, {result['when']}{', CPU dry run' if result['dry_run'] else ''})", "",
             "## Notebooks (smoke settings)", "",
             "| notebook | processes | status | s | cuda | precision of stages | deterministic | cudnn benchmark |",
             "|---|---|---|---|---|---|---|---|"]
    for row in [*result["notebooks"], result["two_processes"]]:
        stages = row.get("stages") or {}
        precision = ", ".join(sorted({f"{s['speedups']}/{s['precision']}" for s in stages.values()})) or "–"
        procs = ", ".join(sorted({str(s["processes"]) for s in stages.values()})) or "–"
        lines.append(f"| {row['notebook']} | {procs} | {row['status']}{' (' + row['why'] + ')' if 'why' in row else ''}"
                     f" | {_fmt(row.get('seconds'))} | {_fmt(row.get('cuda'))} | {precision} | "
                     f"{_fmt(row.get('deterministic'))} | {_fmt(row.get('cudnn_benchmark'))} |")
    lines += ["", "## Training throughput per notebook's default model", "",
              ("| notebook | model | size | batch | fp32 img/s | fp32 peak MiB | engine setting | engine img/s | "
               "engine peak MiB | speed-up | loader workers | loader img/s | loader keeps up |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["throughput"]:
        lines.append(f"| {r['notebook']} | {r['model']} | {r['size']} | {r['batch']} | {_fmt(r['fp32_img_s'])} | "
                     f"{_fmt(r['fp32_peak_mib'], 0)} | {r['engine_setting']} | {_fmt(r['engine_img_s'])} | "
                     f"{_fmt(r['engine_peak_mib'], 0)} | {_fmt(r['engine_speedup'], 2)} | {r['loader_workers']} | "
                     f"{_fmt(r['loader_img_s'])} | {'yes' if r['loader_keeps_up'] else 'no'} |")
    lines += ["", f"Total {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check")
    ap.add_argument("--notebooks", default="all", help="comma-separated notebook names (default: all)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per model and setting")
    ap.add_argument("--cpu-dry-run", action="store_true", help="the same code with CUDA hidden, tiny sizes")
    args = ap.parse_args(argv)
    if args.cpu_dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch first looks; the notebooks' kernels inherit it
    plan = Plan.make(args.cpu_dry_run, args.notebooks, args.steps)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LESIONKIT_RUNS"] = str(out / "runs")  # the notebooks' run records stay with the report
    import torch

    if not plan.dry and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run it on a GPU machine, or pass --cpu-dry-run")
    t0 = time.perf_counter()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    result: dict[str, Any] = {"device": device, "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                              "torch": torch.__version__, "dry_run": plan.dry, "plan": asdict(plan),
                              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result["throughput"] = throughput(plan, out)  # in this process first: the notebooks' kernels are separate
    result["notebooks"] = notebooks(plan)
    result["two_processes"] = two_processes(plan)
    result["seconds"] = time.perf_counter() - t0
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "gpu_check.md").write_text(markdown(result))
    print(markdown(result))
    failed = [r["notebook"] for r in [*result["notebooks"], result["two_processes"]]
              if r["status"] not in ("completed", "skipped")]
    if failed:
        print(f"failed: {failed} (their run records are under {out / 'runs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
