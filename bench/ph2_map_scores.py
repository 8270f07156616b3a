"""Map quality on PH2 with a briefly trained model: mask scores and faithfulness per method, models × methods figure.

Fine-tunes tf_efficientnet_lite0 (the ImageNet weights available offline) on 150 PH2 images (3 classes: common
nevus, atypical nevus, melanoma) for a few epochs, then scores Grad-CAM, Grad-CAM++, IntegratedGradients and
Occlusion (``--methods`` adds SmoothGrad, GradientShap) for the predicted class on the 50 held-out images
against the expert lesion masks (pointing game, IoU with the dilated mask, overlap, mass inside;
deletion/insertion AUC). The same model with random weights is the reference
row. Writes per-image scores, a summary and figures to the output folder (a run record under runs/, never committed).

    LESIONKIT_DATA=../shared/data .venv/bin/python bench/ph2_map_scores.py [--epochs 4] [--out runs/ph2_map_scores]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from lesionkit.attribution import attribute, deletion_insertion, score_maps, summarize_scores
from lesionkit.attribution.figures import plot_attribution_grid, plot_map_scores, save_figure

CLASSES = ["common_nevus", "atypical_nevus", "melanoma"]
METHODS = ["gradcam", "gradcam++", "integrated_gradients", "occlusion"]
METHOD_KW = {"integrated_gradients": {"n_steps": 16}, "smoothgrad": {"nt_samples": 8}}


def load_ph2(root: Path, size: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Images squashed to size × size (RGB float in [0, 1]) and their masks (bool), in labels.csv order."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found: point LESIONKIT_DATA at the shared data folder (it holds ph2/)")
    df = pd.read_csv(labels)
    images = np.stack([np.asarray(Image.open(root / f).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
                       for f in df.filename]).astype(np.float32) / 255
    masks = np.stack([np.asarray(Image.open(root / f).convert("L").resize((size, size), Image.Resampling.NEAREST)) > 0
                      for f in df["mask"]])
    return df, images, masks


def split(df: pd.DataFrame, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(df))
    return train_test_split(idx, test_size=n_test, stratify=df.clinical_diagnosis, random_state=seed)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, bs: int, lr: float) -> list[float]:
    """A short fine-tune with flips; returns the mean training loss per epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * ((len(x) + bs - 1) // bs))
    weights = torch.bincount(y, minlength=len(CLASSES)).float().reciprocal()
    losses = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        total = 0.0
        for i in range(0, len(x), bs):
            b = perm[i : i + bs]
            xb = x[b]
            if torch.rand(1) < 0.5:
                xb = xb.flip(3)
            if torch.rand(1) < 0.5:
                xb = xb.flip(2)
            loss = F.cross_entropy(model(xb), y[b], weight=weights / weights.sum() * len(CLASSES))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        losses.append(total / len(x))
    return losses


def evaluate(name: str, model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, masks: np.ndarray,
             ids: list[str], methods: list[str], steps: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    frames, maps = [], {}
    side = x.shape[-1]
    for method in methods:
        t0 = time.perf_counter()
        kw = dict(METHOD_KW.get(method, {}))
        if method == "occlusion":  # 8 x 8 windows, as coarse as Grad-CAM's grid at 224 px
            kw.update(window=side // 8, stride=side // 8)
        res = attribute(model, x, method, internal_batch_size=32, **kw)
        maps[method] = res.maps
        seconds = time.perf_counter() - t0
        df = score_maps(res.maps, masks, ids, model=name, method=method)
        _, df["deletion_auc"] = deletion_insertion(model, x, res.maps, res.target, mode="deletion", steps=steps)
        _, df["insertion_auc"] = deletion_insertion(model, x, res.maps, res.target, mode="insertion", steps=steps)
        df["pred"] = res.target
        df["label"] = y
        frames.append(df)
        print(f"  {name:14s} {method:22s} {seconds:7.1f}s  pointing {df.pointing_game.mean():.3f}  "
              f"IoU {df.iou.mean():.3f}  mass {df.mass_inside.mean():.3f}  del {df.deletion_auc.mean():.3f}  "
              f"ins {df.insertion_auc.mean():.3f}", flush=True)
    return pd.concat(frames, ignore_index=True), maps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("LESIONKIT_DATA", "../shared/data")) / "ph2")
    p.add_argument("--out", type=Path, default=Path("runs/ph2_map_scores"))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-test", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--steps", type=int, default=10, help="deletion/insertion steps")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from lesionkit.models import create_model

    torch.manual_seed(a.seed)
    df, images, masks = load_ph2(a.data, a.size)
    train_idx, test_idx = split(df, a.n_test, a.seed)
    y = torch.tensor([CLASSES.index(c) for c in df.clinical_diagnosis])
    model = create_model("tf_efficientnet_lite0", pretrained=True, num_classes=len(CLASSES))
    mean, std = np.asarray(model.default_cfg["mean"]), np.asarray(model.default_cfg["std"])
    x = torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2)).float()
    t0 = time.perf_counter()
    losses = train(model, x[train_idx], y[train_idx], a.epochs, a.bs, a.lr)
    train_s = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        pred = model(x[test_idx]).argmax(1).numpy()
    y_test = y[test_idx].numpy()
    from sklearn.metrics import balanced_accuracy_score

    acc, bacc = float((pred == y_test).mean()), float(balanced_accuracy_score(y_test, pred))
    print(f"trained {a.epochs} epochs in {train_s:.0f}s, losses {np.round(losses, 3).tolist()}; "
          f"test accuracy {acc:.3f}, balanced accuracy {bacc:.3f}", flush=True)

    torch.manual_seed(a.seed)
    random_model = create_model("tf_efficientnet_lite0", pretrained=False, num_classes=len(CLASSES)).eval()
    ids = list(df.image_id.iloc[test_idx])
    trained, maps = evaluate("lite0 trained", model, x[test_idx], y_test, masks[test_idx], ids, a.methods, a.steps)
    rand, _ = evaluate("lite0 random", random_model, x[test_idx], y_test, masks[test_idx], ids, a.methods, a.steps)
    scores = pd.concat([trained, rand], ignore_index=True)
    a.out.mkdir(parents=True, exist_ok=True)
    scores.to_csv(a.out / "map_scores.csv", index=False)
    summary = summarize_scores(scores.drop(columns=["deletion_auc", "insertion_auc"]))
    faith = scores.groupby(["model", "method"])[["deletion_auc", "insertion_auc"]].mean().reset_index()
    summary = summary.merge(faith, on=["model", "method"])
    summary.to_csv(a.out / "map_scores_summary.csv", index=False)
    fig = plot_map_scores(scores, scores=("pointing_game", "iou", "overlap", "mass_inside", "deletion_auc",
                                          "insertion_auc"))
    print("figure:", save_figure(fig, a.out, "map_scores"))
    n_show = min(8, len(test_idx))
    grid = plot_attribution_grid(images[test_idx][:n_show], {m: v[:n_show] for m, v in maps.items()},
                                 classes=CLASSES, labels=y_test[:n_show], preds=pred[:n_show],
                                 masks=masks[test_idx][:n_show])
    print("grid:", save_figure(grid, a.out, "attribution_grid"))
    (a.out / "ph2_run.json").write_text(json.dumps({
        "epochs": a.epochs, "train_seconds": round(train_s, 1), "train_losses": losses, "test_accuracy": acc,
        "test_balanced_accuracy": bacc, "n_train": len(train_idx), "n_test": len(test_idx), "size": a.size,
        "mask_fraction": float(masks[test_idx].mean())}, indent=1))
    cols = ["model", "method", "pointing_game_mean", "iou_mean", "overlap_mean", "mass_inside_mean",
            "mask_fraction_mean", "deletion_auc", "insertion_auc"]
    print(summary[cols].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
