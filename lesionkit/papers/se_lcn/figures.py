"""Figures of SE-LCN's cascade: predicted vs true lesion outlines, and image → symmetry-net input → its CAM."""
from __future__ import annotations

from typing import Any

import numpy as np

from lesionkit.attribution.figures import overlay
from lesionkit.data.images import load_rgb
from lesionkit.papers.se_lcn.segmentation import segmentation_scores
from lesionkit.viz.figure import Figure


def _image(path: str, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(load_rgb(path, min_side=size).resize((size, size), Image.BILINEAR))


def plot_segmentation(seg_ds: Any, idx: np.ndarray, pred: np.ndarray, truth: np.ndarray, size: int,
                      n: int = 6) -> Figure:
    """Images ``idx`` with the true (white) and predicted (cyan) lesion outlines and each image's Dice; ``pred`` and
    ``truth`` are their (N, size, size) masks."""
    n = min(n, len(idx))
    fig = Figure(figsize=(2.2 * n, 2.5), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, i, p, t in zip(axes, np.asarray(idx)[:n], pred, truth):
        ax.imshow(_image(seg_ds.df["path"].iloc[i], size))
        ax.contour(t.astype(float), levels=[0.5], colors="w", linewidths=1)
        if p.any():
            ax.contour(p.astype(float), levels=[0.5], colors="c", linewidths=1)
        dice = segmentation_scores(p[None], t[None])["dice"]
        ax.set_title(f"{seg_ds.df['image_id'].iloc[i]}  Dice {dice:.2f}", fontsize=7)
        ax.set_axis_off()
    return fig


def plot_cascade(ds: Any, idx: np.ndarray, pred_masks: np.ndarray, inputs: Any, cams: dict[str, np.ndarray],
                 size: int, n: int = 6) -> Figure:
    """Rows = images ``idx``; columns = image with its predicted mask outline (``pred_masks`` aligned with the rows
    of ``ds``), the symmetry net's input (rows of ``inputs``), its CAM (``cams`` by image id)."""
    from PIL import Image

    idx = np.asarray(idx)[:n]
    fig = Figure(figsize=(6.6, 2.2 * len(idx) + 0.3), layout="constrained")
    axes = fig.subplots(len(idx), 3, squeeze=False)
    for r, i in enumerate(idx):
        src = _image(inputs.df["path"].iloc[i], size)
        cam = np.asarray(Image.fromarray(cams[str(inputs.df["image_id"].iloc[i])]).resize((size, size),
                                                                                          Image.BILINEAR))
        axes[r, 0].imshow(_image(ds.df["path"].iloc[i], size))
        axes[r, 0].contour(pred_masks[i].astype(float), levels=[0.5], colors="w", linewidths=1)
        axes[r, 1].imshow(src)
        axes[r, 2].imshow(overlay(src, cam))
        axes[r, 0].set_title(f"{ds.df['image_id'].iloc[i]} | {ds.df['label'].iloc[i]}", fontsize=7, loc="left")
    for c, title in enumerate(("image + predicted mask", "symmetry-net input", "symmetry Grad-CAM++")):
        ax = axes[0, c]
        if c == 0:
            ax.set_title(f"{title}\n{ax.get_title(loc='left')}", fontsize=8, loc="left")
        else:
            ax.set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig


__all__ = ["plot_cascade", "plot_segmentation"]
