"""ARL's training augmentation, validation views and selection rule against the code (methods-a §2.3-2.4,
train_mel.py): H/V flips and ±10° rotation with black corners (not fastai's Dihedral, unless asked), the 9 test views
in every validation, and accuracy at the threshold offered as the selection metric."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat
from fastai.vision.augment import AffineCoordTfm
from fastai.vision.core import TensorImage

from lesionkit.data.splits import make_splits
from lesionkit.papers.arl import recipe as arl
from lesionkit.papers.arl.validation import MeanOfViews, accuracy_metric


def _cfg(synthetic_dir: Path, **kw) -> arl.ARLConfig:
    return arl.ARLConfig.from_params({"depth": 18, "image_size": 32, "batch_size": 4, "data_dir": str(synthetic_dir),
                                      "max_images": 40, "pretrained": "false", "crops_per_image": 1, **kw})


def _loaders(synthetic_dir: Path, **kw):
    cfg = _cfg(synthetic_dir, **kw)
    ds = arl.load(cfg)
    tr, va = make_splits(ds.df, folds=1, seed=0).folds[0]
    return cfg, ds, tr, va, arl.train_dls(ds, tr, va, cfg)


def _affine_mats(dls, n: int = 512) -> tuple[torch.Tensor, str]:
    """The training batch's affine matrices (n, 2, 3) for n images, and the padding of the rotated corners."""
    affine = [t for t in dls.train.after_batch.fs if isinstance(t, AffineCoordTfm)]
    assert len(affine) == 1  # flips and rotation composed into one resampling
    tfm = affine[0]
    tfm.split_idx = 0
    torch.manual_seed(0)
    return tfm._get_affine_mat(TensorImage(torch.zeros(n, 3, 8, 8))), tfm.pad_mode


def test_default_augmentation_is_the_codes_flips_and_rotation(synthetic_dir: Path) -> None:
    assert arl.ARLConfig().augment == "arl"
    m, pad = _affine_mats(_loaders(synthetic_dir)[-1])
    assert pad == "zeros"  # torchvision's RandomRotation leaves black corners
    a, b = m[:, 0, 0], m[:, 1, 1]
    assert (a.abs() > math.cos(math.radians(10)) - 1e-4).all()  # no quarter turn, no transpose
    assert (b.abs() > math.cos(math.radians(10)) - 1e-4).all()
    angles = torch.rad2deg(torch.atan2(m[:, 0, 1].abs(), a.abs()))
    assert angles.max() <= 10 + 1e-3 and angles.max() > 8  # rotation drawn in ±10°
    flips = {(bool(x < 0), bool(y < 0)) for x, y in zip(a, b)}
    assert flips == {(False, False), (True, False), (False, True), (True, True)}  # H and V flips, independently
    assert 0.4 < (a < 0).float().mean() < 0.6 and 0.4 < (b < 0).float().mean() < 0.6


def test_dihedral_option_adds_quarter_turns_and_transposes(synthetic_dir: Path) -> None:
    m, pad = _affine_mats(_loaders(synthetic_dir, augment="arl_dihedral")[-1])
    assert pad == "reflection"
    turned = m[:, 0, 0].abs() < math.sin(math.radians(10)) + 1e-4  # a 90° turn or a transpose, ±10° rotation
    assert 0.15 < turned.float().mean() < 0.35  # Dihedral at p=0.5: half of the 8 symmetries transpose


def test_validation_sees_the_nine_test_views_by_default_or_one_view(synthetic_dir: Path) -> None:
    assert arl.ARLConfig().valid_views == "multiscale"
    *_, va, dls = _loaders(synthetic_dir)
    xb = dls.valid.one_batch()[0]
    assert tuple(xb.shape) == (4, 9, 3, 32, 32)  # 2 crops at each of 4 scales + the whole image, per image
    assert len(dls.valid.get_idxs()) == len(va) and tuple(dls.train.one_batch()[0].shape) == (4, 3, 32, 32)
    assert tuple(dls.one_view.valid.one_batch()[0].shape) == (4, 3, 32, 32)
    one = _loaders(synthetic_dir, valid_views="one")[-1]
    assert tuple(one.valid.one_batch()[0].shape) == (4, 3, 32, 32)
    flips = _loaders(synthetic_dir, test_views="flips8")
    test = next(v for v in arl.variants(flips[1], flips[0]))
    learn = test.learner(flips[2], flips[3])
    assert tuple(test.test_dl(learn, flips[3][:4]).one_batch()[0].shape) == (4, 3, 32, 32)  # one view: flips8 acts


def test_validation_scores_each_images_mean_logit_over_its_views(synthetic_dir: Path) -> None:
    *_, va, dls = _loaders(synthetic_dir)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1))
    learn = Learner(dls, model, loss_func=BCEWithLogitsLossFlat(), metrics=[accuracy_metric(0.5)],
                    cbs=[MeanOfViews()])
    preds, targs = learn.get_preds(dl=dls.valid, act=lambda x: x)
    with torch.no_grad():
        expected = torch.cat([model(x.flatten(0, 1)).reshape(len(x), 9, 1).mean(1) for x, _ in dls.valid])
    assert preds.shape == (len(va), 1) and torch.allclose(preds, expected, atol=1e-5)
    acc = learn.validate()[1]
    p = torch.sigmoid(expected).reshape(-1).numpy()
    assert acc == pytest.approx(np.mean((p >= 0.5) == targs.numpy().reshape(-1).astype(bool)))


def test_selection_on_auc_by_default_accuracy_is_the_codes_option(synthetic_dir: Path) -> None:
    assert arl.ARLConfig().monitor == "auc"
    cfg, ds, *_ = _loaders(synthetic_dir, monitor="accuracy", threshold=0.6)
    for v in arl.variants(ds, cfg):
        assert v.monitor == "accuracy" and "accuracy" in [m.name for m in v.metrics]
    batch = type("L", (), {"pred": torch.tensor([[2.0], [-2.0], [0.1], [0.5]]), "y": torch.tensor([1, 1, 0, 1]),
                           "training": False, "to_detach": staticmethod(lambda x, *a, **kw: x.detach())})()
    for threshold, right in ((0.6, 3), (0.5, 2)):  # sigmoid 0.88, 0.12, 0.52, 0.62: p >= threshold predicts 1
        metric = accuracy_metric(threshold)
        metric.reset()
        metric.accumulate(batch)
        assert metric.value == pytest.approx(right / 4)
