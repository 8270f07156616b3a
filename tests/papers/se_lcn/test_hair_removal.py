"""SE-LCN's hair removal (methods-a §3.3: black-hat 17×17 cross, threshold 10, Telea inpainting radius 1)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data.errors import MissingFileError
from lesionkit.papers.se_lcn.hair import hair_free, remove_hair
from lesionkit.data.table import LesionDataset


def _skin(size: int = 160) -> np.ndarray:
    """Smooth skin tones with a soft brown lesion in the middle: no thin dark structure anywhere."""
    yy, xx = np.mgrid[:size, :size] / size
    img = np.stack([200 + 30 * xx, 150 + 20 * yy, 120 + 10 * xx * yy], -1)
    r = np.hypot(xx - 0.5, yy - 0.5)
    lesion = np.clip((0.3 - r) / 0.1, 0, 1)[..., None]
    return (img * (1 - lesion) + np.array([110, 70, 50]) * lesion).astype(np.uint8)


def _hairy(clean: np.ndarray) -> np.ndarray:
    out = clean.copy()
    for (x0, y0, x1, y1) in [(5, 10, 150, 140), (20, 150, 140, 5), (0, 80, 159, 70), (70, 0, 90, 159)]:
        cv2.line(out, (x0, y0), (x1, y1), (30, 20, 15), 2)
    return out


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_hairs_are_removed_and_a_hair_free_image_is_kept() -> None:
    clean = _skin()
    hairy = _hairy(clean)
    out = remove_hair(hairy)
    assert out.shape == hairy.shape and out.dtype == np.uint8
    assert _dist(out, clean) < 0.25 * _dist(hairy, clean)  # the lines are gone
    line = np.abs(hairy.astype(int) - clean.astype(int)).sum(-1) > 60
    assert np.abs(out[line].astype(int) - clean[line].astype(int)).mean() < 25  # filled with the skin around them
    assert _dist(remove_hair(clean), clean) < 0.5  # nothing to remove: nearly unchanged
    assert np.array_equal(remove_hair(Image.fromarray(hairy)), out)  # PIL in, same result


def test_parameters_are_the_papers_and_change_the_result() -> None:
    hairy = _hairy(_skin())
    assert not np.array_equal(remove_hair(hairy, kernel_size=3), remove_hair(hairy))  # a 3 px kernel misses 2 px hairs
    assert _dist(remove_hair(hairy, threshold=255), hairy) == 0  # nothing passes the threshold: no inpainting
    with pytest.raises(ValueError, match="shape"):
        remove_hair(hairy, shape="star")
    with pytest.raises(ValueError, match="RGB uint8"):
        remove_hair(hairy.astype(np.float32))


def test_hair_free_dataset_points_at_cached_copies(tmp_path: Path) -> None:
    clean = _skin()
    Image.fromarray(_hairy(clean)).save(tmp_path / "a.png")
    df = pd.DataFrame({"image_id": ["a"], "path": [str(tmp_path / "a.png")], "label": ["nv"]})
    ds = LesionDataset("t", tmp_path, df, ["nv"], "multiclass")
    out = hair_free(ds, min_side=64, root=tmp_path / "cache")
    path = Path(out.df["path"].iloc[0])
    assert path.parent == tmp_path / "cache" and out.info["hair_removal"] and ds.df["path"].iloc[0].endswith("a.png")
    assert _dist(np.asarray(Image.open(path)), clean) < 0.25 * _dist(_hairy(clean), clean)
    mtime = path.stat().st_mtime_ns
    assert hair_free(ds, min_side=64, root=tmp_path / "cache").df["path"].iloc[0] == str(path)
    assert path.stat().st_mtime_ns == mtime  # written once


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    df = pd.DataFrame({"image_id": ["gone"], "path": [str(tmp_path / "gone.jpg")], "label": ["nv"]})
    with pytest.raises(MissingFileError, match="gone.jpg"):
        hair_free(LesionDataset("t", tmp_path, df, ["nv"], "multiclass"), min_side=64, root=tmp_path / "cache")
