"""Robust image decoding: every file the readers can point at becomes an 8-bit RGB PIL image, or a clear error.

Handles what real dermoscopy folders contain: CMYK and grayscale JPEGs, palette/RGBA/16-bit PNGs, EXIF-rotated
phone photos, BMPs (PH2), and very large images (decoded straight to a reduced size where the format allows).
Empty, truncated and corrupt files raise ImageDecodeError naming the file, never a bare PIL traceback mid-epoch.
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lesionkit.data.errors import CHECK_HINT, ImageDecodeError, ImageTooLargeError, MissingFileError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Refuse beyond this many pixels (Pillow's own bomb guard is 2 x 89.5 MP); large dermoscopy photos are ~25 MP.
DEFAULT_MAX_PIXELS = 400_000_000
MIN_SIDE = 8  # smaller images are placeholders or thumbnails: refused rather than upsampled into noise
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _fail(path: str | Path, reason: str) -> ImageDecodeError:
    return ImageDecodeError(f"{path}: {reason}. Re-export or replace the file, or drop its row ({CHECK_HINT}).")


def open_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open lazily (header only) with clear errors; our `max_pixels` replaces Pillow's bomb warning/error."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: file not found. Restore it or drop its row ({CHECK_HINT}).") from None
    if not stat.S_ISREG(st.st_mode):  # opening a FIFO would block forever
        raise _fail(path, "not a regular file (a FIFO, socket, device or folder named like an image)")
    if st.st_size == 0:
        raise _fail(path, "file is empty (0 bytes)")
    old = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our own limit below, so huge-but-legal images are not refused by Pillow
        img = Image.open(path)
    except UnidentifiedImageError:
        raise _fail(path, "not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        raise _fail(path, f"cannot open image ({e})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        img.close()
        raise _fail(path, f"{w}x{h} px is too small to show a lesion (under {MIN_SIDE} px a side; a thumbnail or a "
                          "placeholder?)")
    if w * h > max_pixels:
        img.close()
        raise ImageTooLargeError(f"{path}: {w}x{h} = {w * h / 1e6:.0f} MP exceeds max_pixels={max_pixels / 1e6:.0f} MP."
                                 " Downscale the file, or pass a larger max_pixels if it is genuine.")
    return img


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. 16-bit data is rescaled (not clipped); alpha is flattened onto `background`."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _SIXTEEN_BIT:
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if a.max() > 255 or mode != "I" else 255.0
        a8 = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a8).convert("RGB")
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = np.nanmin(a), np.nanmax(a)
        scale = 255.0 if hi <= 1.0 and lo >= 0 else 1.0
        return Image.fromarray(np.clip(a * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK (Pillow handles Adobe-inverted CMYK JPEGs), YCbCr, LAB, HSV


def load_rgb(path: str | Path, min_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
             background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Decode `path` to an upright 8-bit RGB image.

    `min_side`: the caller only needs the image at least this big (e.g. the training size); JPEGs are then decoded
    at a reduced DCT scale (Pillow `draft`), the main speed-up for large originals, and bigger images are
    downscaled so their shorter side is about 2 x min_side. EXIF orientation is applied.
    """
    img = open_image(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if min_side and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
                img.draft(img.mode, (2 * min_side, 2 * min_side))
            img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise _fail(path, f"image data is truncated or corrupt ({e})") from None
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a malformed EXIF block must not cost the image: keep the stored orientation
        pass
    img = to_rgb(img, background)
    if min_side and min(img.size) > 4 * min_side:
        k = min(img.size) // (2 * min_side)
        img = img.reduce(k)
    return img


def load_mask(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A lesion mask as mode 'L' with values {0, 1} (anything > 0 is lesion: ISIC 0/255, PH2 1-bit, 16-bit)."""
    img = open_image(path, max_pixels)
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise _fail(path, f"mask data is truncated or corrupt ({e})") from None
    img = ImageOps.exif_transpose(img) or img
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[..., :3].max(-1)
    return Image.fromarray((a > 0).astype(np.uint8), mode="L")


def quick_check(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """A cheap pre-flight check (header + end-of-file marker, no full decode): None if fine, else the problem.

    Catches missing, empty, non-image and truncated JPEG/PNG files in microseconds per file, so a loader can refuse
    a bad dataset before training rather than die half an epoch in.
    """
    try:
        img = open_image(path, max_pixels)
    except (ImageDecodeError, FileNotFoundError) as e:
        return str(e)
    fmt = img.format
    img.close()
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64))
            tail = f.read()
    except OSError as e:
        return f"{path}: cannot read ({e})"
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return f"{path}: JPEG is truncated (no end-of-image marker). Re-export or replace the file."
    if fmt == "PNG" and b"IEND" not in tail:
        return f"{path}: PNG is truncated (no IEND chunk). Re-export or replace the file."
    return None


def full_check(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 256) -> str | None:
    """Decode the whole file (what `data check` does; all compressed data is read, JPEGs at a reduced DCT scale
    above `min_side`): None if fine, else the problem."""
    try:
        load_rgb(path, min_side=min_side, max_pixels=max_pixels)
    except (ImageDecodeError, FileNotFoundError) as e:
        return str(e)
    return quick_check(path, max_pixels)
