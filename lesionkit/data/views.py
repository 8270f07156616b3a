"""Several views of one image as one input: the patch grid of the patch-attention model, and test-time views.

- Patch grid (methods-a §1.1/§1.3): the full image resized to 450x600 (HxW) and cut into P ordered 224 px crops:
  '2x2+c' (P=5: four corners + centre, the HAM10000 config) or '3x3' (P=9, the derm7pt config). Batches are
  (B, P, 3, 224, 224). Training augments the whole image first (flips, brightness 32/255, saturation 0.5) and
  may zero whole patches (patch dropout); inputs stay in [0, 1] by default, as in the released code.
- TTA views that need the image itself, batches (B, V, 3, S, S): 'multicrop' (an ordered n x n grid of S crops from
  the image resized to scale*S), 'multiscale' (ARL's 9 views: 2 crops at each scale 0.2/0.4/0.6/0.8 plus the whole
  image; seeded per image, so repeated predictions agree). The loader says ``stacked_views``, so
  ``lesionkit.engine.predict`` averages over them; flips and transposes are tensor views there (``tta_views``).
"""
from __future__ import annotations

import random
import zlib
from typing import Any, Sequence

import numpy as np
import torch
from fastai.data.core import DataLoaders, Datasets, TfmdDL
from fastai.data.transforms import Categorize, IntToFloatTensor, Normalize, ToTensor
from fastai.vision.augment import RandTransform
from fastai.vision.core import PILImage, TensorImage
from PIL import Image, ImageEnhance

from lesionkit.data.augment import ARL_SCALES, WorkerRNG, arl_crop
from lesionkit.data.loaders import (
    GetLabel,
    ReadImage,
    Stats,
    batch_tfms_for,
    build_dataloaders,
    check_rows,
    positions,
    prepare_split,
)
from lesionkit.data.table import LesionDataset

GRIDS = ("2x2+c", "3x3")
VIEWS = ("multicrop", "multiscale")  # flips: lesionkit.engine.tta_views acts on the batch tensor


def grid_boxes(grid: str, full: tuple[int, int] = (450, 600), patch: int = 224) -> list[tuple[int, int]]:
    """Top-left (y, x) of each patch, row-major; '2x2+c' appends the centre patch."""
    h, w = full
    if grid == "2x2+c":
        ys, xs = [0, h - patch], [0, w - patch]
        boxes = [(y, x) for y in ys for x in xs]
        return boxes + [((h - patch) // 2, (w - patch) // 2)]
    if grid == "3x3":
        ys = np.linspace(0, h - patch, 3).round().astype(int)
        xs = np.linspace(0, w - patch, 3).round().astype(int)
        return [(int(y), int(x)) for y in ys for x in xs]
    raise ValueError(f"grid={grid!r}: choose from {GRIDS}")


def _to_tensor(arrs: Sequence[np.ndarray]) -> TensorImage:
    return TensorImage(torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous())


class PatchGrid(RandTransform):
    """PILImage -> uint8 TensorImage (P, 3, patch, patch); train split: whole-image augmentation + patch dropout."""

    split_idx, order = None, 1

    def __init__(self, grid: str = "2x2+c", full: tuple[int, int] = (450, 600), patch: int = 224,
                 patch_dropout: float = 0.0, seed: int | None = None):
        super().__init__(p=1.0)
        self.boxes = grid_boxes(grid, full, patch)
        self.full, self.patch, self.patch_dropout = full, patch, patch_dropout
        self.rng, self.idx = WorkerRNG(seed), 1

    def before_call(self, b: Any, split_idx: int | None) -> None:
        self.idx, self.do = split_idx, True

    def _augment(self, img: Image.Image) -> Image.Image:
        r = self.rng.get()
        if r.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        if r.random() < 0.5:
            img = img.transpose(Image.FLIP_TOP_BOTTOM)
        img = ImageEnhance.Brightness(img).enhance(1 + r.uniform(-32 / 255, 32 / 255))
        return ImageEnhance.Color(img).enhance(1 + r.uniform(-0.5, 0.5))

    def encodes(self, img: PILImage) -> TensorImage:
        h, w = self.full
        img = img.resize((w, h), Image.BILINEAR)
        if self.idx == 0:
            img = self._augment(img)
        a = np.asarray(img)
        crops = [a[y:y + self.patch, x:x + self.patch] for y, x in self.boxes]
        if self.idx == 0 and self.patch_dropout > 0:
            r = self.rng.get()
            crops = [np.zeros_like(c) if r.random() < self.patch_dropout else c for c in crops]
        return _to_tensor(crops)


class Views(RandTransform):
    """PILImage -> uint8 TensorImage (V, 3, size, size) of test-time views (any split)."""

    split_idx, order = None, 1

    def __init__(self, kind: str = "multicrop", size: int = 224, grid: int = 3, scale: float = 1.5, seed: int = 6666):
        super().__init__(p=1.0)
        if kind not in VIEWS:
            raise ValueError(f"views={kind!r}: choose from {VIEWS}")
        self.kind, self.size, self.grid, self.scale, self.seed = kind, size, grid, scale, seed

    def before_call(self, b: Any, split_idx: int | None) -> None:
        self.do = True

    def encodes(self, img: PILImage) -> TensorImage:
        s = self.size
        if self.kind == "multicrop":
            big = int(round(self.scale * s))
            a = np.asarray(img.resize((big, big), Image.BILINEAR))
            pos = np.linspace(0, big - s, self.grid).round().astype(int)
            return _to_tensor([a[y:y + s, x:x + s] for y in pos for x in pos])
        rng = random.Random(self.seed ^ zlib.crc32(np.asarray(img)[::16, ::16].tobytes()))
        views = [arl_crop(img, sc, rng) for sc in ARL_SCALES for _ in range(2)] + [img]
        return _to_tensor([np.asarray(v.resize((s, s), Image.BILINEAR)) for v in views])


def patch_dls(ds: LesionDataset, train_idx: Any, valid_idx: Any, grid: str = "2x2+c", patch: int = 224,
              full: tuple[int, int] = (450, 600), bs: int = 5, patch_dropout: float = 0.0, seed: int = 0,
              num_workers: int = 0, norm: Stats | None = None, balanced: bool = False, verify: bool = True,
              leak_check: bool = True, device: Any = None, **kw: Any) -> DataLoaders:
    """DataLoaders of patch grids: x (bs, P, 3, patch, patch), y label_idx. Set patch dropout here or in the model,
    not in both."""
    tr, va = prepare_split(ds, train_idx, valid_idx, verify, leak_check)
    dsets = Datasets(ds.df, tfms=[[ReadImage(min(full))], [GetLabel(), Categorize(vocab=ds.classes, sort=False)]],
                     splits=[list(tr), list(va)])
    item = [PatchGrid(grid, full, patch, patch_dropout, seed)]
    dls = build_dataloaders(dsets, bs, item, batch_tfms_for([], norm), seed, num_workers, balanced,
                       ds.df["label"].to_numpy()[tr], device, **kw)
    dls.n_patches = len(item[0].boxes)
    return dls


def tta_dl(ds: LesionDataset, idx: Any = None, size: int = 224, views: str = "multicrop", bs: int = 16,
           norm: Stats | None = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), with_labels: bool = True,
           grid: int = 3, scale: float = 1.5, seed: int = 6666, num_workers: int = 0, verify: bool = True,
           device: Any = None) -> TfmdDL:
    """A loader of (B, V, 3, size, size) test-time views over rows `idx` of ds (all rows by default)."""
    pos = np.arange(len(ds.df)) if idx is None else positions(idx, len(ds.df), "idx")
    if verify:
        check_rows(ds, pos)
    rows = ds.df.iloc[pos]
    tfms: list = [[ReadImage(size)]]
    if with_labels:
        tfms.append([GetLabel(), Categorize(vocab=ds.classes, sort=False)])
    dsets = Datasets(rows, tfms=tfms)
    opts: dict[str, Any] = dict(bs=bs, shuffle=False, drop_last=False, num_workers=num_workers,
                                after_item=[Views(views, size, grid, scale, seed), ToTensor()],
                                after_batch=[IntToFloatTensor(), *([Normalize.from_stats(*norm)] if norm else [])])
    if device is not None:
        opts["device"] = device
    dl = TfmdDL(dsets, **opts)
    dl.stacked_views = True  # lesionkit.engine.predict: (B, V, ...) batches are views of one image
    return dl


__all__ = ["GRIDS", "VIEWS", "PatchGrid", "Views", "grid_boxes", "patch_dls", "tta_dl"]
