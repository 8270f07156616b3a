"""Compute maps once, store them with the run: the viewer then pages through files instead of running Captum.

Layout in a run folder:
  attributions.npz         images (N, H, W, 3) uint8 for display; maps_<method> (N, K, H, W) float16, each map
                           divided by its max |value| (sign and mass ratios kept); masks (N, H, W) bool when given
  attributions.json        index: classes, image_ids, labels, preds, probs, targets (N, K), methods, layers, timings
  attribution_scores.csv   mask scores of each method's map for the predicted class (only when masks are given)
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lesionkit.attribution.core import (
    Attribution,
    _probs,
    as_plain_tensor,
    as_plain_tensor_meta,
    attribute,
    attribution_mode,
    canonical_method,
    denormalize,
)
from lesionkit.attribution.outputs import head_index, model_cfg
from lesionkit.attribution.scores import binarize_mask, score_maps

NPZ_NAME = "attributions.npz"
INDEX_NAME = "attributions.json"
SCORES_NAME = "attribution_scores.csv"
FORMAT_VERSION = 1


class AttributionsNotFoundError(FileNotFoundError):
    """The run folder holds no precomputed maps."""


@dataclass
class AttributionStore:
    """Precomputed maps of one run, as loaded by :func:`load_attributions`."""

    run_dir: Path
    images: np.ndarray
    maps: dict[str, np.ndarray]
    masks: np.ndarray | None
    index: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.index["classes"])

    @property
    def methods(self) -> list[str]:
        return list(self.index["methods"])

    @property
    def probs(self) -> np.ndarray:
        """(N, n_classes); a store written before one-logit models were stored as two classes gets P(rest) too."""
        probs = np.asarray(self.index["probs"], dtype=float)
        return np.concatenate([1 - probs, probs], axis=1) if self._one_column else probs

    @property
    def _one_column(self) -> bool:
        """An older store of a one-logit model: one probability column, P(classes[1]), its maps of that logit."""
        return len(self.index["probs"]) > 0 and len(self.index["probs"][0]) == 1 and len(self.classes) == 2

    @property
    def preds(self) -> np.ndarray:
        return np.asarray(self.index["preds"], dtype=int)

    @property
    def labels(self) -> np.ndarray | None:
        labels = self.index.get("labels")
        return None if labels is None else np.asarray(labels, dtype=int)

    @property
    def targets(self) -> np.ndarray:
        targets = np.asarray(self.index["targets"], dtype=int)
        return np.ones_like(targets) if self._one_column else targets  # an older store's one logit: classes[1]

    def __len__(self) -> int:
        return len(self.images)

    def select(
        self, cls: int | str | None = None, correct: bool | None = None, confidence: tuple[float, float] = (0.0, 1.0)
    ) -> list[int]:
        """Image indices whose true class is ``cls`` (predicted class when labels are unknown), that the model got
        right (``correct=True``) or wrong, and whose top probability lies in ``confidence``."""
        keep = np.ones(len(self), dtype=bool)
        ref = self.labels if self.labels is not None else self.preds
        if cls is not None:
            idx = self.classes.index(cls) if isinstance(cls, str) else int(cls)
            keep &= ref == idx
        if correct is not None and self.labels is not None:
            keep &= (self.preds == self.labels) == correct
        top = self.probs.max(axis=1)
        keep &= (top >= confidence[0]) & (top <= confidence[1])
        return [int(i) for i in np.flatnonzero(keep)]


def _choose_targets(probs: np.ndarray, labels: np.ndarray | None, mode: str, top_k: int) -> np.ndarray:
    """(N, K) classes to explain per image: predicted first; "top" keeps the true class among the K."""
    order = np.argsort(-probs, axis=1, kind="stable")
    n_classes = probs.shape[1]
    if mode == "pred" or n_classes == 1:
        return order[:, :1]
    if mode == "all":
        return np.tile(np.arange(n_classes), (len(probs), 1))
    if mode != "top":
        raise ValueError(f"targets must be 'pred', 'top' or 'all', got {mode!r}")
    k = min(top_k, n_classes)
    out = order[:, :k].copy()
    if labels is not None:
        for i, y in enumerate(labels):
            if y not in out[i]:
                out[i, -1] = y
    return out


def precompute_attributions(
    model: nn.Module,
    images: Any,
    methods: Sequence[str],
    run_dir: str | Path,
    *,
    classes: Sequence[str] | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    image_ids: Sequence[str] | None = None,
    meta: Any = None,
    masks: Sequence[np.ndarray] | np.ndarray | None = None,
    targets: str = "top",
    top_k: int = 3,
    batch_size: int = 8,
    model_name: str | None = None,
    method_kw: dict[str, dict[str, Any]] | None = None,
    **attr_kw: Any,
) -> Path:
    """Compute ``methods`` for every image and target class and write them to ``run_dir``; returns the npz path.

    ``images`` are the normalised model inputs (N, C, H, W). ``targets`` picks which classes get maps: "pred", "top"
    (the ``top_k`` most probable, with the true class swapped in when missing; the default) or "all".
    ``method_kw`` gives per-method options (``{"occlusion": {"window": 8}}``); ``attr_kw`` go to every call.
    A one-logit (binary) model is stored as two classes, ``classes`` = [rest, positive] with P(positive) =
    sigmoid(logit) under the second, and both get maps (the predicted first) even with ``targets="pred"``.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    x = as_plain_tensor(images)
    n = len(x)
    methods = [canonical_method(m) for m in methods]
    label_arr = None if labels is None else np.asarray(labels, dtype=int)
    if label_arr is not None and len(label_arr) != n:
        raise ValueError(f"{len(label_arr)} labels for {n} images")
    meta_t = None if meta is None else as_plain_tensor_meta(meta, n)
    method_kw = method_kw or {}

    def run(method: str, target: np.ndarray | None) -> Attribution:
        parts = []
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            parts.append(attribute(model, x[sl], method, None if target is None else target[sl],
                                   meta=None if meta_t is None else meta_t[sl], binary_as_two=one_logit, **attr_kw,
                                   **method_kw.get(method, {})))
        return Attribution(
            maps=np.concatenate([p.maps for p in parts]), images=np.concatenate([p.images for p in parts]),
            target=np.concatenate([p.target for p in parts]), probs=np.concatenate([p.probs for p in parts]),
            method=method, layer=parts[0].layer, info=parts[0].info)

    probs, display = predict_proba(model, x, meta_t, batch_size, **attr_kw)
    one_logit = probs.shape[1] == 1
    if one_logit:  # a binary model's P(positive): stored as the two classes [rest, positive], both explained
        probs = np.concatenate([1 - probs, probs], axis=1)
        targets, top_k = ("top", 2) if targets == "pred" else (targets, top_k)
    target_arr = _choose_targets(probs, label_arr, targets, top_k)
    arrays: dict[str, np.ndarray] = {}
    layers: dict[str, str | None] = {}
    timings: dict[str, float] = {}
    for method in methods:
        t0 = time.perf_counter()
        stack = []
        for k in range(target_arr.shape[1]):
            res = run(method, target_arr[:, k])
            stack.append(res.maps)
            layers[method] = res.layer
        maps = np.stack(stack, axis=1)
        scale = np.abs(maps).reshape(n, len(stack), -1).max(axis=2)[..., None, None]
        arrays[f"maps_{method}"] = (maps / np.where(scale > 0, scale, 1)).astype(np.float16)
        timings[method] = round(time.perf_counter() - t0, 3)
    arrays["images"] = (display * 255).round().astype(np.uint8)
    h, w = display.shape[1:3]
    ids = [str(i) for i in (image_ids if image_ids is not None else range(n))]
    if masks is not None:
        if len(masks) != n:
            raise ValueError(f"{len(masks)} masks for {n} images: pass one mask per image")
        arrays["masks"] = np.stack([binarize_mask(m, (h, w)) for m in masks])
        frames = [score_maps(arrays[f"maps_{m}"][:, 0].astype(np.float32), arrays["masks"], ids, method=m)
                  .assign(target=target_arr[:, 0]) for m in methods]
        pd.concat(frames).to_csv(run_dir / SCORES_NAME, index=False)
    n_classes = probs.shape[1]
    index = {
        "format_version": FORMAT_VERSION,
        "model": model_name or type(model).__name__,
        "methods": methods,
        "layers": layers,
        "classes": list(classes) if classes is not None else [str(c) for c in range(n_classes)],
        "image_ids": ids,
        "labels": None if label_arr is None else label_arr.tolist(),
        "preds": probs.argmax(1).astype(int).tolist(),
        "one_logit": one_logit,
        "probs": probs.round(6).tolist(),
        "targets": target_arr.tolist(),
        "image_size": [int(h), int(w)],
        "timings_s": timings,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if classes is not None and n_classes > 1 and len(classes) != n_classes:
        raise ValueError(f"{len(classes)} class names for a model with {n_classes} outputs")
    np.savez_compressed(run_dir / NPZ_NAME, **arrays)
    (run_dir / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return run_dir / NPZ_NAME


def predict_proba(
    model: nn.Module, images: Any, meta: Any = None, batch_size: int = 32, **attr_kw: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, C) under the same conditions as attribution (eval, fp32) and the display images."""
    x = as_plain_tensor(images)
    meta_t = None if meta is None else as_plain_tensor_meta(meta, len(x))
    mean, std = attr_kw.get("mean"), attr_kw.get("std")
    cfg = model_cfg(model)
    if mean is None and std is None and "mean" in cfg and "std" in cfg:
        mean, std = cfg["mean"], cfg["std"]
    probs = []
    with attribution_mode(model) as net, torch.no_grad():
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        for i in range(0, len(x), batch_size):
            args = () if meta_t is None else (meta_t[i : i + batch_size].to(device),)
            logits = net(x[i : i + batch_size].to(device), *args)
            head = head_index(net, attr_kw.get("head"), tuple(logits.shape))
            probs.append(_probs(logits if head is None else logits[:, head]).float().cpu())
    return torch.cat(probs).numpy(), denormalize(x, mean, std)


def load_attributions(run_dir: str | Path) -> AttributionStore:
    """Read what :func:`precompute_attributions` wrote; a clear error when the run has no maps."""
    run_dir = Path(run_dir)
    npz, idx = run_dir / NPZ_NAME, run_dir / INDEX_NAME
    if not npz.is_file() or not idx.is_file():
        raise AttributionsNotFoundError(
            f"{run_dir} has no precomputed maps ({NPZ_NAME} + {INDEX_NAME}); create them with "
            "lesionkit.attribution.precompute_attributions(model, images, methods, run_dir)"
        )
    index = json.loads(idx.read_text())
    with np.load(npz) as data:
        maps = {m: data[f"maps_{m}"] for m in index["methods"]}
        images = data["images"]
        masks = data["masks"] if "masks" in data.files else None
    return AttributionStore(run_dir=run_dir, images=images, maps=maps, masks=masks, index=index)
