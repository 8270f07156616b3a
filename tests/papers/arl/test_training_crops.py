"""ARL's training crops against the spec (methods-a §2.3, generate_patch_images.py): 61 samples per image per
epoch (15 crops at each of 4 scales + the whole image), each crop window measured in the original file's pixels
even though the loader decodes large JPEGs at a reduced scale."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lesionkit.data.augment import ARL_P_WHOLE, DECODE_SCALE, arl_box, arl_crop, arl_decode_side
from lesionkit.data.loaders import ReadImage
from lesionkit.data.splits import make_splits
from lesionkit.papers.arl import recipe as arl


def _cfg(synthetic_dir: Path, **kw) -> arl.ARLConfig:
    return arl.ARLConfig.from_params({"depth": 18, "image_size": 32, "batch_size": 4, "data_dir": str(synthetic_dir),
                                      "max_images": 40, "pretrained": "false", **kw})


def test_an_epoch_draws_crops_per_image_fresh_crops_of_every_training_image(synthetic_dir: Path) -> None:
    cfg = _cfg(synthetic_dir, crops_per_image=3)
    ds = arl.load(cfg)
    tr, va = make_splits(ds.df, folds=1, seed=0).folds[0]
    dls = arl.train_dls(ds, tr, va, cfg)
    idxs = dls.train.get_idxs()
    assert len(idxs) == 3 * len(tr) and set(Counter(idxs).values()) == {3}  # each image exactly 3 times, shuffled
    assert idxs != sorted(idxs)
    assert len(dls.train) == 3 * len(tr) // 4  # batches per epoch (the training loader drops the last partial one)
    assert sum(len(y) for _, y in dls.train) == (3 * len(tr) // 4) * 4
    assert len(dls.valid.get_idxs()) == len(va)  # validation sees each image once
    crops = [dls.train.do_item(0)[0] for _ in range(4)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])  # every visit is a new random crop
    one = arl.train_dls(ds, tr, va, _cfg(synthetic_dir, crops_per_image=1))
    assert len(one.train.get_idxs()) == len(tr)


def test_defaults_are_the_codes_61_crops_and_imagenet_init_smoke_is_offline() -> None:
    cfg = arl.ARLConfig()
    assert cfg.crops_per_image == 61 and cfg.pretrained is True  # 61 files per image; ImageNet ResNet-50
    assert ARL_P_WHOLE == pytest.approx(1 / 61)
    small = arl.ARLConfig.from_params({"smoke": True}).effective()
    assert small.pretrained is False and small.crops_per_image == 1


def test_the_recipe_builds_its_models_with_the_configs_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(arl, "create_model", lambda name, pretrained=False, **kw: seen.append((name, pretrained)))
    for v in arl.variants(None, arl.ARLConfig()):
        v.model()
    assert seen == [("arl_resnet50", True), ("resnet50", True)]


def _large_jpeg(path: Path, w: int = 2400, h: int = 1800) -> Path:
    """x in the red channel, y in the green one: a crop's mean colour says where it was cut."""
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).astype(np.uint8)).save(path, quality=95)
    return path


@pytest.mark.parametrize("scale", [0.2, 0.4, 0.8])
def test_crop_window_is_in_the_original_files_pixels(tmp_path: Path, scale: float) -> None:
    path = _large_jpeg(tmp_path / "big.jpg")
    full = Image.open(path).convert("RGB")
    small = ReadImage(min_side=64, presize=None)(path)  # the loader's reduced decode
    k = small.info[DECODE_SCALE]
    assert small.size[0] < 1000 and k == pytest.approx(small.size[1] / 1800)
    for seed in range(5):
        a, b = arl_crop(small, scale, random.Random(seed)), arl_crop(full, scale, random.Random(seed))
        x0, y0, x1, y1 = arl_box(2400, 1800, scale, random.Random(seed))
        assert b.size == (x1 - x0, y1 - y0)
        assert a.size == pytest.approx((b.size[0] * k, b.size[1] * k), abs=1.5)
        ma = np.asarray(a.resize((16, 16)), float)
        mb = np.asarray(b.resize((16, 16)), float)
        assert np.abs(ma - mb).mean() < 3  # same place, same content, only fewer pixels
    # the margin is 500*s px of the original: a crop of the decoded image stays in the centred window
    ww = min(2400, round(scale * 2400) + int(500 * scale))
    for seed in range(20):
        a = np.asarray(arl_crop(small, scale, random.Random(seed)), float)
        left = a[:, 0, 0].mean() / 255 * 2400
        assert left >= (2400 - ww) / 2 - 30


def test_arl_loaders_decode_enough_pixels_for_the_smallest_crop(synthetic_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert arl_decode_side(224) == 560  # the decoder keeps >= 2 x 560: a 0.2 crop spans >= 224 px
    sides, init = [], ReadImage.__init__
    monkeypatch.setattr(ReadImage, "__init__", lambda self, min_side=None, *a, **kw: (sides.append(min_side),
                                                                                      init(self, min_side, *a, **kw))[1])
    cfg = _cfg(synthetic_dir, valid_views="one")  # the 9 validation views decode as the test views do
    ds = arl.load(cfg)
    tr, va = make_splits(ds.df, folds=1, seed=0).folds[0]
    arl.train_dls(ds, tr, va, cfg)
    arl.train_dls(ds, tr, va, _cfg(synthetic_dir, augment="fastai", valid_views="one"))
    assert sides == [arl_decode_side(32), 32]
