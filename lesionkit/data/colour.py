"""Shades-of-Gray colour constancy (Finlayson & Trezzi 2004), as the ISIC 2019 winner's preprocessing used it.

The illuminant of each channel is its Minkowski p-norm mean; dividing it out removes the colour cast of different
dermoscopes. p=1 is Gray World, p=inf is max-RGB; ngessert/isic2019 uses p=6 (Matlab `general_cc(im, 0, 6, 0)`).
"""
from __future__ import annotations

import numpy as np
from PIL import Image


def shades_of_gray(img: np.ndarray, p: float = 6.0) -> np.ndarray:
    """uint8 HxWx3 -> uint8 HxWx3 with the p-norm illuminant estimate mapped to neutral grey."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"shades_of_gray needs an HxWx3 RGB array, got shape {img.shape}")
    x = img.astype(np.float32)
    if np.isinf(p):
        illum = x.reshape(-1, 3).max(0)
    else:
        illum = np.power(np.power(x.reshape(-1, 3), p).mean(0), 1.0 / p)
    norm = np.sqrt((illum ** 2).sum())
    if norm < 1e-6:  # an all-black image has no illuminant to estimate
        return img.copy()
    gain = 1.0 / (illum / norm * np.sqrt(3.0) + 1e-6)
    return np.clip(x * gain, 0, 255).astype(np.uint8)


def shades_of_gray_pil(img: Image.Image, p: float = 6.0) -> Image.Image:
    return Image.fromarray(shades_of_gray(np.asarray(img.convert("RGB")), p))
