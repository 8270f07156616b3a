"""End-to-end speed of lesionkit against plain PyTorch on this machine: training epochs, steps, prediction,
attribution and large-JPEG decoding, one process, alternating rounds, the machine's load beside every figure.

- **epoch**: one training epoch through lesionkit (``image_dls``/``meta_dls`` over real images, the engine's
  ``fit`` with its callbacks and the measured precision rule) vs a plain fp32 channels-first loop with a
  torchvision-style ``DataLoader`` (PIL decode, Resize, flip, ToTensor, Normalize) over the same images, same
  model, batch and AdamW. The rule's one-time measurement is reported apart (it is cached after the first run).
- **step**: the fastai Learner's step vs the same plain step, both under the setting lesionkit chose (same
  precision and memory format), on one fixed batch: the overhead of the Learner alone. Two loops timed one after
  the other drift with this VM's speed (±15 %); ``same_step_ratio`` is measured inside the Learner's own steps
  (model + loss + backward + optimiser over the whole step, as in ``bench_models.py``) and is immune to it.
- **predict**: ``lesionkit.engine.predict`` vs a plain ``no_grad`` fp32 loop over the same batches.
- **attribution**: IG-50 and Grad-CAM images/s through ``lesionkit.attribution.attribute`` with its rule vs fp32
  (``speedups="off"``, the previous behaviour), their maps' relative L1 difference, and the input-gradient-pass
  limit of IG (passes/s ÷ 50).
- **decode**: a 6000×4000 JPEG (a real ISIC image upscaled: no original that large ships here) to 512 px: full
  decode + resize vs PIL draft (``load_rgb(min_side=...)``) vs the pre-resized cache.

    LESIONKIT_DATA=../shared/data .venv/bin/python bench/bench_speed.py [--json runs/bench/speed.json]
    .venv/bin/python bench/bench_speed.py --models tf_efficientnet_lite0 --images 600 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# notebook default model -> (input size, images per epoch on this 2-core CPU)
MODELS = {"tf_efficientnet_lite0": (160, 600), "arl_resnet50": (224, 96), "sge_b3": (384, 32),
          "multimodal_b2": (256, 64), "selcn_classifier": (256, 48)}
STEP_ONLY = ("patch_inception_v3",)  # a patch-grid loader: compared at the step only


def load() -> float:
    """1-minute load average: what else ran while a figure was taken (2 cores: ~2 is this process alone)."""
    return round(os.getloadavg()[0], 2)


def dataset(n: int, seed: int = 0):
    from lesionkit.data import load_dataset

    root = Path(os.environ.get("LESIONKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    ds = load_dataset(root / "ham10000_224")
    rows = np.random.default_rng(seed).permutation(len(ds))[: n + 16]
    return ds, rows[:n], rows[n:]


# --- epochs ----------------------------------------------------------------------------------------------------
def lesionkit_epoch(name: str, ds: Any, tr: np.ndarray, va: np.ndarray, size: int, bs: int) -> dict[str, float]:
    """Seconds of one training epoch through the engine (fit over 1 epoch; the validation pass excluded)."""
    from fastai.callback.core import Callback

    from lesionkit.data.loaders import image_dls, meta_dls
    from lesionkit.engine import fit, make_learner
    from lesionkit.engine.speed import speed_of
    from lesionkit.models import create_model

    model = create_model(name, num_classes=ds.n_classes)
    build = meta_dls if getattr(model, "n_meta", 0) else image_dls
    dls = build(ds, tr, va, size=size, bs=bs, seed=0, num_workers=0, device="cpu")
    if getattr(model, "n_meta", 0) and dls.n_meta != model.n_meta:
        model = create_model(name, num_classes=ds.n_classes, n_meta=dls.n_meta)
    marks: dict[str, float] = {}

    class Clock(Callback):
        def before_train(self) -> None:
            marks["start"] = time.perf_counter()

        def after_batch(self) -> None:
            if self.training and self.iter == 0:
                marks["first"] = time.perf_counter()

        def after_train(self) -> None:
            marks["end"] = time.perf_counter()

    learn = make_learner(dls, model, cbs=[Clock()])
    fit(learn, 1, 1e-4, "constant", headless=True)
    return {"seconds": marks["end"] - marks["start"], "first_batch": marks["first"] - marks["start"],
            "setting": speed_of(learn.model).name}


class PlainImages(torch.utils.data.Dataset):
    """What a torchvision user writes: PIL open, Resize, flip, ToTensor, Normalize (+ the metadata row)."""

    def __init__(self, paths: list[str], labels: np.ndarray, size: int, meta: np.ndarray | None = None) -> None:
        from torchvision import transforms as T

        self.paths, self.labels, self.meta = paths, labels, meta
        self.tfm = T.Compose([T.Resize((size, size)), T.RandomHorizontalFlip(), T.ToTensor(),
                              T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        from PIL import Image

        x = self.tfm(Image.open(self.paths[i]).convert("RGB"))
        extra = (torch.as_tensor(self.meta[i], dtype=torch.float32),) if self.meta is not None else ()
        return (x, *extra, int(self.labels[i]))


def plain_epoch(name: str, ds: Any, tr: np.ndarray, size: int, bs: int) -> dict[str, float]:
    from lesionkit.models import create_model

    model = create_model(name, num_classes=ds.n_classes)
    n_meta = int(getattr(model, "n_meta", 0))
    meta = np.random.default_rng(0).normal(size=(len(tr), n_meta)) if n_meta else None
    data = PlainImages(list(ds.df.path.iloc[tr]), ds.df.label_idx.to_numpy()[tr], size, meta)
    loader = torch.utils.data.DataLoader(data, batch_size=bs, shuffle=True, num_workers=0, drop_last=True)
    opt, loss_func = torch.optim.AdamW(model.parameters(), lr=1e-4), nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    first = None
    for *xs, y in loader:
        loss = loss_func(model(*xs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or time.perf_counter()
    return {"seconds": time.perf_counter() - start, "first_batch": first - start, "setting": "off"}


def epoch_rows(names: list[str], rounds: int, bs: int, images: int | None) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        size, n = MODELS[name]
        n = images or n
        ds, tr, va = dataset(n)
        n_train = n // bs * bs  # both sides drop the last partial batch (fastai does for training)
        best: dict[str, dict] = {}
        first_lesionkit = None
        for r in range(rounds):  # alternate: a slow spell of the machine hits both alike
            for side, fn in (("plain", lambda: plain_epoch(name, ds, tr, size, bs)),
                             ("lesionkit", lambda: lesionkit_epoch(name, ds, tr, va, size, bs))):
                out = {**fn(), "load": load()}
                if side == "lesionkit" and first_lesionkit is None:
                    first_lesionkit = out  # includes the rule's one-time measurement
                    if rounds > 1:
                        continue
                if side not in best or out["seconds"] < best[side]["seconds"]:
                    best[side] = out
        p, lk = best["plain"], best["lesionkit"]
        rows.append(dict(model=name, size=size, batch=bs, images=n_train,
                         plain_img_s=n_train / p["seconds"], lesionkit_img_s=n_train / lk["seconds"],
                         ratio=p["seconds"] / lk["seconds"], setting=lk["setting"],
                         rule_first_epoch_s=round(first_lesionkit["seconds"], 1), load_plain=p["load"],
                         load_lesionkit=lk["load"]))
        print(json.dumps(_rounded(rows[-1])), flush=True)
    return rows


# --- the step alone, prediction -----------------------------------------------------------------------------------
def step_rows(names: list[str], bs: int, steps: int) -> list[dict[str, Any]]:
    """The Learner's step vs the same plain step under lesionkit's setting for the model (bench_models' loops)."""
    from bench_models import fastai_train, make_batch, plain_train

    from lesionkit.engine import predict
    from lesionkit.engine.speed import CpuSpeedups, Speed, choose
    from lesionkit.models import create_model

    rows = []
    for name in names:
        torch.manual_seed(0)
        model = create_model(name)
        xs, y, loss_func = make_batch(model, bs, "cpu")
        setting, _ = choose(model, xs, (y,), loss_func)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        plain = learner = share = 0.0
        for _ in range(2):
            model.load_state_dict(state)
            plain = max(plain, plain_train(model, xs, y, loss_func, steps, 1, "cpu", speed=setting))
            model.load_state_dict(state)
            rate, inside = fastai_train(model, xs, y, loss_func, steps, 1, "cpu", None, cbs=[CpuSpeedups(setting.name)])
            learner, share = max(learner, rate), max(share, inside)
        l_step = load()
        model.lesionkit_speed = setting
        batches = [(*xs, y)] * (steps + 1)
        t = time.perf_counter()
        predict(model, batches[1:], n_inp=len(xs))
        lk_pred = bs * steps / (time.perf_counter() - t)
        model.eval()
        Speed().apply(model)  # the plain side: fp32, contiguous
        with torch.no_grad():
            model(*xs)
            t = time.perf_counter()
            for _ in range(steps):
                model(*xs).softmax(-1)
        plain_pred = bs * steps / (time.perf_counter() - t)
        rows.append(dict(model=name, batch=bs, setting=setting.name, plain_step_img_s=plain,
                         learner_step_img_s=learner, step_ratio=learner / plain, same_step_ratio=share,
                         load_step=l_step, plain_predict_img_s=plain_pred, lesionkit_predict_img_s=lk_pred,
                         predict_ratio=lk_pred / plain_pred, load_predict=load()))
        print(json.dumps(_rounded(rows[-1])), flush=True)
    return rows


# --- attribution ---------------------------------------------------------------------------------------------------
def attribution_rows(names: list[str], n: int) -> list[dict[str, Any]]:
    from lesionkit.attribution import attribute
    from lesionkit.engine.speed import Speed, input_gradient
    from lesionkit.models import create_model

    rows = []
    for name in names:
        torch.manual_seed(0)
        model = create_model(name, num_classes=7).eval()
        size = 224 if name != "tf_efficientnet_lite0" else 160
        x = torch.randn(n, 3, size, size)
        meta = torch.randn(n, model.n_meta) if getattr(model, "n_meta", 0) else None
        row: dict[str, Any] = {"model": name, "size": size, "images": n}
        for method, kw in (("ig", {"n_steps": 50, "internal_batch_size": 25}), ("gradcam", {})):
            maps = {}
            for mode in ("off", "auto", "off", "auto"):  # alternating; the best of two each
                t = time.perf_counter()
                res = attribute(model, x, method, meta=meta, speedups=mode, **kw)
                rate = n / (time.perf_counter() - t)
                maps[mode] = res.maps
                row[f"{method}_{mode}_img_s"] = max(row.get(f"{method}_{mode}_img_s", 0), rate)
                row[f"{method}_setting"] = res.info.get("speedups")
            row[f"{method}_ratio"] = row[f"{method}_auto_img_s"] / row[f"{method}_off_img_s"]
            row[f"{method}_map_rel_diff"] = float(np.abs(maps["auto"] - maps["off"]).sum() / np.abs(maps["off"]).sum())
        xs = [x[:8]] + ([meta[:8]] if meta is not None else [])
        for key, setting in (("fp32", Speed()), ("rule", Speed.named(row["ig_setting"]))):
            secs = min(input_gradient(model, xs, setting)[1] for _ in range(3))
            row[f"ig_limit_{key}_img_s"] = 8 / secs / 50
        Speed().apply(model)
        row["load"] = load()
        rows.append(row)
        print(json.dumps(_rounded(row)), flush=True)
    return rows


# --- decoding ---------------------------------------------------------------------------------------------------
def decode_row(repeats: int = 3) -> dict[str, Any]:
    from PIL import Image

    from lesionkit.data.images import load_rgb
    from lesionkit.data.presize import presized

    root = Path(os.environ.get("LESIONKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    src = sorted((root / "isic2020_512" / "images").glob("*.jpg"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jpg"
        Image.open(src).convert("RGB").resize((6000, 4000), Image.LANCZOS).save(big, quality=90)
        os.environ["LESIONKIT_CACHE"] = str(Path(tmp) / "cache")  # a cold cache for this measurement
        t = time.perf_counter()
        cached = presized(big, 512)
        presize_once = time.perf_counter() - t

        def rate(fn) -> float:
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                fn().resize((512, 512))
                best = min(best, time.perf_counter() - t)
            return 1 / best

        full = rate(lambda: _full_decode(big))
        draft = rate(lambda: load_rgb(big, min_side=512))
        cache = rate(lambda: load_rgb(presized(big, 512), min_side=512))
    return dict(source=str(src.name), pixels="6000x4000", full_img_s=full, draft_img_s=draft, presized_img_s=cache,
                draft_ratio=draft / full, presized_ratio=cache / full, presize_once_s=presize_once,
                cache_file=cached.name, load=load())


def _full_decode(path: Path):
    from PIL import Image

    img = Image.open(path)
    img.load()
    return img.convert("RGB")


# --- report -------------------------------------------------------------------------------------------------------
def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    fmt = lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "\n".join("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), help=f"of {list(MODELS)}")
    ap.add_argument("--images", type=int, default=None, help="images per epoch (default: per model, see MODELS)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parts", nargs="*", default=["epoch", "step", "attribution", "decode"])
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                      f"{a.threads} threads, torch {torch.__version__}", "load_at_start": load()}
    print(out, flush=True)
    if "epoch" in a.parts:
        out["epoch"] = epoch_rows(a.models, a.rounds, a.batch, a.images)
    if "step" in a.parts:
        out["step"] = step_rows(a.models + list(STEP_ONLY), 8, a.steps)
    if "attribution" in a.parts:
        out["attribution"] = attribution_rows(["arl_resnet50", "tf_efficientnet_lite0"], 4)
    if "decode" in a.parts:
        out["decode"] = [decode_row()]
    tables = {"epoch": ["model", "size", "batch", "images", "setting", "plain_img_s", "lesionkit_img_s", "ratio",
                        "rule_first_epoch_s", "load_plain", "load_lesionkit"],
              "step": ["model", "setting", "plain_step_img_s", "learner_step_img_s", "step_ratio", "same_step_ratio",
                       "load_step",
                       "plain_predict_img_s", "lesionkit_predict_img_s", "predict_ratio", "load_predict"],
              "attribution": ["model", "ig_setting", "ig_off_img_s", "ig_auto_img_s", "ig_ratio", "ig_map_rel_diff",
                              "ig_limit_fp32_img_s", "ig_limit_rule_img_s", "gradcam_setting", "gradcam_off_img_s",
                              "gradcam_auto_img_s", "gradcam_ratio", "gradcam_map_rel_diff", "load"],
              "decode": ["pixels", "full_img_s", "draft_img_s", "presized_img_s", "draft_ratio", "presized_ratio",
                         "presize_once_s", "load"]}
    for part, cols in tables.items():
        if part in out:
            print(f"\n## {part}\n" + table(out[part], cols), flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
