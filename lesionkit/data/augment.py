"""Augmentation presets as fastai transforms: fastai's defaults, the SIIM-ISIC 2020 1st-place recipe, ARL crops.

- "fastai": item Resize (squish) + fastai `aug_transforms` on the batch (flip_vert=True: dermoscopy has no up).
- "first_place": methods-b §A.6 on albumentations 2.x. RandomBrightness/RandomContrast -> two
  RandomBrightnessContrast, ShiftScaleRotate -> Affine, Cutout -> CoarseDropout with one fixed 0.375*S hole,
  GaussNoise var 5..30 -> std_range in [0, 1] units. Validation: Resize only.
- "arl": methods-a §2.3 crops computed on the fly (no 122k files): a random scale s in {0.2, 0.4, 0.6, 0.8} or the
  whole image (1 in 5), a random s*H x s*W crop inside a centred window enlarged by 500*s px (the intended rule; the
  code swaps H and W), resized to SxS; then flips and rotation up to 10 degrees on the batch.
- "none": Resize only.
"""
from __future__ import annotations

import os
import random
from typing import Any, Sequence

import numpy as np
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call at import

from fastai.vision.augment import Dihedral, RandTransform, Resize, ResizeMethod, aug_transforms  # noqa: E402
from fastai.vision.core import PILImage  # noqa: E402

PRESETS = ("fastai", "first_place", "arl", "dihedral", "none")
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
ARL_ISIC2017_STATS = ((0.7079, 0.5916, 0.5469), (0.0937, 0.1114, 0.1258))
ARL_SCALES = (0.2, 0.4, 0.6, 0.8)


def first_place_train(size: int, seed: int | None = None) -> Any:
    """The 1st-place training pipeline (albumentations Compose over an RGB uint8 array), ending at size x size."""
    import albumentations as A
    import cv2

    hole = int(0.375 * size)
    return A.Compose([
        A.Transpose(p=0.5), A.VerticalFlip(p=0.5), A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=0.75),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=0.75),
        A.OneOf([A.MotionBlur(blur_limit=5), A.MedianBlur(blur_limit=5), A.GaussianBlur(blur_limit=5),
                 A.GaussNoise(std_range=(np.sqrt(5) / 255, np.sqrt(30) / 255))], p=0.7),
        A.OneOf([A.OpticalDistortion(distort_limit=1.0), A.GridDistortion(num_steps=5, distort_limit=1.0),
                 A.ElasticTransform(alpha=3)], p=0.7),
        A.CLAHE(clip_limit=4.0, p=0.7),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.5),
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-15, 15), border_mode=cv2.BORDER_CONSTANT,
                 fill=0, p=0.85),
        A.Resize(size, size),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(hole, hole), hole_width_range=(hole, hole),
                        fill=0, p=0.7),
    ], seed=seed)  # albumentations draws from its own generators, which fastai's set_seed does not reach


def first_place_valid(size: int) -> Any:
    import albumentations as A

    return A.Compose([A.Resize(size, size)])


class AlbumentationsTfm(RandTransform):
    """Run an albumentations pipeline on a PILImage: `train` on the training split, `valid` elsewhere."""

    split_idx, order = None, 2

    def __init__(self, train: Any, valid: Any):
        super().__init__(p=1.0)
        self.train, self.valid, self.idx = train, valid, 1

    def before_call(self, b: Any, split_idx: int | None) -> None:
        self.idx, self.do = split_idx, True

    def encodes(self, img: PILImage) -> PILImage:
        aug = self.train if self.idx == 0 else self.valid
        return PILImage.create(aug(image=np.asarray(img))["image"])


class WorkerRNG:
    """A seeded random.Random per DataLoader worker: forked workers would otherwise share one state and draw the
    same augmentation sequence. Seeded from (seed, worker id), so runs with the same seed and workers repeat."""

    def __init__(self, seed: int | None = None):
        self.seed, self._worker, self._rng = seed, -2, random.Random(seed)

    def get(self) -> random.Random:
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        wid = -1 if info is None else info.id
        if wid != self._worker:
            self._worker = wid
            self._rng = random.Random(None if self.seed is None else self.seed * 1_000_003 + wid + 1)
        return self._rng


def arl_crop(img: Image.Image, scale: float, rng: random.Random) -> Image.Image:
    """A random scale*H x scale*W crop inside the centred window enlarged by 500*scale px (clipped to the image)."""
    w, h = img.size
    cw, ch = max(1, int(round(scale * w))), max(1, int(round(scale * h)))
    ww, wh = min(w, cw + int(500 * scale)), min(h, ch + int(500 * scale))
    x0, y0 = (w - ww) // 2, (h - wh) // 2
    x = x0 + rng.randint(0, max(0, ww - cw))
    y = y0 + rng.randint(0, max(0, wh - ch))
    return img.crop((x, y, x + cw, y + ch))


class ARLMultiScaleCrop(RandTransform):
    """ARL's multi-scale training crops on the fly (train split only); other splits get a plain squish resize."""

    split_idx, order = None, 1

    def __init__(self, size: int, scales: Sequence[float] = ARL_SCALES, p_whole: float = 0.2, seed: int | None = None):
        super().__init__(p=1.0)
        self.size, self.scales, self.p_whole = size, tuple(scales), p_whole
        self.rng, self.idx = WorkerRNG(seed), 1

    def before_call(self, b: Any, split_idx: int | None) -> None:
        self.idx, self.do = split_idx, True

    def encodes(self, img: PILImage) -> PILImage:
        rng = self.rng.get()
        if self.idx == 0 and rng.random() >= self.p_whole:
            img = arl_crop(img, rng.choice(self.scales), rng)
        return PILImage.create(img.resize((self.size, self.size), Image.BILINEAR))


def preset_tfms(preset: str, size: int, resize: str = "squish", seed: int | None = None) -> tuple[list, list]:
    """(item_tfms, batch_tfms) for `preset` at `size`; normalisation is added by the loader."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r}: choose from {PRESETS}")
    method = {"squish": ResizeMethod.Squish, "crop": ResizeMethod.Crop, "pad": ResizeMethod.Pad}[resize]
    if preset == "fastai":
        return [Resize(size, method=method)], aug_transforms(flip_vert=True)
    if preset == "first_place":
        return [AlbumentationsTfm(first_place_train(size, seed), first_place_valid(size))], []
    if preset == "arl":
        batch = aug_transforms(do_flip=True, flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0,
                               max_warp=0.0, p_affine=1.0, p_lighting=0.0)
        return [ARLMultiScaleCrop(size, seed=seed)], batch
    if preset == "dihedral":  # the 8 flips and quarter turns only: they keep a lesion's symmetry label
        return [Resize(size, method=method)], [Dihedral(p=1.0)]
    return [Resize(size, method=method)], []
