"""Library logic of the SE-LCN notebook: segmentation scores, LAE inputs, the CAM cache and loaders, splits, config."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lesionkit.config import ConfigError
from lesionkit.data.table import LesionDataset
from lesionkit.experiments import se_lcn as se


def _images(tmp_path: Path, n: int = 4, size: int = 32, classes: tuple[str, ...] = ("nv", "mel")) -> LesionDataset:
    rng = np.random.default_rng(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = tmp_path / f"IMG{i}.png"
        Image.fromarray((rng.random((size, size, 3)) * 200 + 55).astype(np.uint8)).save(path)
        lab = classes[i % len(classes)]
        rows.append({"image_id": f"IMG{i}", "path": str(path), "label": lab, "label_idx": classes.index(lab),
                     "lesion_id": f"L{i}", "patient_id": np.nan, "age": np.nan, "sex": np.nan, "site": np.nan,
                     "dx_type": np.nan, "mask_path": np.nan, "split": np.nan})
    return LesionDataset("toy", tmp_path, pd.DataFrame(rows), list(classes), "binary" if len(classes) == 2
                         else "multiclass")


def _square(size: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_segmentation_scores_per_image_then_mean() -> None:
    truth = np.stack([_square(8, 0, 4, 0, 4), _square(8, 0, 4, 0, 4)])
    pred = np.stack([_square(8, 0, 4, 0, 4), _square(8, 0, 4, 0, 2)])  # perfect; half the lesion
    s = se.segmentation_scores(pred, truth)
    assert s["dice"] == pytest.approx((1 + 2 * 8 / 24) / 2)
    assert s["jaccard"] == pytest.approx((1 + 0.5) / 2)
    assert s["sensitivity"] == pytest.approx(0.75) and s["specificity"] == pytest.approx(1.0)
    empty = se.segmentation_scores(np.zeros((1, 8, 8), bool), np.zeros((1, 8, 8), bool))
    assert np.isnan(empty["dice"]) and empty["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        se.segmentation_scores(pred, truth[:, :4])


def test_class_weights_follow_the_class_index_not_the_label_names() -> None:
    w = se.class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    assert w.tolist() == pytest.approx([1 / 3, 1.0, 0.5, 0.0])


def test_masked_inputs_lae_and_mask_modes(tmp_path: Path) -> None:
    ds = _images(tmp_path / "img", n=2, size=32)
    masks = np.stack([_square(32, 10, 20, 10, 20), np.zeros((32, 32), bool)])
    assert se.masked_inputs(ds, masks, "none", 32, tmp_path / "out") is ds
    lae = se.masked_inputs(ds, masks, "lae", 32, tmp_path / "out")
    a = np.asarray(Image.open(lae.df["path"].iloc[0]))
    assert a.shape == (32, 32, 3)
    assert (a[:8] == 0).all() and (a[:, :8] == 0).all() and (a[22:] == 0).all()  # outside the enlarged box
    assert (a[8:22, 8:22] > 0).all()  # box 10..20 enlarged by 20 % = 2 px per side
    assert (np.asarray(Image.open(lae.df["path"].iloc[1])) > 0).all()  # no lesion found: image kept whole
    msk = np.asarray(Image.open(se.masked_inputs(ds, masks, "mask", 32, tmp_path / "out").df["path"].iloc[0]))
    assert (msk[9] == 0).all() and (msk[10:20, 10:20] > 0).all() and (msk[:, 20:] == 0).all()
    assert lae.df["image_id"].tolist() == ds.df["image_id"].tolist() and Path(lae.df["path"].iloc[0]).suffix == ".png"
    with pytest.raises(ValueError, match="masks for"):
        se.masked_inputs(ds, masks[:1], "lae", 32, tmp_path / "out")
    with pytest.raises(ValueError, match="mode"):
        se.masked_inputs(ds, masks, "crop", 32, tmp_path / "out")


def test_lae_table_boxes() -> None:
    ds = LesionDataset("t", Path("."), pd.DataFrame({"image_id": ["a", "b"], "label": ["x", "x"]}), ["x"],
                       "multiclass")
    t = se.lae_table(ds, np.stack([_square(32, 10, 20, 10, 20), np.zeros((32, 32), bool)]))
    assert t.iloc[0][["x0", "y0", "x1", "y1"]].tolist() == [8, 8, 22, 22]
    assert t.iloc[1][["x0", "y0", "x1", "y1"]].isna().all() and t["mask_fraction"].iloc[1] == 0


def test_cam_cache_round_trip(tmp_path: Path) -> None:
    cams = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)
    path = se.save_cams(tmp_path / "cams" / "x.npz", ["a", "b", "c"], cams)
    loaded = se.load_cams(path)
    assert list(loaded) == ["a", "b", "c"]
    assert np.allclose(loaded["b"], cams[1], atol=1e-3) and loaded["b"].dtype == np.float32
    with pytest.raises(FileNotFoundError, match="no cached CAMs"):
        se.load_cams(tmp_path / "missing.npz")


def test_get_cam_by_image_id_zero_ablation_and_unknown_id() -> None:
    cams = {"a": np.full((4, 4), 0.5, np.float32)}
    assert se.GetCam(cams)({"image_id": "a"}).shape == (1, 4, 4)
    assert se.GetCam(cams, zero=True)({"image_id": "a"}).abs().sum() == 0
    with pytest.raises(KeyError, match="no cached CAM"):
        se.GetCam(cams)({"image_id": "zz"})


def test_cam_dls_pairs_each_image_with_its_own_cam(tmp_path: Path) -> None:
    ds = _images(tmp_path, n=4, size=32)
    cams = {f"IMG{i}": np.full((8, 8), i / 10, np.float32) for i in range(4)}
    dls = se.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2)
    image, cam, y = dls.valid.one_batch()
    assert image.shape == (2, 3, 16, 16) and cam.shape == (2, 1, 8, 8) and float(image.max()) <= 1.0
    assert cam[:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.3]) and y.tolist() == [1, 1]
    zero = se.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2, zero=True)
    assert zero.valid.one_batch()[1].abs().sum() == 0


def test_cam_dls_squish_non_square_images_like_the_cams_symmetry_loaders(tmp_path: Path) -> None:
    ds = _images(tmp_path, n=4, size=16)
    stripes = np.zeros((16, 32, 3), np.uint8)  # red | black | white columns: a crop would lose the red and white
    stripes[:, :8, 0], stripes[:, 24:] = 255, 255
    for path in ds.df["path"]:
        Image.fromarray(stripes).save(path)
    cams = {f"IMG{i}": np.zeros((4, 4), np.float32) for i in range(4)}
    dls = se.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2)
    for image in (dls.valid.one_batch()[0], dls.train.one_batch()[0]):
        assert image.shape == (2, 3, 16, 16)
        assert (image[:, 0, :, :3] > 0.9).all() and (image[:, 1, :, :3] < 0.1).all(), "the red quarter is kept"
        assert (image[:, :, :, -3:] > 0.9).all(), "the white quarter is kept"


def test_cam_dls_balanced_sampling_weights_each_class_equally(tmp_path: Path) -> None:
    from lesionkit.data.loaders import BalancedDL

    ds = _images(tmp_path, n=4, size=16)  # labels nv, mel, nv, mel
    cams = {f"IMG{i}": np.zeros((4, 4), np.float32) for i in range(4)}
    dls = se.cam_dls(ds, cams, np.array([0, 1, 2]), np.array([3]), size=16, bs=2, balanced=True)
    assert isinstance(dls.train, BalancedDL)
    assert dls.train.wgts.tolist() == pytest.approx([0.25, 0.5, 0.25])  # nv, mel, nv: each class half the draws


def test_classifier_folds_partition_the_training_pool_and_never_touch_test() -> None:
    n = 40
    df = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "label": ["a", "b"] * (n // 2),
                       "label_idx": [0, 1] * (n // 2), "lesion_id": [f"l{k // 2}" for k in range(n)],
                       "patient_id": np.nan})
    ds = LesionDataset("t", Path("."), df, ["a", "b"], "binary")
    parts = {"train": np.arange(0, 24), "valid": np.arange(24, 32), "test": np.arange(32, 40)}
    assert [(a.tolist(), b.tolist()) for a, b in se.classifier_folds(ds, parts, 1, 0)] == \
        [(parts["train"].tolist(), parts["valid"].tolist())]
    folds = se.classifier_folds(ds, parts, 4, 0)
    valid = np.concatenate([va for _, va in folds])
    assert sorted(valid.tolist()) == list(range(32))
    for tr, va in folds:
        assert not set(tr) & set(parts["test"]) and not set(df["lesion_id"].iloc[tr]) & set(df["lesion_id"].iloc[va])


def test_fold_mean_std_skips_nan_and_has_no_std_for_one_fold() -> None:
    assert se.fold_mean_std([0.5, np.nan, 0.7]) == pytest.approx({"mean": 0.6, "std": 0.1})
    one = se.fold_mean_std([0.4])
    assert one["mean"] == 0.4 and np.isnan(one["std"])


def test_config_paper_defaults_smoke_and_validation(tmp_path: Path) -> None:
    cfg = se.SELCNConfig.from_params({"epochs": "100"})
    assert (cfg.classifier_input, cfg.cam_source, cfg.cam_size, cfg.folds, cfg.rank_lambda) == ("none", "lae", 224, 4,
                                                                                                0.05)
    assert cfg.stage_epochs("seg") == 100 and se.SELCNConfig(seg_epochs=7).stage_epochs("seg") == 7
    small = se.SELCNConfig(smoke=True).effective()
    assert small.image_size % 16 == 0 and small.seg_encoder == "tu-tf_efficientnet_lite0" and small.folds == 1
    with pytest.raises(ConfigError, match="multiple of 16"):
        se.SELCNConfig.from_params({"image_size": 100})
    with pytest.raises(ConfigError, match="seg_data_dir"):
        se.SELCNConfig.from_params({"seg_data_dir": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="cam_source"):
        se.SELCNConfig.from_params({"cam_source": "crop"})


def test_shared_dataset_gives_one_split_for_all_stages(synthetic_dir: Path) -> None:
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir))
    cls_ds, seg_ds = se.load_data(cfg)
    assert se.shared_source(cls_ds, seg_ds) and seg_ds.classes == ["symmetric", "asymmetric"]
    assert "mel" in cls_ds.classes
    cls_parts, seg_parts = se.make_splits(cls_ds, seg_ds, cfg)
    assert all(np.array_equal(cls_parts[k], seg_parts[k]) for k in cls_parts)
    masks, kind = se.attribution_masks(cls_ds, cls_parts["test"][:3], np.zeros((len(cls_ds), 64, 64), bool), 64)
    assert kind.startswith("ground-truth") and masks.shape == (3, 64, 64) and masks.any()


def test_symmetry_cams_from_an_untrained_net_are_normalised(synthetic_dir: Path, tmp_path: Path) -> None:
    from lesionkit.data.loaders import image_dls
    from lesionkit.models import create_model
    from lesionkit.train import make_learner
    from lesionkit.runs import Run

    cls_ds, seg_ds = se.load_data(se.SELCNConfig(data_dir=str(synthetic_dir)))
    torch.manual_seed(0)
    model = create_model("selcn_symmetry")
    dls = image_dls(seg_ds, np.arange(0, 10), np.arange(10, 16), size=32, bs=4, preset="none", norm=None,
                    leak_check=False)
    learn = make_learner(dls, model, Run(tmp_path, "t"))
    cams = se.compute_cams(learn, seg_ds.subset(np.arange(5)), size=16)
    assert cams.shape == (5, 16, 16) and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    truth = se.true_masks(seg_ds, np.arange(5), 16)
    scores = se.cam_scores(cams, truth, seg_ds.df["image_id"].iloc[:5].tolist(), "sym")
    assert set(scores.columns) >= {"pointing_game", "iou", "overlap"} and len(scores) == 5
