"""fastai DataLoaders over a LesionDataset: image only, image + metadata, image + mask, patch grids, TTA views.

Items are rows of `ds.df` (a DataFrame), so `dls.test_dl(ds.df.iloc[idx], with_labels=True)` or `test_dl(dls, ...)`
builds a test loader over any rows, including those of another dataset with the same classes (an external test
set). Before building, the rows are checked: no row on both sides, no lesion/patient on both sides (the leak
guard), and every image passes a cheap header + end-of-file check, so training never dies half an epoch in.

Speed (2-core CPU): JPEGs are decoded at a reduced DCT scale just above the training size (`images.load_rgb`
min_side); the item stage only resizes; random affine/lighting augmentation runs once per batch (fastai batch
transforms); workers are optional (`num_workers`).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from fastai.data.core import DataLoaders, Datasets, TfmdDL
from fastai.data.transforms import Categorize, IntToFloatTensor, Normalize, ToTensor
from fastai.torch_core import TensorBase
from fastai.vision.core import AddMaskCodes, PILImage, PILMask

from lesionkit.data.augment import IMAGENET_STATS, PRESETS, original_side, preset_tfms, record_decode_scale
from lesionkit.data.colour import shades_of_gray_pil
from lesionkit.data.errors import CHECK_HINT, DataError
from lesionkit.data.images import load_mask, load_rgb, quick_check
from lesionkit.data.metadata import MetaEncoder
from lesionkit.data.presize import auto_size, presized
from lesionkit.data.splits import assert_no_group_leak
from lesionkit.data.table import LesionDataset
from lesionkit.parallel.distributed import world_size

Stats = tuple[Sequence[float], Sequence[float]]


class ReadImage:
    """Row (or path) -> PILImage via the robust decoder; optional Shades-of-Gray colour constancy (p-norm).

    `presize`: read large originals from the pre-resized cache at that shorter side (`presize.presized`, written on
    first use; `python -m lesionkit data presize` fills it ahead), so they cost what small files cost. It must be
    at least `min_side`, or the cached copy would be upscaled. "auto" (the default): `presize.auto_size(min_side)`,
    which caches only originals over twice max(512, 2 x min_side); None reads the originals."""

    def __init__(self, min_side: int | None = None, colour_constancy: float | None = None,
                 presize: int | str | None = "auto"):
        presize = auto_size(min_side) if presize == "auto" else (None if presize in ("off", 0) else presize)
        if presize and min_side and presize < min_side:
            raise ValueError(f"presize={presize} is below the training size {min_side}: the cached images would be "
                             "upscaled; use presize >= size (e.g. 2 x size) or None")
        self.min_side, self.colour_constancy, self.presize = min_side, colour_constancy, presize
        self._as_they_are: set[str] = set()  # small originals, judged once: no second header read every epoch
        self._sides: dict[str, int] = {}  # each original's shorter side, read once (ARL's decode scale)

    def __call__(self, item: Any) -> PILImage:
        path = source = item["path"] if isinstance(item, (pd.Series, dict)) else item
        if self.presize and str(path) not in self._as_they_are:
            source, path = path, presized(path, self.presize)
            if path == Path(source):
                self._as_they_are.add(str(source))
        img = load_rgb(path, min_side=self.min_side)
        if self.colour_constancy:
            img = shades_of_gray_pil(img, self.colour_constancy)
        side = self._sides.get(str(source))
        if side is None:
            side = self._sides[str(source)] = original_side(source)
        return PILImage.create(record_decode_scale(img, source, side))  # ARL crops are sized in the original's pixels


class ReadMask:
    """Row -> PILMask with values {0, 1} (codes: background, lesion)."""

    def __call__(self, item: Any) -> PILMask:
        path = item["mask_path"] if isinstance(item, (pd.Series, dict)) else item
        return PILMask.create(np.asarray(load_mask(path)))


class GetLabel:
    def __call__(self, item: Any) -> str:
        return item["label"]


class TensorMeta(TensorBase):
    """Encoded metadata; a fastai tensor type so `show_batch` works (it shows nothing for it)."""

    def show(self, ctx: Any = None, **kwargs: Any) -> Any:
        return ctx


class GetMeta:
    """Row -> float tensor of the encoded metadata columns written by `add_meta_columns`."""

    def __init__(self, cols: Sequence[str]):
        self.cols = list(cols)

    def __call__(self, item: Any) -> TensorMeta:
        return TensorMeta(torch.tensor(np.asarray([item[c] for c in self.cols], dtype=np.float32)))


class BalancedDL(TfmdDL):
    """Training loader that samples rows with replacement, weight 1/(class count): each class equally often."""

    def __init__(self, dataset: Any = None, bs: int | None = None, wgts: np.ndarray | None = None, **kwargs: Any):
        n = len(dataset) if dataset is not None else 0
        w = np.ones(n) if wgts is None else np.asarray(wgts, float)
        self.wgts = w / w.sum() if len(w) else w
        super().__init__(dataset=dataset, bs=bs, **kwargs)

    def get_idxs(self) -> list[int]:
        if self.n == 0 or not self.shuffle:
            return super().get_idxs()
        gen = np.random.default_rng(self.rng.randint(0, 2**31 - 1))
        return list(gen.choice(self.n, self.n, p=self.wgts))


class RepeatDL(TfmdDL):
    """Training loader whose epoch visits every row `repeats` times, shuffled: ARL's 61 crops per image per epoch
    drawn on the fly (each visit gets a fresh random crop). Loaders made from it by ``new`` (valid, test) see each
    row once."""

    def __init__(self, dataset: Any = None, bs: int | None = None, repeats: int = 1, **kwargs: Any):
        if repeats < 1:
            raise ValueError(f"repeats={repeats}: give a whole number >= 1 (visits of every row per epoch)")
        self.repeats = repeats
        if dataset is not None and repeats > 1:
            kwargs["n"] = len(dataset) * repeats
        super().__init__(dataset=dataset, bs=bs, **kwargs)

    def get_idxs(self) -> list[int]:
        n = len(self.dataset) if self.dataset is not None else 0
        return [i % n for i in super().get_idxs()] if n and self.repeats > 1 else super().get_idxs()


def positions(idx: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(idx)
    if a.dtype == bool:
        a = np.flatnonzero(a)
    a = a.astype(int)
    if len(a) and (a.min() < 0 or a.max() >= n):
        raise IndexError(f"{what}: positions must be in [0, {n}), got min {a.min()} max {a.max()}")
    return a


def check_rows(ds: LesionDataset, idx: np.ndarray, need_mask: bool = False) -> None:
    """Raise DataError listing every unreadable image (header + end-of-file check) among rows `idx`."""
    problems = []
    for i in idx:
        row = ds.df.iloc[i]
        msg = quick_check(row["path"]) if isinstance(row["path"], str) else f"{row['image_id']}: no image path"
        if msg:
            problems.append(msg)
        if need_mask:
            if not isinstance(row["mask_path"], str):
                problems.append(f"{row['image_id']}: no mask (mask_path is empty)")
            else:
                m = quick_check(row["mask_path"])
                if m:
                    problems.append(m)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(f"{len(problems)} problem(s) in the rows given to the loader:\n  {shown}{more}\n"
                        f"Fix or drop those rows ({CHECK_HINT}), or pass verify=False to skip this check.")


def prepare_split(ds: LesionDataset, train_idx: Any, valid_idx: Any, verify: bool, leak_check: bool,
                  need_mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the two parts, after the leak guard and a quick read of every file (both optional)."""
    n = len(ds.df)
    tr, va = positions(train_idx, n, "train_idx"), positions(valid_idx, n, "valid_idx")
    both = np.intersect1d(tr, va)
    if len(both):
        ids = ", ".join(ds.df["image_id"].iloc[both[:10]])
        raise DataError(f"{len(both)} row(s) are in both train_idx and valid_idx (e.g. {ids})")
    if leak_check:
        assert_no_group_leak(ds.df, {"train": tr, "valid": va})
    if verify:
        check_rows(ds, np.concatenate([tr, va]), need_mask=need_mask)
    return tr, va


def batch_tfms_for(batch_tfms: list, norm: Stats | None) -> list:
    out = [IntToFloatTensor(), *batch_tfms]
    if norm is not None:
        out.append(Normalize.from_stats(*norm))
    return out


def loader_workers(num_workers: int) -> int:
    """``num_workers`` as given, or for -1 (auto): none on CPU, where workers and the training step compete for
    the same cores; on a GPU, the cores shared by this machine's training processes, at most 8 each."""
    if num_workers >= 0:
        return num_workers
    if not torch.cuda.is_available():
        return 0
    import os

    return max(1, min(8, (os.cpu_count() or 1) // max(1, min(world_size(), torch.cuda.device_count()))))


def build_dataloaders(dsets: Datasets, bs: int, item_tfms: list, batch_tfms: list, seed: int, num_workers: int,
                 balanced: bool, train_labels: np.ndarray | None, device: Any, **kw: Any) -> DataLoaders:
    opts: dict[str, Any] = dict(bs=bs, after_item=[*item_tfms, ToTensor()], after_batch=batch_tfms,
                                num_workers=loader_workers(num_workers), **kw)
    if torch.cuda.is_available():
        opts.setdefault("pin_memory", True)  # page-locked batches: host-to-GPU copies overlap compute
    if device is not None:
        opts["device"] = device
    if balanced:
        counts = pd.Series(train_labels).value_counts()
        wgts = 1.0 / pd.Series(train_labels).map(counts).to_numpy(float)
        opts.update(dl_type=BalancedDL, dl_kwargs=({"wgts": wgts}, {}))
    dls = dsets.dataloaders(**opts)
    dls.train.rng = random.Random(seed)  # shuffle order from `seed`, without touching the global RNG
    return dls


def image_dls(ds: LesionDataset, train_idx: Any, valid_idx: Any, size: int = 224, bs: int = 32,
              preset: str = "fastai", seed: int = 0, num_workers: int = 0, norm: Stats | None = IMAGENET_STATS,
              resize: str = "squish", colour_constancy: float | None = None, balanced: bool = False,
              verify: bool = True, leak_check: bool = True, device: Any = None,
              presize: int | str | None = "auto", min_side: int | None = None, **kw: Any) -> DataLoaders:
    """Image-classification DataLoaders: x = normalised (bs, 3, size, size) images, y = label_idx, vocab = classes.

    `preset`: fastai | first_place | arl | dihedral | none (see augment.py). `norm`: (mean, std) or None for inputs in [0, 1].
    `colour_constancy`: Shades-of-Gray p (e.g. 6) or None. `balanced`: class-balanced sampling of the training
    rows. `verify`/`leak_check`: the pre-flight checks described in the module docstring. `presize`: read large
    originals from the pre-resized cache at that shorter side (see `ReadImage`; "auto": only large originals);
    None reads the originals. `min_side`: decode JPEGs at least this large (default `size`; ARL's crops need more).
    """
    tr, va = prepare_split(ds, train_idx, valid_idx, verify, leak_check)
    item, batch = preset_tfms(preset, size, resize, seed)
    dsets = Datasets(ds.df, tfms=[[ReadImage(min_side or size, colour_constancy, presize)],
                                  [GetLabel(), Categorize(vocab=ds.classes, sort=False)]],
                     splits=[list(tr), list(va)])
    dls = build_dataloaders(dsets, bs, item, batch_tfms_for(batch, norm), seed, num_workers, balanced,
                       ds.df["label"].to_numpy()[tr], device, **kw)
    return dls


def add_meta_columns(df: pd.DataFrame, encoder: MetaEncoder) -> pd.DataFrame:
    """A copy of df with the encoder's features as columns `meta:<name>` (what GetMeta reads)."""
    feats = encoder.transform(df)
    out = df.copy()
    for j, name in enumerate(encoder.feature_names):
        out[f"meta:{name}"] = feats[:, j]
    return out


def meta_dls(ds: LesionDataset, train_idx: Any, valid_idx: Any, size: int = 224, bs: int = 32,
             preset: str = "fastai", seed: int = 0, num_workers: int = 0, norm: Stats | None = IMAGENET_STATS,
             encoder: MetaEncoder | None = None, colour_constancy: float | None = None, balanced: bool = False,
             verify: bool = True, leak_check: bool = True, device: Any = None, presize: int | str | None = "auto",
             **kw: Any) -> DataLoaders:
    """Image + metadata DataLoaders (n_inp=2, batches (image, meta, y)) for a plain `Learner` whose model takes
    forward(image, meta). The encoder is fitted on the training rows only (unless given already fitted) and kept
    as `dls.meta_encoder` (save it with the run: `dls.meta_encoder.save(path)`); `dls.n_meta` is its width.
    `presize`: as in `image_dls`."""
    tr, va = prepare_split(ds, train_idx, valid_idx, verify, leak_check)
    encoder = encoder or MetaEncoder()
    if not encoder.fitted:
        encoder.fit(ds.df.iloc[tr])
    df = add_meta_columns(ds.df, encoder)
    cols = [f"meta:{n}" for n in encoder.feature_names]
    item, batch = preset_tfms(preset, size, "squish", seed)
    dsets = Datasets(df, tfms=[[ReadImage(size, colour_constancy, presize)], [GetMeta(cols)],
                               [GetLabel(), Categorize(vocab=ds.classes, sort=False)]],
                     splits=[list(tr), list(va)], n_inp=2)
    dls = build_dataloaders(dsets, bs, item, batch_tfms_for(batch, norm), seed, num_workers, balanced,
                       ds.df["label"].to_numpy()[tr], device, **kw)
    dls.meta_encoder, dls.n_meta = encoder, encoder.n_features
    return dls


def mask_dls(ds: LesionDataset, train_idx: Any, valid_idx: Any, size: int = 224, bs: int = 16,
             preset: str = "fastai", seed: int = 0, num_workers: int = 0, norm: Stats | None = IMAGENET_STATS,
             verify: bool = True, leak_check: bool = True, device: Any = None, presize: int | str | None = "auto",
             **kw: Any) -> DataLoaders:
    """Image + lesion-mask DataLoaders (segmentation: y is a (bs, size, size) mask of 0/1, codes background/lesion).
    Geometric augmentation is applied to image and mask together; only presets 'fastai' and 'none' qualify.
    `presize` (images only; masks are read as they are, both are resized to `size`): as in `image_dls`."""
    if preset not in ("fastai", "none"):
        raise ValueError(f"preset={preset!r}: mask loaders support 'fastai' and 'none' (the others are image-only)")
    tr, va = prepare_split(ds, train_idx, valid_idx, verify, leak_check, need_mask=True)
    item, batch = preset_tfms(preset, size, "squish", seed)
    dsets = Datasets(ds.df, tfms=[[ReadImage(size, presize=presize)],
                                  [ReadMask(), AddMaskCodes(codes=["background", "lesion"])]],
                     splits=[list(tr), list(va)])
    return build_dataloaders(dsets, bs, item, batch_tfms_for(batch, norm), seed, num_workers, False, None, device, **kw)


def test_dl(dls: DataLoaders, source: LesionDataset | pd.DataFrame, idx: Any = None, with_labels: bool = True,
            encoder: MetaEncoder | None = None, verify: bool = True, **kw: Any) -> TfmdDL:
    """A loader with the validation transforms over rows `idx` of `source` (any dataset with the same classes)."""
    df = source.df if isinstance(source, LesionDataset) else source
    rows = df if idx is None else df.iloc[positions(idx, len(df), "idx")]
    if with_labels:
        vocab = list(dls.vocab) if hasattr(dls, "vocab") else None
        if vocab is not None:
            unknown = sorted(set(rows["label"].astype(str)) - set(map(str, vocab)))
            if unknown:
                raise DataError(f"labels {unknown} are not in the loaders' classes {vocab}; map them first")
    if verify:
        bad = [m for m in (quick_check(p) for p in rows["path"]) if m]
        if bad:
            raise DataError(f"{len(bad)} unreadable image(s) in the test rows: " + "; ".join(bad[:10]))
    enc = encoder or getattr(dls, "meta_encoder", None)
    if enc is not None:
        rows = add_meta_columns(rows, enc)
    return dls.test_dl(rows, with_labels=with_labels, **kw)


test_dl.__test__ = False  # a library function, not a pytest test, wherever a test module imports it


__all__ = ["PRESETS", "BalancedDL", "RepeatDL", "ReadImage", "ReadMask", "add_meta_columns", "check_rows", "image_dls", "prepare_split",
           "mask_dls", "meta_dls", "test_dl"]
