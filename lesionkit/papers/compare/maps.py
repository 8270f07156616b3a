"""Every entry's attention maps on the same masked images, scored against the lesion masks.

Per entry and method (native attention where the model has it, Grad-CAM, Grad-CAM++, integrated gradients), for
the predicted class: pointing game, mass inside the mask, IoU with the dilated mask at 0.5 (SE-LCN's) and with the
mask at the best threshold, and deletion / insertion AUC (RISE). Maps are stored per entry under
``maps/<entry>/`` in the viewer's layout, so the side-by-side viewer pages through files.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesionkit.attribution import deletion_insertion, precompute_attributions
from lesionkit.data.loaders import test_dl
from lesionkit.data.tasks import model_inputs
from lesionkit.papers.common import load_external_like, model_norm
from lesionkit.papers.compare.cascade import lend, with_inputs
from lesionkit.papers.compare.entries import ENTRIES, full_size
from lesionkit.papers.compare.recipe import fold0_scores
from lesionkit.papers.se_lcn.lae import true_masks

IMAGE_INPUT = ("metadata", "se_lcn_cam")  # entries whose model takes a second input, read from their loaders
METHOD_KW = {"integrated_gradients": {"n_steps": 16}}
MAP_SCORES = ("pointing_game", "mass_inside", "iou", "iou_best", "deletion_auc", "insertion_auc")


def map_set(ctx: Any) -> tuple[Any, np.ndarray, str] | None:
    """(dataset, rows, what it is) the maps are scored on: ``map_dir`` (its held-out part, classes mapped to
    data_dir's), else data_dir's test rows when they have masks; None when neither has masks or n_maps is 0."""
    cfg = ctx.cfg
    if not cfg.n_maps:
        return None
    if cfg.map_dir:
        ds = load_external_like(replace(cfg, test_dir=cfg.map_dir), ctx.ds)
        ds, what = with_inputs(ds, ctx, name="maps"), f"map_dir {cfg.map_dir}"
        rows = np.arange(len(ds))  # after with_inputs, which may leave out images the CAM cascade trained on
    elif ctx.ds.has_masks:
        ds, rows, what = ctx.ds, np.asarray(ctx.splits.test), "data_dir's test rows"
    else:
        return None
    rows = rows[ds.df["mask_path"].iloc[rows].notna().to_numpy()]
    if not len(rows):
        if not cfg.map_dir:
            return None
        raise ValueError(f"{what}: no image has a lesion mask; give map_dir a dataset with masks (e.g. PH2)")
    return ds, spread(ds, rows, cfg.n_maps, cfg.seed), what


def spread(ds: Any, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` of ``rows``, taken round-robin over the classes (a random order within each) so that rare
    classes are scored too."""
    rng = np.random.default_rng(seed)
    labels = ds.df["label_idx"].to_numpy()[rows]
    pools = [list(rng.permutation(rows[labels == c])) for c in np.unique(labels)]
    out: list[int] = []
    while len(out) < min(n, len(rows)):
        for pool in pools:
            if pool and len(out) < n:
                out.append(int(pool.pop()))
    return np.array(sorted(out))


def entry_inputs(key: str, learn: Any, ds: Any, idx: np.ndarray, image_size: int) -> tuple[Any, Any]:
    """(model input images, second input or None) of rows ``idx``: whole images as the entry's model reads them
    (patch attention cuts its patches from the whole image itself), or the loaders' test batch for entries with a
    second input (passed along, not attributed)."""
    if key in IMAGE_INPUT:
        batch = next(iter(test_dl(learn.dls, ds, idx, bs=len(idx))))
        return batch[0], batch[1]
    if key == "patch_attention":
        return model_inputs(ds, idx, full_size(image_size), norm=None), None
    return model_inputs(ds, idx, image_size, norm=model_norm(learn.model)), None


def methods_for(model: Any, images: Any, extra: Any, methods: list[str]) -> list[str]:
    """``methods`` without "native" when the model has no attention maps of its own."""
    import torch

    if "native" not in methods:
        return methods
    native = False
    if extra is None and hasattr(model, "attention_maps"):
        model.eval()
        with torch.no_grad():
            native = bool(model.attention_maps(torch.as_tensor(images[:1]).float()))
    return [m for m in methods if m != "native" or native]


def score_entry(key: str, learn: Any, ds: Any, idx: np.ndarray, masks: np.ndarray, ctx: Any) -> pd.DataFrame:
    """The entry's maps of rows ``idx`` (stored under maps/<entry>/) and their per-image scores."""
    cfg = ctx.cfg
    images, extra = entry_inputs(key, learn, ds, idx, cfg.image_size)
    methods = methods_for(learn.model, images, extra, cfg.methods)
    out = Path(ctx.run.dir) / "maps" / key
    precompute_attributions(learn.model, images, methods, out, classes=ds.classes,
                            labels=ds.df["label_idx"].to_numpy()[idx], image_ids=ds.df["image_id"].iloc[idx].tolist(),
                            meta=extra, masks=masks, targets="pred", batch_size=8, model_name=ENTRIES[key].label,
                            method_kw=METHOD_KW)
    scores = pd.read_csv(out / "attribution_scores.csv", dtype={"image_id": str})
    arrays, index = np.load(out / "attributions.npz"), json.loads((out / "attributions.json").read_text())
    target = np.asarray(index["targets"])[:, 0]
    # deletion fills with the mean colour: 0 in normalised inputs; in the [0, 1] inputs of patch attention and the
    # CAM entry, ImageNet's mean grey (insertion starts from a blur, the same for both)
    grey = "auto" if key not in ("patch_attention", "se_lcn_cam") else float(np.mean((0.485, 0.456, 0.406)))
    for method in methods:
        maps = arrays[f"maps_{method}"][:, 0].astype(np.float32)
        rows = scores["method"] == method
        for mode in ("deletion", "insertion"):
            _, auc = deletion_insertion(learn.model, images, maps, target, mode=mode, steps=cfg.map_steps,
                                        meta=extra, baseline=grey if mode == "deletion" else "auto")
            scores.loc[rows, f"{mode}_auc"] = auc
    return scores.assign(entry=key)


def score_maps(res: Any, ctx: Any) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """(per-image scores of every entry, their mean per entry × method beside the entry's BMA, what was scored);
    map_scores.csv and map_summary.csv. None when no masks are available."""
    chosen = map_set(ctx)
    if chosen is None:
        return None
    ds, idx, what = chosen
    masks = true_masks(ds, idx, ctx.cfg.image_size)
    with lend(ctx, "maps"):
        per_image = pd.concat([score_entry(key, res.learners[key], ds, idx, masks, ctx) for key in res.variants],
                              ignore_index=True)
    ctx.run.save_table(per_image, "map_scores.csv")
    cols = [c for c in MAP_SCORES if c in per_image]
    summary = per_image.groupby(["entry", "method"], sort=False)[cols].mean().add_suffix("_mean").reset_index()
    bma = fold0_scores(res)
    summary["bma"] = [bma[e]["bma"] for e in summary["entry"]]
    summary["images"] = len(idx)
    ctx.run.save_table(summary, "map_summary.csv")
    ctx.run.log_metrics({"map_scores": {"scored_on": what, "images": int(len(idx))}})
    return per_image, summary, what


def stores(run: Any, keys: list[str]) -> dict[str, Path]:
    """{entry: its maps folder}, in the order of ``keys``, for the side-by-side viewer."""
    root = Path(run.dir) / "maps"
    return {k: root / k for k in keys if (root / k / "attributions.npz").exists()}


__all__ = ["MAP_SCORES", "entry_inputs", "map_set", "methods_for", "score_entry", "score_maps", "spread", "stores"]
