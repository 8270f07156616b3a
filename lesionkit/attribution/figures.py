"""Static attribution figures: what a headless run shows and saves (the ipywidgets viewer builds on the same overlay).

Figures are built on ``matplotlib.figure.Figure`` without pyplot, so nothing opens a window or leaks global state;
notebooks display the returned Figure and runs save it under ``figures/``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib import colormaps

from lesionkit.attribution.scores import normalize_map
from lesionkit.viz.figure import Figure

if TYPE_CHECKING:
    from lesionkit.attribution.precompute import AttributionStore

SCORE_LABELS = {
    "pointing_game": "pointing game",
    "iou": "IoU (dilated mask)",
    "overlap": "overlap (precision)",
    "mass_inside": "mass inside mask",
    "deletion_auc": "deletion AUC (lower = better)",
    "insertion_auc": "insertion AUC (higher = better)",
}


def _as_float_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    return img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32).clip(0, 1)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a map over an image: (H, W, 3) uint8. The map is min-max scaled and shown with ``cmap``; the
    overlay's opacity grows with the map value, so unimportant regions show the lesion itself."""
    img = _as_float_image(image)
    m = normalize_map(np.asarray(cam, dtype=np.float32))
    if m.shape != img.shape[:2]:
        raise ValueError(f"map shape {m.shape} differs from image shape {img.shape[:2]}")
    heat = colormaps[cmap](m)[..., :3]
    a = (alpha * m)[..., None]
    return (((1 - a) * img + a * heat).clip(0, 1) * 255).round().astype(np.uint8)


def _title(i: int, classes: Sequence[str] | None, labels: Sequence[int] | None, preds: Sequence[int] | None,
           probs: np.ndarray | None) -> str:
    name = (lambda c: classes[c] if classes is not None else str(c))
    parts = []
    if preds is not None:
        p = f" {probs[i, preds[i]]:.2f}" if probs is not None and probs.shape[1] > 1 else ""
        parts.append(f"pred {name(int(preds[i]))}{p}")
    if labels is not None:
        parts.append(f"true {name(int(labels[i]))}")
        if preds is not None:
            parts.append("✓" if int(preds[i]) == int(labels[i]) else "✗")
    return " | ".join(parts)


def plot_attribution_grid(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    *,
    classes: Sequence[str] | None = None,
    labels: Sequence[int] | None = None,
    preds: Sequence[int] | None = None,
    probs: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    max_images: int = 8,
    cell: float = 2.2,
) -> Figure:
    """Rows = images, columns = the image then one overlay per method; row titles give predicted/true class.

    ``maps`` maps a method name to (N, H, W) maps for the same N images; a mask, when given, is outlined on the image.
    """
    n = min(len(images), max_images)
    methods = list(maps)
    for m in methods:
        if len(maps[m]) < n:
            raise ValueError(f"method {m!r} has {len(maps[m])} maps for {len(images)} images")
    cols = 1 + len(methods)
    fig = Figure(figsize=(cell * cols, cell * n + 0.4), layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(_as_float_image(images[i]))
        if masks is not None:
            axes[i, 0].contour(np.asarray(masks[i], dtype=float), levels=[0.5], colors="w", linewidths=1)
        axes[i, 0].set_title(_title(i, classes, labels, preds, probs), fontsize=7, loc="left")
        for j, method in enumerate(methods, start=1):
            axes[i, j].imshow(overlay(images[i], maps[method][i], alpha=alpha, cmap=cmap))
            if i == 0:
                axes[i, j].set_title(method, fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig


def plot_store_grid(
    store: AttributionStore, indices: Sequence[int] | None = None, target_slot: int = 0, **kw: object
) -> Figure:
    """:func:`plot_attribution_grid` for precomputed maps (``target_slot`` 0 = the predicted class)."""
    idx = list(range(len(store))) if indices is None else list(indices)
    if not idx:
        fig = Figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no image matches the filter", ha="center", va="center")
        return fig
    maps = {m: store.maps[m][idx, target_slot].astype(np.float32) for m in store.methods}
    return plot_attribution_grid(
        store.images[idx], maps, classes=store.classes, labels=None if store.labels is None else store.labels[idx],
        preds=store.preds[idx], probs=store.probs[idx], masks=None if store.masks is None else store.masks[idx], **kw)


def save_figure(fig: Figure, run_dir: str | Path, name: str) -> Path:
    """Save under ``<run_dir>/figures/<name>.png`` (150 dpi) and return the path."""
    path = Path(run_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path


def plot_map_scores(
    df: pd.DataFrame,
    scores: Sequence[str] = ("pointing_game", "iou", "overlap", "mass_inside"),
    x: str = "method",
    hue: str | None = "model",
    chance_col: str | None = "mask_fraction",
) -> Figure:
    """Models × methods comparison: one seaborn bar panel per score (mean with 95% CI over images).

    ``df`` has one row per image (as :func:`lesionkit.attribution.score_maps` returns, with ``model`` and ``method``
    columns). A dashed line marks chance for pointing game and mass inside (the mean mask fraction).
    """
    import seaborn as sns

    missing = [c for c in (*scores, x) if c not in df.columns]
    if missing:
        raise ValueError(f"score table lacks column(s) {missing}; it has {list(df.columns)}")
    df = df.reset_index(drop=True)  # seaborn needs unique index labels (concatenated score tables repeat them)
    hue = hue if hue in df.columns and df[hue].nunique() > 0 else None
    fig = Figure(figsize=(3.6 * len(scores), 3.4), layout="constrained")
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, score in zip(axes, scores):
        sns.barplot(data=df, x=x, y=score, hue=hue, ax=ax, errorbar=("ci", 95), legend=ax is axes[-1])
        ax.set_title(SCORE_LABELS.get(score, score), fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        if chance_col in df.columns and score in ("pointing_game", "mass_inside"):
            ax.axhline(float(df[chance_col].mean()), ls="--", c="k", lw=1, label="chance")
        if score in ("pointing_game", "iou", "overlap", "mass_inside"):
            ax.set_ylim(0, 1)
    if hue is not None and axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1, 1), fontsize=8, title=hue)
    return fig


def plot_deletion_insertion(curves: Mapping[str, np.ndarray], mode: str = "deletion") -> Figure:
    """Mean deletion or insertion curve per method (label: AUC); x = fraction of pixels removed/inserted."""
    fig = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, c in curves.items():
        c = np.asarray(c, dtype=float)
        frac = np.linspace(0, 1, c.shape[1])
        mean = c.mean(axis=0)
        ax.plot(frac, mean, label=f"{name} (AUC {np.trapezoid(mean, frac):.3f})")
    ax.set_xlabel(f"fraction of pixels {'removed' if mode == 'deletion' else 'inserted'}")
    ax.set_ylabel("target probability")
    ax.set_title(mode)
    ax.legend(fontsize=7)
    return fig
