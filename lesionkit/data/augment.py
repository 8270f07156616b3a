"""Augmentation presets as fastai transforms: fastai's defaults, the SIIM-ISIC 2020 1st-place recipe, ARL crops.

- "fastai": item Resize (squish) + fastai `aug_transforms` on the batch (flip_vert=True: dermoscopy has no up).
- "first_place": methods-b §A.6 on albumentations 2.x. RandomBrightness/RandomContrast -> two
  RandomBrightnessContrast, ShiftScaleRotate -> Affine, Cutout -> CoarseDropout with one fixed 0.375*S hole,
  GaussNoise var 5..30 -> std_range in [0, 1] units. ElasticTransform(alpha=3) is 0.4.6's (`ElasticTransform046`:
  sigma 50, alpha_affine 50 px, reflect-101 borders), which 2.x no longer has; `elastic="albumentations2"` keeps
  2.x's plain elastic field. Validation: Resize only.
- "arl": methods-a §2.3 crops computed on the fly (no 122k files): the whole image (1 in 61, as the code's 61 files
  per image hold one) or a random scale s in {0.2, 0.4, 0.6, 0.8}, a random s*H x s*W crop inside a centred window
  enlarged by 500*s px (the intended rule; the code swaps H and W), resized to SxS; then, on the batch, the code's
  train_mel.py transforms: horizontal and vertical flips (p=0.5 each; no 90-degree turn, no transpose) and a
  rotation of up to 10 degrees with black corners (torchvision's RandomRotation fill). The 500*s px are pixels of
  the original file: the loader decodes large JPEGs at a reduced scale and records it (`DECODE_SCALE`), and the
  window is scaled by it (`arl_box`). `arl_decode_side`: the decode the loader needs so the smallest crop still
  holds `size` pixels.
- "arl_dihedral": the same crops, then fastai's `Dihedral` (any of the 8 flips, quarter turns and transposes, p=0.5)
  and the rotation with reflection padding: lesionkit's ARL augmentation before issue 30.
- "none": Resize only.
"""
from __future__ import annotations

import functools
import os
import random
from typing import Any, Sequence

import numpy as np
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network call at import

from fastai.vision.augment import (  # noqa: E402
    Dihedral,
    PadMode,
    RandTransform,
    Resize,
    ResizeMethod,
    Rotate,
    aug_transforms,
    setup_aug_tfms,
)
from fastai.vision.core import PILImage  # noqa: E402

PRESETS = ("fastai", "first_place", "arl", "arl_dihedral", "dihedral", "none")
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
ARL_ISIC2017_STATS = ((0.7079, 0.5916, 0.5469), (0.0937, 0.1114, 0.1258))
ARL_SCALES = (0.2, 0.4, 0.6, 0.8)
ARL_P_WHOLE = 1 / 61  # generate_patch_images.py: 15 crops x 4 scales + 1 whole-image resize per image
ARL_PRESETS = ("arl", "arl_dihedral")  # the multi-scale crops, with the code's flips or with fastai's Dihedral
HV_FLIPS = (0, 1, 2, 4)  # fastai dihedral_mat indices of identity, horizontal, vertical and both flips
DECODE_SCALE = "lesionkit_decode_scale"  # PIL info key: decoded pixels per pixel of the original file
ELASTIC = ("0.4.6", "albumentations2")


def original_side(source: Any) -> int:
    """The shorter side of the image file at `source` from its header (0 when it cannot be read)."""
    try:
        with Image.open(source) as full:
            return min(full.size)
    except (OSError, ValueError, TypeError):
        return 0


def record_decode_scale(img: Image.Image, source: Any, side: int | None = None) -> Image.Image:
    """Store in ``img.info`` how much smaller than the file at `source` (shorter side `side`, read from its header
    when not given) the decoded `img` is (the shorter sides' ratio, so EXIF rotation does not matter): ARL's crop
    window is defined in the original's pixels."""
    side = original_side(source) if side is None else side
    if side:
        img.info[DECODE_SCALE] = min(img.size) / side
    return img


def elastic_046(img: np.ndarray, alpha: float, sigma: float, alpha_affine: float, random_state: int) -> np.ndarray:
    """albumentations 0.4.6's ``F.elastic_transform`` (approximate=False, linear, reflect-101): an affine warp that
    moves three points around the centre by U(-alpha_affine, alpha_affine) px, then a displacement field of
    uniform noise smoothed by a Gaussian of `sigma` and scaled by `alpha`; one RandomState feeds both, in order."""
    import cv2
    from scipy.ndimage import gaussian_filter

    rs = np.random.RandomState(random_state)
    h, w = img.shape[:2]
    centre, half = np.float32((h, w)) // 2, min(h, w) // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])  # (row, col) as 0.4.6
    pts2 = pts1 + rs.uniform(-alpha_affine, alpha_affine, size=pts1.shape).astype(np.float32)
    border = cv2.BORDER_REFLECT_101
    img = cv2.warpAffine(img, cv2.getAffineTransform(pts1, pts2), (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
    dx = np.float32(gaussian_filter(rs.rand(h, w) * 2 - 1, sigma) * alpha)
    dy = np.float32(gaussian_filter(rs.rand(h, w) * 2 - 1, sigma) * alpha)
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    return cv2.remap(img, np.float32(x + dx), np.float32(y + dy), interpolation=cv2.INTER_LINEAR, borderMode=border)


@functools.cache
def _elastic_class() -> type:
    """Built on first use (albumentations costs ~1 s to import); reachable as ``augment.ElasticTransform046``."""
    import albumentations as A

    class ElasticTransform046(A.ImageOnlyTransform):
        """``A.ElasticTransform`` of albumentations 0.4.6 (defaults sigma 50, alpha_affine 50), which 2.x dropped:
        the affine part is most of its effect at alpha=3. Seeded through the Compose's ``seed``."""

        def __init__(self, alpha: float = 1.0, sigma: float = 50.0, alpha_affine: float = 50.0, p: float = 0.5):
            super().__init__(p=p)
            self.alpha, self.sigma, self.alpha_affine = alpha, sigma, alpha_affine

        def get_params(self) -> dict[str, Any]:
            return {"random_state": self.py_random.randint(0, 10000)}  # 0.4.6: random.randint(0, 10000)

        def apply(self, img: np.ndarray, random_state: int = 0, **params: Any) -> np.ndarray:
            return elastic_046(img, self.alpha, self.sigma, self.alpha_affine, random_state)

        def get_transform_init_args_names(self) -> tuple[str, ...]:
            return ("alpha", "sigma", "alpha_affine")

    ElasticTransform046.__module__, ElasticTransform046.__qualname__ = __name__, "ElasticTransform046"  # pickles by
    return ElasticTransform046  # name (worker processes), through __getattr__ below


def __getattr__(name: str) -> Any:
    if name == "ElasticTransform046":
        return _elastic_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def first_place_train(size: int, seed: int | None = None, elastic: str = "0.4.6") -> Any:
    """The 1st-place training pipeline (albumentations Compose over an RGB uint8 array), ending at size x size.
    `elastic`: "0.4.6" (the code's library: alpha 3, sigma 50, alpha_affine 50) or "albumentations2" (2.x's
    ElasticTransform(alpha=3): no affine part, Gaussian noise, constant borders)."""
    import albumentations as A
    import cv2

    if elastic not in ELASTIC:
        raise ValueError(f"elastic={elastic!r}: choose from {ELASTIC}")
    hole = int(0.375 * size)
    warp = _elastic_class()(alpha=3) if elastic == "0.4.6" else A.ElasticTransform(alpha=3)
    pipeline = A.Compose([
        A.Transpose(p=0.5), A.VerticalFlip(p=0.5), A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.0, p=0.75),
        A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.2, p=0.75),
        A.OneOf([A.MotionBlur(blur_limit=5), A.MedianBlur(blur_limit=5), A.GaussianBlur(blur_limit=5),
                 A.GaussNoise(std_range=(np.sqrt(5) / 255, np.sqrt(30) / 255))], p=0.7),
        A.OneOf([A.OpticalDistortion(distort_limit=1.0), A.GridDistortion(num_steps=5, distort_limit=1.0),
                 warp], p=0.7),
        A.CLAHE(clip_limit=4.0, p=0.7),
        A.HueSaturationValue(hue_shift_limit=10, sat_shift_limit=20, val_shift_limit=10, p=0.5),
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-15, 15), border_mode=cv2.BORDER_CONSTANT,
                 fill=0, p=0.85),
        A.Resize(size, size),
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(hole, hole), hole_width_range=(hole, hole),
                        fill=0, p=0.7),
    ], seed=seed)  # albumentations draws from its own generators, which fastai's set_seed does not reach
    return seed_pipeline(pipeline, seed)


def first_place_valid(size: int) -> Any:
    import albumentations as A

    return A.Compose([A.Resize(size, size)])


def album_nodes(pipeline: Any) -> list[Any]:
    """An albumentations pipeline and every transform nested in it, in order: each keeps generators of its own."""
    return [pipeline, *(n for child in getattr(pipeline, "transforms", []) for n in album_nodes(child))]


def derived_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative `parts` (numpy's SeedSequence: nearby inputs give unrelated streams)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]) >> 1


def seed_pipeline(pipeline: Any, seed: int | None) -> Any:
    """Give every transform of an albumentations pipeline its own stream from `seed`. albumentations 2.x seeds each
    one with the Compose's seed itself, so identical streams make Transpose, VerticalFlip and HorizontalFlip (and the
    two brightness/contrast steps) fire together or not at all."""
    for i, node in enumerate(album_nodes(pipeline)):
        s = None if seed is None else derived_seed(seed, i)
        node.random_generator, node.py_random = np.random.default_rng(s), random.Random(s)
    return pipeline


def torch_seed() -> int:
    """The seed torch gave this process's random streams: in a DataLoader worker, the worker's ``info.seed`` (the
    loader's base seed, drawn from the main process's torch RNG each time the workers start, i.e. every epoch unless
    they persist, plus the worker id); in the main process, ``torch.initial_seed()`` (the stage's seed once the
    engine has seeded it). Odd for workers and even for the main process, so the two never coincide."""
    import torch.utils.data

    info = torch.utils.data.get_worker_info()
    return 2 * int(info.seed) + 1 if info is not None else 2 * torch.initial_seed()


class WorkerRNG:
    """A random.Random that follows torch's seeding: reseeded from (seed, :func:`torch_seed`) whenever that changes,
    so forked DataLoader workers draw different sequences, each epoch's workers draw new ones, every stage starts
    its own, and a run with the same seed (torch seeded by ``seed_everything``) and workers repeats exactly."""

    def __init__(self, seed: int | None = None):
        self.seed, self._worker, self._rng = seed, None, random.Random(seed)

    def get(self) -> random.Random:
        self.follow()
        return self._rng

    def follow(self) -> bool:
        """Reseed if this process's torch seed changed since the last draw; True when it did."""
        key = torch_seed()
        if key == self._worker:
            return False
        parts = (key,) if self.seed is None else (self.seed, key)
        self._worker, self._rng = key, random.Random(derived_seed(*parts))
        return True


class AlbumentationsTfm(RandTransform):
    """Run an albumentations pipeline on a PILImage: `train` on the training split, `valid` elsewhere. The training
    pipeline is reseeded through a :class:`WorkerRNG` (its generators would otherwise be copied into every worker
    and replay the same draws every epoch)."""

    split_idx, order = None, 2

    def __init__(self, train: Any, valid: Any):
        super().__init__(p=1.0)
        self.train, self.valid, self.idx = train, valid, 1
        self.rng = WorkerRNG(getattr(train, "seed", None))

    def before_call(self, b: Any, split_idx: int | None) -> None:
        self.idx, self.do = split_idx, True

    def encodes(self, img: PILImage) -> PILImage:
        aug = self.train if self.idx == 0 else self.valid
        if self.idx == 0 and self.rng.follow():
            seed_pipeline(self.train, self.rng.get().getrandbits(63))
        return PILImage.create(aug(image=np.asarray(img))["image"])


def arl_box(w: int, h: int, scale: float, rng: random.Random) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a random scale*H x scale*W crop inside the centred window enlarged by
    500*scale px (clipped to the image), for an image of w x h pixels of the original file."""
    cw, ch = max(1, int(round(scale * w))), max(1, int(round(scale * h)))
    ww, wh = min(w, cw + int(500 * scale)), min(h, ch + int(500 * scale))
    x0, y0 = (w - ww) // 2, (h - wh) // 2
    x = x0 + rng.randint(0, max(0, ww - cw))
    y = y0 + rng.randint(0, max(0, wh - ch))
    return x, y, x + cw, y + ch


def arl_crop(img: Image.Image, scale: float, rng: random.Random) -> Image.Image:
    """`arl_box` in the original file's pixels, cut from `img`: a reduced decode (``img.info[DECODE_SCALE]`` < 1,
    set by the loader) gets the same window scaled down, so the 500*scale px margin stays the code's."""
    k = float(img.info.get(DECODE_SCALE, 1.0))
    w, h = img.size
    box = arl_box(max(1, round(w / k)), max(1, round(h / k)), scale, rng)
    left, top = min(w - 1, round(box[0] * k)), min(h - 1, round(box[1] * k))
    return img.crop((left, top, max(left + 1, min(w, round(box[2] * k))), max(top + 1, min(h, round(box[3] * k)))))


def arl_decode_side(size: int, scales: Sequence[float] = ARL_SCALES) -> int:
    """The `min_side` to give the loader's decoder (which keeps at least twice it) so the smallest crop still
    spans `size` pixels: no crop is upsampled from a coarser decode than the full-size file gives."""
    return int(np.ceil(size / (2 * min(scales))))


class ARLMultiScaleCrop(RandTransform):
    """ARL's multi-scale training crops on the fly (train split only); other splits get a plain squish resize."""

    split_idx, order = None, 1

    def __init__(self, size: int, scales: Sequence[float] = ARL_SCALES, p_whole: float = ARL_P_WHOLE,
                 seed: int | None = None):
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


def hv_flip_draw(x: Any) -> Any:
    """One of identity, horizontal, vertical or both flips per image, uniformly (fastai's dihedral indices): the
    code's independent RandomHorizontalFlip and RandomVerticalFlip at p=0.5, without quarter turns or transposes."""
    import torch

    choices = torch.tensor(HV_FLIPS, device=x.device)
    return choices[torch.randint(0, len(HV_FLIPS), (x.size(0),), device=x.device)]


def arl_code_flips_rotation(max_deg: float = 10.0) -> list:
    """train_mel.py's batch augmentation as one fastai affine step: H/V flips and a rotation in ±`max_deg` degrees
    on every image, corners filled black (torchvision's RandomRotation fills with 0 before normalisation)."""
    return setup_aug_tfms([Dihedral(p=1.0, draw=hv_flip_draw, pad_mode=PadMode.Zeros),
                           Rotate(max_deg=max_deg, p=1.0, pad_mode=PadMode.Zeros)])


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
        return [ARLMultiScaleCrop(size, seed=seed)], arl_code_flips_rotation()
    if preset == "arl_dihedral":
        batch = aug_transforms(do_flip=True, flip_vert=True, max_rotate=10.0, max_zoom=1.0, max_lighting=0.0,
                               max_warp=0.0, p_affine=1.0, p_lighting=0.0)
        return [ARLMultiScaleCrop(size, seed=seed)], batch
    if preset == "dihedral":  # the 8 flips and quarter turns only: they keep a lesion's symmetry label
        return [Resize(size, method=method)], [Dihedral(p=1.0)]
    return [Resize(size, method=method)], []
