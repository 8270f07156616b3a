"""Patch attention against the released code (methods-a §1.1-1.3): the derm7pt cfg's DenseNet121 starts from the
torchvision ImageNet weights the code loaded (timm's own tag is the option), training augments the whole image with
the code's flips and colour jitter, and an ISIC 2018 Task 3 download's LesionGroupings strings give the diagnosis
factor."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastai.vision.core import PILImage
from PIL import Image

from lesionkit.config import ConfigError
from lesionkit.data.splits import make_splits
from lesionkit.data.views import PatchGrid
from lesionkit.models import _base
from lesionkit.models.pretrained import hub_repo
from lesionkit.papers.patch_attention import recipe as pa


class _Asked(Exception):
    pass


def _weights_asked_for(monkeypatch: pytest.MonkeyPatch, **params) -> str:
    """The timm architecture whose ImageNet weights building the recipe's model asks for (stopped right there)."""
    def asked(arch):
        raise _Asked(arch)
    monkeypatch.setattr(_base, "require_local_weights", asked)
    cfg = pa.PatchAttentionConfig.from_params({"n_patches": 9, "image_size": 32, **params})
    with pytest.raises(_Asked) as caught:
        pa.build_model(cfg, 6)
    return str(caught.value)


def test_densenet121_loads_the_codes_torchvision_weights_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pa.PatchAttentionConfig().weights == "torchvision"
    arch = _weights_asked_for(monkeypatch, backbone="densenet121")
    assert arch == "densenet121.tv_in1k" and hub_repo(arch) == "timm/densenet121.tv_in1k"
    assert pa.PatchAttentionConfig(backbone="densenet121").weights_needed() == {
        "densenet121.tv_in1k": ("pretrained", "backbone")}
    assert _weights_asked_for(monkeypatch, backbone="inception_v3").endswith("tv_in1k")  # the HAM cfg's, as before


def test_timm_weights_option_takes_timms_default_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    arch = _weights_asked_for(monkeypatch, backbone="densenet121", weights="timm")
    assert hub_repo(arch) == "timm/densenet121.ra_in1k"
    # a backbone timm has no torchvision copy of, or an explicit tag, is used as given
    assert _weights_asked_for(monkeypatch, backbone="tf_efficientnet_lite0") == "tf_efficientnet_lite0"
    assert _weights_asked_for(monkeypatch, backbone="densenet121.ra_in1k") == "densenet121.ra_in1k"


def test_random_init_builds_the_same_network_from_either_tag() -> None:
    params = {"backbone": "densenet121", "n_patches": 9, "image_size": 32, "pretrained": False}
    tv = pa.build_model(pa.PatchAttentionConfig.from_params(params), 6)
    ra = pa.build_model(pa.PatchAttentionConfig.from_params({**params, "weights": "timm"}), 6)
    assert tv.backbone_name == "densenet121.tv_in1k" and ra.backbone_name == "densenet121"
    assert {k: v.shape for k, v in tv.state_dict().items()} == {k: v.shape for k, v in ra.state_dict().items()}


def _ramps(size: tuple[int, int]) -> Image.Image:
    """Red rising left to right, green rising top to bottom: a flip reverses a ramp, brightness and saturation
    scaling (factors > 0) keep its direction."""
    w, h = size
    x, y = np.meshgrid(np.linspace(20, 220, w), np.linspace(20, 220, h))
    return PILImage.create(np.stack([x, y, np.full_like(x, 60)], -1).astype(np.uint8))


def test_training_flips_and_jitters_the_whole_image_validation_does_not(synthetic_dir: Path) -> None:
    cfg = pa.PatchAttentionConfig.from_params({"data_dir": str(synthetic_dir), "image_size": 32, "pretrained": False,
                                               "max_images": 40})
    ds = pa.load(cfg)
    tr, va = make_splits(ds.df, folds=1, seed=0).folds[0]
    grid = next(t for t in pa.patch_dls(ds, tr, va, cfg).train.after_item.fs if isinstance(t, PatchGrid))
    img = _ramps((cfg.full_size[1], cfg.full_size[0]))
    plain = np.asarray(grid(img, split_idx=1)[0], float)  # the top-left patch (3, 32, 32) of a validation image
    assert all(np.array_equal(np.asarray(grid(img, split_idx=1)[0], float), plain) for _ in range(3))
    seen = [np.asarray(grid(img, split_idx=0)[0], float) for _ in range(80)]
    h_flip = [p[0, :, -1].mean() < p[0, :, 0].mean() for p in seen]  # red falls left to right
    v_flip = [p[1, -1].mean() < p[1, 0].mean() for p in seen]  # green falls top to bottom
    assert 15 < sum(h_flip) < 65 and 15 < sum(v_flip) < 65  # horizontal and vertical flips, p = 0.5 each
    assert {(a, b) for a, b in zip(h_flip, v_flip)} == {(False, False), (True, False), (False, True), (True, True)}
    kept = [p for p, a, b in zip(seen, h_flip, v_flip) if not (a or b)]
    gain = [p.mean() / plain.mean() for p in kept]
    assert max(abs(g - 1) for g in gain) > 0.02  # brightness and saturation jitter
    assert all(abs(g - 1) < 0.5 for g in gain)  # within ColorJitter(32/255, saturation 0.5)'s reach
    assert cfg.patch_dropout == 0.1 and grid.patch_dropout == 0.0  # patch dropout: in the model, not the loader


GROUPINGS = {"ISIC_0024306": "histopathology", "ISIC_0024307": "serial imaging showing no change",
             "ISIC_0024308": "single image expert consensus",
             "ISIC_0024309": "confocal microscopy with consensus dermoscopy"}


def _isic2018(root: Path, types: dict[str, str]) -> None:
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    labels = dict(zip(types, ["MEL", "NV", "BKL", "NV"]))
    gt = pd.DataFrame({"image": list(labels)})
    for c in cols:
        gt[c] = [1.0 if v == c else 0.0 for v in labels.values()]
    gt.to_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv", index=False)
    for i in labels:
        (root / "ISIC2018_Task3_Training_Input").mkdir(exist_ok=True)
        Image.new("RGB", (24, 18), (120, 80, 60)).save(root / "ISIC2018_Task3_Training_Input" / f"{i}.jpg")
    pd.DataFrame({"image": list(types), "lesion_id": [f"HAM_{k}" for k in range(len(types))],
                  "diagnosis_confirm_type": list(types.values())}).to_csv(
        root / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)


def test_isic2018_lesion_groupings_give_the_diagnosis_factor(tmp_path: Path) -> None:
    _isic2018(tmp_path, GROUPINGS)
    df = pa.load(pa.PatchAttentionConfig.from_params({"data_dir": str(tmp_path), "pretrained": False})).df
    assert df.set_index("image_id")["dx_factor"].to_dict() == {"ISIC_0024306": 4.0, "ISIC_0024307": 2.0,
                                                               "ISIC_0024308": 1.0, "ISIC_0024309": 3.0}


def test_the_cfgs_spelling_is_read_and_an_unknown_type_is_named(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _isic2018(tmp_path / "a", {**GROUPINGS, "ISIC_0024307": "Serial imaging showed  no change"})
    df = pa.load(pa.PatchAttentionConfig.from_params({"data_dir": str(tmp_path / "a"), "pretrained": False})).df
    assert df.set_index("image_id").at["ISIC_0024307", "dx_factor"] == 2.0
    (tmp_path / "b").mkdir()
    _isic2018(tmp_path / "b", {**GROUPINGS, "ISIC_0024308": "dermatologist said so"})
    with pytest.raises(ConfigError, match="dermatologist said so.*histopathology"):
        pa.load(pa.PatchAttentionConfig.from_params({"data_dir": str(tmp_path / "b"), "pretrained": False}))
