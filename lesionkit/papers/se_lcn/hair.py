"""Hair removal, SE-LCN's preprocessing of every image (methods-a §3.3, the code's utils/inpaint.py): grey image →
morphological black-hat with a 17×17 cross → threshold 10 → ``cv2.inpaint`` (radius 1, Telea). The black-hat keeps
thin structures darker than their surroundings (hairs); the inpainting fills them from the neighbouring skin.

``remove_hair`` is the pure function. ``hair_free`` gives a dataset whose images are hair-free copies, written once
to a cache keyed by the source (as ``presize``) at the resolution the loaders decode, so the segmenter, the symmetry
net and the classifier all read them, as the original trains every stage on the inpainted images.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lesionkit.data.images import load_rgb
from lesionkit.data.presize import source_digest, write_image_atomic
from lesionkit.data.table import LesionDataset
from lesionkit.utils.paths import cache_root

KERNEL_SHAPES = ("cross", "ellipse", "rect")


def remove_hair(image: np.ndarray | Image.Image, kernel_size: int = 17, threshold: int = 10, radius: int = 1,
                shape: str = "cross", code_grey: bool = False) -> np.ndarray:
    """The hair-free copy of an RGB uint8 image (H, W, 3), same shape and dtype.

    ``shape``: the structuring element (the code's ``getStructuringElement(1, ...)`` is a cross). ``code_grey``: the
    code reads BGR (cv2.imread) and converts with RGB2GRAY, so its grey weights red 0.114 and blue 0.299; the default
    is the usual luma (red 0.299) of the paper's "grayscale"."""
    import cv2

    if shape not in KERNEL_SHAPES:
        raise ValueError(f"shape={shape!r}: choose one of {KERNEL_SHAPES}")
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"remove_hair expects an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}")
    rgb = np.ascontiguousarray(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY if code_grey else cv2.COLOR_RGB2GRAY)
    morph = {"cross": cv2.MORPH_CROSS, "ellipse": cv2.MORPH_ELLIPSE, "rect": cv2.MORPH_RECT}[shape]
    kernel = cv2.getStructuringElement(morph, (kernel_size, kernel_size))
    blackhat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel)
    _, hair = cv2.threshold(blackhat, threshold, 255, cv2.THRESH_BINARY)
    return cv2.inpaint(rgb, hair, radius, cv2.INPAINT_TELEA)


def hair_free_path(src: str | Path, min_side: int, root: str | Path | None = None) -> Path:
    """The cached hair-free PNG of ``src`` (written now unless it exists), decoded as the loaders decode it
    (``load_rgb(min_side=...)``: originals up to 4 × min_side as they are, so HAM10000's 600×450 at 256 px)."""
    src = Path(src)  # a missing file raises the library's MissingFileError, naming the file and the fix
    dest = Path(root or cache_root() / "hair") / f"{src.stem}-{source_digest(src, int(min_side), 'v1')}.png"
    if not dest.exists():
        write_image_atomic(Image.fromarray(remove_hair(load_rgb(src, min_side=min_side))), dest)
    return dest


def hair_free(ds: Any, min_side: int, root: str | Path | None = None, workers: int = 2) -> Any:
    """A copy of dataset ``ds`` whose ``path`` column points at hair-free copies of its images (``info`` records
    it); masks and labels are unchanged."""
    with ThreadPoolExecutor(max(1, workers)) as pool:  # OpenCV releases the GIL
        paths = list(pool.map(lambda p: str(hair_free_path(p, min_side, root)), ds.df["path"]))
    df = ds.df.copy()
    df["path"] = paths
    return LesionDataset(ds.name, ds.root, df, ds.classes, ds.task, {**ds.info, "hair_removal": True})


__all__ = ["KERNEL_SHAPES", "hair_free", "hair_free_path", "remove_hair"]
