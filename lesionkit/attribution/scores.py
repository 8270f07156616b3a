"""How good is a map? Agreement with the lesion mask (SE-LCN's CAM scores + attribution mass) and faithfulness
(deletion / insertion curves).

Mask scores follow SE-LCN's ``evaluate_cam.py`` (methods-a.md §3.5): the map is min-max normalised per image and
binarised at 0.5; the mask G is dilated with a k×k ones kernel, k = ceil(0.05·side) (12 at 224 px), 2 iterations.
  * pointing game: hit when the map's maximum lies inside G (an all-constant map points nowhere: a miss);
  * IoU: |B ∩ G_dil| / |B ∪ G_dil|, NaN when both are empty (SE-LCN averages IoU with nanmean);
  * overlap (precision): |B ∩ G_dil| / |B|, 0 when G is empty as in SE-LCN, and NaN when B is empty
    (SE-LCN raises ZeroDivisionError there; lesionkit leaves the image out of the mean instead).
  * best IoU (lesionkit's addition, not SE-LCN's): the highest IoU of the normalised map binarised at each of a
    grid of thresholds with the *undilated* mask, and that threshold; a map's agreement free of the 0.5 choice.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

SCORES = ("pointing_game", "iou", "overlap", "mass_inside", "iou_best")
BEST_IOU_THRESHOLDS = np.linspace(0.05, 0.95, 19)


def normalize_map(m: np.ndarray) -> np.ndarray:
    """Min-max scale one map to [0, 1]; a constant map becomes all zeros (it highlights nothing)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = np.nanmin(m), np.nanmax(m)
    return np.zeros_like(m) if not hi > lo else (m - lo) / (hi - lo)


def binarize_mask(mask: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Bool mask, resized as SE-LCN does (bicubic on the 0-255 values, then > 0.5, i.e. any non-zero pixel)."""
    import cv2

    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    m = m.astype(np.float32)
    if size is not None and m.shape != tuple(size):
        m = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return m > 0.5


def dilate_mask(mask: np.ndarray, iterations: int = 2, frac: float = 0.05) -> np.ndarray:
    """SE-LCN's ``increase_segmented_region``: dilate with a ceil(frac·side) square kernel, ``iterations`` times."""
    import cv2

    m = np.asarray(mask, dtype=bool)
    k = max(1, math.ceil(frac * min(m.shape)))
    return cv2.dilate(m.astype(np.uint8), np.ones((k, k), np.uint8), iterations=iterations).astype(bool)


def pointing_game(cam: np.ndarray, mask: np.ndarray) -> bool:
    """True when the map's maximum falls inside the (undilated) mask."""
    cam = np.asarray(cam, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    _check_shapes(cam, mask)
    if not np.nanmax(cam) > np.nanmin(cam):
        return False
    return bool(mask.flat[int(np.nanargmax(cam))])


def iou_dilated(cam: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the binarised normalised map with the dilated mask (NaN when both are empty)."""
    b, g = _bin(cam, mask, threshold)
    union = np.logical_or(b, g).sum()
    return float("nan") if union == 0 else float(np.logical_and(b, g).sum() / union)


def overlap(cam: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    """Share of the binarised map inside the dilated mask: 0 for an empty mask, NaN for an empty binarised map."""
    b, g = _bin(cam, mask, threshold)
    if not g.any():
        return 0.0
    n = b.sum()
    return float("nan") if n == 0 else float(np.logical_and(b, g).sum() / n)


def mass_inside(cam: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's positive mass that lies inside the (undilated) mask; chance level = the mask's area."""
    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, None)
    mask = np.asarray(mask, dtype=bool)
    _check_shapes(cam, mask)
    total = cam.sum()
    return float("nan") if total <= 0 else float(cam[mask].sum() / total)


def best_iou(cam: np.ndarray, mask: np.ndarray, thresholds: Sequence[float] | np.ndarray | None = None
             ) -> tuple[float, float]:
    """(best IoU, its threshold) of the min-max normalised map binarised (``> t``) at each threshold with the
    undilated mask; default thresholds 0.05, 0.10, ..., 0.95. Ties go to the lowest threshold. (NaN, NaN) for an
    empty mask."""
    cam = np.asarray(cam, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    _check_shapes(cam, mask)
    t = np.asarray(BEST_IOU_THRESHOLDS if thresholds is None else thresholds, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("best_iou needs at least one threshold")
    if not mask.any():
        return float("nan"), float("nan")
    b = normalize_map(cam).ravel()[None, :] > t[:, None]  # (T, H*W)
    g = mask.ravel()[None, :]
    iou = np.logical_and(b, g).sum(1) / np.logical_or(b, g).sum(1)  # union >= |G| > 0
    k = int(np.argmax(iou))
    return float(iou[k]), float(t[k])


def mask_scores(cam: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All mask scores for one map (plus ``iou_best_threshold`` and ``mask_fraction``); ``mask`` must already have
    the map's size (see :func:`binarize_mask`)."""
    mask = np.asarray(mask, dtype=bool)
    best, best_t = best_iou(cam, mask)
    return {
        "pointing_game": float(pointing_game(cam, mask)),
        "iou": iou_dilated(cam, mask, threshold),
        "overlap": overlap(cam, mask, threshold),
        "mass_inside": mass_inside(cam, mask),
        "iou_best": best,
        "iou_best_threshold": best_t,
        "mask_fraction": float(mask.mean()),
    }


def score_maps(
    maps: np.ndarray, masks: Sequence[np.ndarray] | np.ndarray, image_ids: Sequence[str] | None = None, **labels: Any
) -> pd.DataFrame:
    """One row per image with :func:`mask_scores`; masks are resized to the maps' size. Extra keyword arguments
    (``model="resnet18", method="gradcam"``) become constant columns, ready for :func:`summarize_scores`."""
    maps = np.asarray(maps)
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks: pass one mask per map")
    rows = []
    for i, (cam, mask) in enumerate(zip(maps, masks)):
        row = {"image_id": image_ids[i] if image_ids is not None else i, **labels}
        row.update(mask_scores(cam, binarize_mask(mask, cam.shape)))
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_scores(df: pd.DataFrame, by: Sequence[str] = ("model", "method")) -> pd.DataFrame:
    """Mean ± std per group (NaNs skipped, like SE-LCN's nanmean), plus the number of images."""
    by = [c for c in by if c in df.columns]
    cols = [c for c in (*SCORES, "mask_fraction") if c in df.columns]
    grouped = df.groupby(by)[cols] if by else df[cols].assign(_all=0).groupby("_all")
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out["n_images"] = df.groupby(by).size() if by else len(df)
    return out.reset_index()


def _bin(cam: np.ndarray, mask: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask, dtype=bool)
    _check_shapes(np.asarray(cam), mask)
    return normalize_map(cam) > threshold, dilate_mask(mask)


def _check_shapes(cam: np.ndarray, mask: np.ndarray) -> None:
    if cam.shape != mask.shape:
        raise ValueError(
            f"map shape {cam.shape} differs from mask shape {mask.shape}: resize the mask with binarize_mask")


# --- faithfulness -------------------------------------------------------------------------------------------------


def deletion_insertion(
    model: nn.Module,
    images: torch.Tensor,
    maps: np.ndarray | torch.Tensor,
    target: Sequence[int] | np.ndarray | torch.Tensor,
    *,
    mode: str = "deletion",
    steps: int = 20,
    meta: torch.Tensor | None = None,
    baseline: str | float = "auto",
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion / insertion curves (Petsiuk et al., RISE 2018) and their areas under the curve.

    Pixels are ranked by the map. Deletion starts from the image and replaces the top pixels with the baseline
    (default: 0, the mean colour in normalised space): a faithful map makes the target probability fall fast (low
    AUC). Insertion starts from the baseline (default: a heavily blurred image, as in RISE) and puts the top pixels
    back: a faithful map makes it rise fast (high AUC). Returns ``(curves (N, steps + 1), auc (N,))`` with the
    x axis the fraction of pixels changed, 0..1.
    """
    from lesionkit.attribution.core import _probs, as_plain_tensor, as_plain_tensor_meta, attribution_mode  # lazy

    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    x = as_plain_tensor(images)
    m = torch.as_tensor(np.asarray(maps), dtype=torch.float32)
    if m.shape != (x.shape[0], *x.shape[-2:]):
        raise ValueError(
            f"maps must have shape {(x.shape[0], *x.shape[-2:])} to match the images, got {tuple(m.shape)}")
    tgt = torch.as_tensor(np.asarray(target), dtype=torch.long).flatten()
    if tgt.numel() == 1:
        tgt = tgt.expand(len(x))
    if baseline == "auto":
        baseline = "zero" if mode == "deletion" else "blur"
    if baseline == "blur":
        k = max(3, (min(x.shape[-2:]) // 4) | 1)
        base = F.avg_pool2d(F.pad(x, [k // 2] * 4, mode="replicate"), k, stride=1)
    elif baseline == "zero":
        base = torch.zeros_like(x)
    else:
        base = torch.full_like(x, float(baseline))
    meta_t = None if meta is None else as_plain_tensor_meta(meta, len(x))
    n, hw = len(x), x.shape[-1] * x.shape[-2]
    order = m.flatten(1).argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw).expand(n, hw).contiguous())
    rank = rank.view(n, 1, *x.shape[-2:])
    fractions = np.linspace(0, 1, steps + 1)
    curves = np.zeros((n, steps + 1))
    with attribution_mode(model) as net, torch.no_grad():
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        for j, frac in enumerate(fractions):
            changed = rank < int(round(frac * hw))
            start, end = (x, base) if mode == "deletion" else (base, x)
            batch = torch.where(changed, end, start)
            for i in range(0, n, batch_size):
                sl = slice(i, i + batch_size)
                args = () if meta_t is None else (meta_t[sl].to(device),)
                p = _probs(net(batch[sl].to(device), *args))
                col = tgt[sl].to(device).view(-1, 1) if p.shape[1] > 1 else torch.zeros(len(p), 1, dtype=torch.long,
                                                                                           device=device)
                curves[sl, j] = p.gather(1, col).squeeze(1).cpu().numpy()
    auc = np.trapezoid(curves, fractions, axis=1) if hasattr(np, "trapezoid") else np.trapz(curves, fractions, axis=1)
    return curves, auc

