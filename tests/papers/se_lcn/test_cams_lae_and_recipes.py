"""Library logic of the SE-LCN notebook: segmentation scores, LAE inputs, the CAM cache and loaders, splits, config,
and the three networks' recipes pinned to the paper (methods-a §3.4)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import max_drop_path
from PIL import Image

from lesionkit.config import ConfigError
from lesionkit.papers.se_lcn import cams as cm
from lesionkit.papers.se_lcn import lae
from lesionkit.data.table import LesionDataset
from lesionkit.papers.se_lcn import recipe as se
from lesionkit.papers.se_lcn.segmentation import segmentation_scores
from lesionkit.records.runs import Run


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
    s = segmentation_scores(pred, truth)
    assert s["dice"] == pytest.approx((1 + 2 * 8 / 24) / 2)
    assert s["jaccard"] == pytest.approx((1 + 0.5) / 2)
    assert s["sensitivity"] == pytest.approx(0.75) and s["specificity"] == pytest.approx(1.0)
    empty = segmentation_scores(np.zeros((1, 8, 8), bool), np.zeros((1, 8, 8), bool))
    assert np.isnan(empty["dice"]) and empty["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_scores(pred, truth[:, :4])


def test_masked_inputs_lae_and_mask_modes(tmp_path: Path) -> None:
    ds = _images(tmp_path / "img", n=2, size=32)
    masks = np.stack([_square(32, 10, 20, 10, 20), np.zeros((32, 32), bool)])
    assert lae.masked_inputs(ds, masks, "none", 32, tmp_path / "out") is ds
    boxed = lae.masked_inputs(ds, masks, "lae", 32, tmp_path / "out")
    a = np.asarray(Image.open(boxed.df["path"].iloc[0]))
    assert a.shape == (32, 32, 3)
    assert (a[:8] == 0).all() and (a[:, :8] == 0).all() and (a[22:] == 0).all()  # outside the enlarged box
    assert (a[8:22, 8:22] > 0).all()  # box 10..20 enlarged by 20 % = 2 px per side
    assert (np.asarray(Image.open(boxed.df["path"].iloc[1])) > 0).all()  # no lesion found: image kept whole
    msk = np.asarray(Image.open(lae.masked_inputs(ds, masks, "mask", 32, tmp_path / "out").df["path"].iloc[0]))
    assert (msk[9] == 0).all() and (msk[10:20, 10:20] > 0).all() and (msk[:, 20:] == 0).all()
    assert boxed.df["image_id"].tolist() == ds.df["image_id"].tolist() and Path(boxed.df["path"].iloc[0]).suffix == ".png"
    with pytest.raises(ValueError, match="masks for"):
        lae.masked_inputs(ds, masks[:1], "lae", 32, tmp_path / "out")
    with pytest.raises(ValueError, match="mode"):
        lae.masked_inputs(ds, masks, "crop", 32, tmp_path / "out")


def test_lae_table_boxes() -> None:
    ds = LesionDataset("t", Path("."), pd.DataFrame({"image_id": ["a", "b"], "label": ["x", "x"]}), ["x"],
                       "multiclass")
    t = lae.lae_table(ds, np.stack([_square(32, 10, 20, 10, 20), np.zeros((32, 32), bool)]))
    assert t.iloc[0][["x0", "y0", "x1", "y1"]].tolist() == [8, 8, 22, 22]
    assert t.iloc[1][["x0", "y0", "x1", "y1"]].isna().all() and t["mask_fraction"].iloc[1] == 0


def test_cam_cache_round_trip(tmp_path: Path) -> None:
    cams = np.random.default_rng(0).random((3, 6, 6)).astype(np.float32)
    path = cm.save_cams(tmp_path / "cams" / "x.npz", ["a", "b", "c"], cams)
    loaded = cm.load_cams(path)
    assert list(loaded) == ["a", "b", "c"]
    assert np.allclose(loaded["b"], cams[1], atol=1e-3) and loaded["b"].dtype == np.float32
    with pytest.raises(FileNotFoundError, match="no cached CAMs"):
        cm.load_cams(tmp_path / "missing.npz")


def test_get_cam_by_image_id_zero_ablation_and_unknown_id() -> None:
    cams = {"a": np.full((4, 4), 0.5, np.float32)}
    assert cm.GetCam(cams)({"image_id": "a"}).shape == (1, 4, 4)
    assert cm.GetCam(cams, zero=True)({"image_id": "a"}).abs().sum() == 0
    with pytest.raises(KeyError, match="no cached CAM"):
        cm.GetCam(cams)({"image_id": "zz"})


def test_cam_dls_pairs_each_image_with_its_own_cam(tmp_path: Path) -> None:
    ds = _images(tmp_path, n=4, size=32)
    cams = {f"IMG{i}": np.full((8, 8), i / 10, np.float32) for i in range(4)}
    dls = cm.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2)
    image, cam, y = dls.valid.one_batch()
    assert image.shape == (2, 3, 16, 16) and cam.shape == (2, 1, 8, 8) and float(image.max()) <= 1.0
    assert cam[:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.3]) and y.tolist() == [1, 1]
    zero = cm.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2, zero=True)
    assert zero.valid.one_batch()[1].abs().sum() == 0


def test_cam_dls_squish_non_square_images_like_the_cams_symmetry_loaders(tmp_path: Path) -> None:
    ds = _images(tmp_path, n=4, size=16)
    stripes = np.zeros((16, 32, 3), np.uint8)  # red | black | white columns: a crop would lose the red and white
    stripes[:, :8, 0], stripes[:, 24:] = 255, 255
    for path in ds.df["path"]:
        Image.fromarray(stripes).save(path)
    cams = {f"IMG{i}": np.zeros((4, 4), np.float32) for i in range(4)}
    dls = cm.cam_dls(ds, cams, np.array([0, 2]), np.array([1, 3]), size=16, bs=2)
    for image in (dls.valid.one_batch()[0], dls.train.one_batch()[0]):
        assert image.shape == (2, 3, 16, 16)
        assert (image[:, 0, :, :3] > 0.9).all() and (image[:, 1, :, :3] < 0.1).all(), "the red quarter is kept"
        assert (image[:, :, :, -3:] > 0.9).all(), "the white quarter is kept"


def test_cam_dls_balanced_sampling_weights_each_class_equally(tmp_path: Path) -> None:
    from lesionkit.data.loaders import BalancedDL

    ds = _images(tmp_path, n=4, size=16)  # labels nv, mel, nv, mel
    cams = {f"IMG{i}": np.zeros((4, 4), np.float32) for i in range(4)}
    dls = cm.cam_dls(ds, cams, np.array([0, 1, 2]), np.array([3]), size=16, bs=2, balanced=True)
    assert isinstance(dls.train, BalancedDL)
    assert dls.train.wgts.tolist() == pytest.approx([0.25, 0.5, 0.25])  # nv, mel, nv: each class half the draws


def test_split_is_the_runs_and_the_segmentation_stages_share_its_test_set_and_fold_0(synthetic_dir: Path,
                                                                                         tmp_path: Path) -> None:
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir))  # 4 folds, as the paper
    cls_ds, seg_ds = se.load_data(cfg)
    assert lae.same_images(cls_ds, seg_ds) and seg_ds.classes == ["symmetric", "asymmetric"]
    assert "mel" in cls_ds.classes
    splits, seg_splits = se.split(cls_ds, seg_ds, cfg, Run(tmp_path, "t"))
    assert (tmp_path / "splits.csv").is_file() and len(splits.folds) == 4 and len(seg_splits.folds) == 1
    assert np.array_equal(seg_splits.test, splits.test)
    assert all(np.array_equal(a, b) for a, b in zip(seg_splits.folds[0], splits.folds[0]))
    valid = np.concatenate([va for _, va in splits.folds])  # the folds partition every row but the test rows
    assert sorted(valid.tolist()) == sorted(set(range(len(cls_ds))) - set(splits.test.tolist()))
    lesions = cls_ds.df["lesion_id"].to_numpy()
    for tr, va in splits.folds:
        assert not set(tr) & set(splits.test) and not set(lesions[tr]) & set(lesions[va])
        assert not set(lesions[np.concatenate([tr, va])]) & set(lesions[splits.test])
    table = se.split_table({"classifier": (cls_ds, splits)})
    assert table.loc[table["part"] == "test", "images"].item() == len(splits.test)
    assert table[cls_ds.classes].sum(axis=1).tolist() == table["images"].tolist()
    masks, kind = lae.reference_masks(cls_ds, splits.test[:3], np.zeros((len(cls_ds), 64, 64), bool), 64)
    assert kind.startswith("ground-truth") and masks.shape == (3, 64, 64) and masks.any()
    other = seg_ds.subset(np.arange(40))  # another dataset for the segmentation stages: its own grouped split
    _, own = se.split(cls_ds, other, cfg, Run(tmp_path, "t"))
    assert (tmp_path / "seg_splits.csv").is_file() and len(own.folds) == 1
    tr, va = own.folds[0]
    assert sorted(np.concatenate([tr, va, own.test]).tolist()) == list(range(40))


def test_recipes_are_the_papers_optimisers_schedules_and_selection(synthetic_dir: Path, tmp_path: Path) -> None:
    """methods-a §3.4 table: segmenter torch Adam lr 1e-3, no weight decay, poly decay (power 0.9), best val Jaccard,
    500 epochs; symmetry net Adam lr 3.3445e-5, wd 9.669e-4 (torch Adam's L2), patience 10 on val loss, weighted CE;
    classifier Adam lr 1.2009e-4, wd 1.0796e-4, patience 25 on val loss, ≤ 100 epochs; the standalone baseline Adam
    lr 1e-5, wd 5e-4, batch 16, dropout 0.4, weighted CE, patience 10. Built from the module's own recipes with the
    config's defaults (only the networks made small)."""
    from lesionkit.engine import torch_optimizer

    cfg = dataclasses.replace(se.SELCNConfig(data_dir=str(synthetic_dir)), image_size=64,
                              seg_encoder="tu-tf_efficientnet_lite0", classifier_backbone="tf_efficientnet_lite0")
    cls_ds, seg_ds = se.load_data(cfg)
    splits, seg_splits = se.split(cls_ds, seg_ds, cfg, Run(tmp_path, "t"))
    cams = {i: np.zeros((8, 8), np.float32) for i in cls_ds.df["image_id"]}
    expected = {  # key: (lr, weight decay, schedule, monitor, patience, epochs)
        "segmenter": (1e-3, 0.0, "poly", "jaccard_coeff", 0, 500),
        "symmetry": (3.3445e-5, 9.669e-4, "constant", "valid_loss", 10, 100),
        "with_cam": (1.2009e-4, 1.0796e-4, "constant", "valid_loss", 25, 100),
        "without_cam": (1.2009e-4, 1.0796e-4, "constant", "valid_loss", 25, 100),
        "baseline": (1e-5, 5e-4, "constant", "valid_loss", 10, 100)}
    variants = [se.segmenter_variant(seg_ds, cfg), se.symmetry_variant(seg_ds, cfg),
                *se.classifier_variants(cls_ds, cams, cfg)]
    assert [v.key for v in variants] == list(expected)
    for v in variants:
        lr, wd, schedule, monitor, patience, epochs = expected[v.key]
        assert (v.lr, v.schedule.name, v.monitor, v.patience, v.epochs) == (pytest.approx(lr), schedule, monitor,
                                                                            patience, epochs), v.key
        learn = v.learner(*(seg_splits if v.key in ("segmenter", "symmetry") else splits).folds[0])
        if v.key.endswith("_cam") or v.key == "baseline":  # torchvision's B4: stochastic depth 0.2, rising
            assert 0.15 < max_drop_path(learn.model) < 0.2, v.key
        opt = torch_optimizer(learn)
        assert type(opt) is torch.optim.Adam, v.key  # torch's Adam: coupled L2, not AdamW
        assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in learn.model.parameters()
                                                                        if p.requires_grad)
        for group in opt.param_groups:  # every parameter, BN and biases included, gets the weight decay
            assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8, v.key
            assert group["weight_decay"] == pytest.approx(wd) and not group.get("decoupled_weight_decay", False)
        if v.key == "segmenter":
            assert v.schedule.poly_power == 0.9
            f = v.schedule.scheds(v.lr, v.epochs)["lr"]
            assert f(0.0) == pytest.approx(1e-3) and f(0.5) == pytest.approx(1e-3 * 0.5 ** 0.9)
        if v.key in ("symmetry", "baseline"):  # w_c ∝ 1/count_c in class-index order (the original: by label name)
            ds, fold = (seg_ds, seg_splits) if v.key == "symmetry" else (cls_ds, splits)
            y = ds.df["label_idx"].to_numpy()[fold.folds[0][0]]
            w = learn.loss_func.weight.cpu().numpy()
            assert w / w.sum() == pytest.approx((1 / np.bincount(y)) / (1 / np.bincount(y)).sum())
        if v.key.endswith("_cam"):
            assert getattr(learn.loss_func, "weight", None) is None  # unweighted CE
            assert learn.dls.bs == 32 and hasattr(learn.model, "e_layer")
        if v.key == "baseline":  # the plain network: dropout 0.4 before its linear head, images alone, batch 16
            assert learn.model.drop_rate == 0.4 and not hasattr(learn.model, "e_layer") and learn.dls.n_inp == 1
            assert learn.dls.bs == 16
    assert se.SELCNConfig().schedule == "paper"
    assert se.segmenter_variant(seg_ds, dataclasses.replace(cfg, schedule="one_cycle")).schedule.name == "one_cycle"


def test_cached_cams_are_computed_once_and_read_back(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(cm, "compute_cams", lambda learn, ds, size: calls.append(len(ds)) or
                        np.full((len(ds), 4, 4), 0.5, np.float32))
    ds = LesionDataset("t", Path("."), pd.DataFrame({"image_id": ["a", "b"], "label": ["x", "x"]}), ["x"],
                       "multiclass")
    first = cm.cached_cams(None, ds, 4, tmp_path / "cams" / "c.npz")
    again = cm.cached_cams(None, ds, 4, tmp_path / "cams" / "c.npz")
    assert calls == [2] and list(again) == ["a", "b"] and np.allclose(again["a"], first["a"])
    more = LesionDataset("t", Path("."), pd.DataFrame({"image_id": ["a", "b", "c"], "label": ["x"] * 3}), ["x"],
                         "multiclass")
    assert list(cm.cached_cams(None, more, 4, tmp_path / "cams" / "c.npz")) == ["a", "b", "c"] and calls == [2, 3]


def test_comparison_and_summary_use_the_mean_over_fold_models_without_the_ensemble_row(synthetic_dir: Path,
                                                                                       tmp_path: Path) -> None:
    rows = [{"model": se.CLASSIFIERS["with_cam"], "fold": 0, "balanced_accuracy": 0.5, "kappa": 0.1},
            {"model": se.CLASSIFIERS["with_cam"], "fold": 1, "balanced_accuracy": 0.7, "kappa": 0.3},
            {"model": se.CLASSIFIERS["with_cam"], "fold": "ensemble", "balanced_accuracy": 0.99, "kappa": 0.9},
            {"model": se.CLASSIFIERS["without_cam"], "fold": 0, "balanced_accuracy": 0.3, "kappa": 0.0},
            {"model": se.CLASSIFIERS["without_cam"], "fold": 1, "balanced_accuracy": np.nan, "kappa": 0.0}]
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir))
    cls_ds, seg_ds = se.load_data(cfg)
    result = se.summarize({"dice": 0.8, "jaccard": 0.7}, pd.DataFrame(rows),
                          pd.DataFrame({"pointing_game_mean": [0.25]}), cfg, cls_ds, seg_ds, Run(tmp_path, "t"))
    table, summary = result["comparison"], result["summary"]
    assert summary == pytest.approx({"bacc_cam": 0.6, "bacc_no_cam": 0.3, "dice": 0.8, "pointing_game": 0.25})
    ours = table.set_index(["model", "metric"])["ours"]
    assert ours[("SE-LCN (none_lae)", "kappa")] == pytest.approx(0.2) and (tmp_path / "comparison.csv").is_file()


def test_config_paper_defaults_smoke_and_validation(tmp_path: Path) -> None:
    cfg = se.SELCNConfig.from_params({"epochs": "100"})
    assert (cfg.classifier_input, cfg.cam_source, cfg.cam_size, cfg.folds, cfg.rank_lambda) == ("none", "lae", 224, 4,
                                                                                                0.05)
    assert cfg.stage_epochs("seg") == 500 and cfg.stage_epochs("sym") == 100  # the paper's 500 and ≤ 100
    assert se.SELCNConfig(seg_epochs=0).stage_epochs("seg") == 100
    small = se.SELCNConfig(smoke=True).effective()
    assert small.image_size % 16 == 0 and small.seg_encoder == "tu-tf_efficientnet_lite0" and small.folds == 1
    with pytest.raises(ConfigError, match="multiple of 16"):
        se.SELCNConfig.from_params({"image_size": 100})
    with pytest.raises(ConfigError, match="seg_data_dir"):
        se.SELCNConfig.from_params({"seg_data_dir": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="cam_source"):
        se.SELCNConfig.from_params({"cam_source": "crop"})


def test_symmetry_cams_from_an_untrained_net_are_normalised(synthetic_dir: Path, tmp_path: Path) -> None:
    from lesionkit.data.loaders import image_dls
    from lesionkit.engine import make_learner
    from lesionkit.models import create_model

    cls_ds, seg_ds = se.load_data(se.SELCNConfig(data_dir=str(synthetic_dir)))
    torch.manual_seed(0)
    model = create_model("selcn_symmetry")
    dls = image_dls(seg_ds, np.arange(0, 10), np.arange(10, 16), size=32, bs=4, preset="none", norm=None,
                    leak_check=False)
    learn = make_learner(dls, model)
    cams = cm.compute_cams(learn, seg_ds.subset(np.arange(5)), size=16)
    assert cams.shape == (5, 16, 16) and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    truth = lae.true_masks(seg_ds, np.arange(5), 16)
    scores = cm.cam_scores(cams, truth, seg_ds.df["image_id"].iloc[:5].tolist(), "sym")
    assert set(scores.columns) >= {"pointing_game", "iou", "overlap"} and len(scores) == 5
