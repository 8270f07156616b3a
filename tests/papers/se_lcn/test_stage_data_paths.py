"""SE-LCN's data paths: the segmenter on a separate masked dataset (seg_data_dir), hair removal applied to what the
stages read, and the external test set (test_dir) through the whole cascade with the training classes."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lesionkit.papers.se_lcn import recipe as se
from lesionkit.records.runs import Run

torch.set_num_threads(1)


def _ham_layout(root: Path, n: int = 24, masks: int = 20) -> Path:
    """HAM10000's download: the metadata CSV, images in a part folder, HAM10000_segmentations/<id>_segmentation.png."""
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    (root / "HAM10000_images_part_1").mkdir(parents=True)
    (root / "HAM10000_segmentations").mkdir()
    rng = np.random.default_rng(0)
    for k, i in enumerate(ids):
        Image.fromarray((rng.random((48, 64, 3)) * 120 + 100).astype(np.uint8)).save(
            root / "HAM10000_images_part_1" / f"{i}.jpg")
        if k < masks:
            m = np.zeros((48, 64), np.uint8)
            m[10:38, 16:48] = 255
            Image.fromarray(m).save(root / "HAM10000_segmentations" / f"{i}_segmentation.png")
    pd.DataFrame({"lesion_id": [f"HAM_{k:07d}" for k in range(n)], "image_id": ids,
                  "dx": ["nv", "mel"] * (n // 2), "dx_type": "histo", "age": 50, "sex": "male",
                  "localization": "back"}).to_csv(root / "HAM10000_metadata.csv", index=False)
    return root


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hair"


def _cfg(synthetic_dir: Path, **kw) -> se.SELCNConfig:
    return dataclasses.replace(se.SELCNConfig(data_dir=str(synthetic_dir)), image_size=64, cam_size=16, folds=1,
                               seg_encoder="tu-tf_efficientnet_lite0", classifier_backbone="tf_efficientnet_lite0",
                               pretrained=False, **kw)


def test_defaults_are_the_papers() -> None:
    cfg = se.SELCNConfig()
    assert cfg.hair_removal and cfg.pretrained is True and cfg.seg_head == "paper"
    assert cfg.seg_encoder == "tu-xception65" and cfg.seg_data_dir == "" and cfg.drop_path_rate == 0.2
    small = se.SELCNConfig(smoke=True).effective()  # offline: Lite0 has installed ImageNet weights
    assert small.pretrained is True and small.seg_encoder == "tu-tf_efficientnet_lite0"
    assert small.classifier_backbone == "tf_efficientnet_lite0"


def test_every_stage_reads_hair_free_copies_unless_switched_off(synthetic_dir: Path, cache: Path) -> None:
    cls_ds, sym_ds = se.load_data(_cfg(synthetic_dir, max_images=20))
    for ds in (cls_ds, sym_ds):
        assert all(Path(p).parent == cache for p in ds.df["path"]) and ds.info["hair_removal"]
    off, _ = se.load_data(_cfg(synthetic_dir, max_images=20, hair_removal=False))
    assert off.df["image_id"].tolist() == cls_ds.df["image_id"].tolist()
    assert all(Path(p).parent != cache for p in off.df["path"])
    a, b = (np.asarray(Image.open(d.df["path"].iloc[0])) for d in (cls_ds, off))
    assert a.shape == b.shape


def test_segmenter_trains_on_seg_data_dir_masks_with_its_own_split(synthetic_dir: Path, tmp_path: Path,
                                                                      cache: Path) -> None:
    ham = _ham_layout(tmp_path / "ham")
    cfg = _cfg(synthetic_dir, seg_data_dir=str(ham))
    run = Run(tmp_path / "run", "t")
    cls_ds, sym_ds = se.load_data(cfg)
    splits, sym_splits = se.split(cls_ds, sym_ds, cfg, run)
    seg_ds, seg_splits = se.segmenter_data(cfg, sym_ds, sym_splits, cls_ds, splits, run)
    assert len(seg_ds) == 20 and seg_ds.df["mask_path"].notna().all()  # only the images with a mask
    assert seg_ds.df["image_id"].str.startswith("ISIC_").all() and Path(seg_ds.df["path"].iloc[0]).parent == cache
    assert (run.dir / "segmenter_splits.csv").is_file()
    tr, va = seg_splits.folds[0]
    assert sorted(np.concatenate([tr, va, seg_splits.test]).tolist()) == list(range(20))
    x, y = se.segmenter_variant(seg_ds, dataclasses.replace(cfg, seg_batch_size=4)).dls(tr, va).train.one_batch()
    assert x.shape[-2:] == (64, 64) and y.shape[-2:] == (64, 64) and y.max() == 1
    # without seg_data_dir: the symmetry dataset and its split, as before
    same = se.segmenter_data(dataclasses.replace(cfg, seg_data_dir=""), sym_ds, sym_splits, cls_ds, splits, run)
    assert same[0] is sym_ds and same[1] is sym_splits


def test_segmenter_data_holds_out_the_classifiers_test_images(synthetic_dir: Path, tmp_path: Path,
                                                              cache: Path) -> None:
    cfg = _cfg(synthetic_dir, seg_data_dir=str(synthetic_dir), hair_removal=False)
    run = Run(tmp_path / "run", "t")
    cls_ds, sym_ds = se.load_data(cfg)
    splits, sym_splits = se.split(cls_ds, sym_ds, cfg, run)
    seg_ds, seg_splits = se.segmenter_data(cfg, sym_ds, sym_splits, cls_ds, splits, run)
    test_ids = set(cls_ds.df["image_id"].iloc[splits.test])
    assert set(seg_ds.df["image_id"].iloc[seg_splits.test]) >= test_ids
    assert not set(seg_ds.df["image_id"].iloc[np.concatenate(seg_splits.folds[0])]) & test_ids


def test_a_few_shared_images_are_topped_up_to_a_full_test_part(synthetic_dir: Path, tmp_path: Path) -> None:
    """A stage's own dataset that shares only 3 images with the classifier's test set (e.g. ISIC 2018 Task 1 masks
    beside HAM10000) still gets a test part of about test_frac, holding those 3."""
    from lesionkit.data import load_dataset
    from lesionkit.data.splits import Splits

    ds = load_dataset(synthetic_dir)
    cls_ds = ds.subset(np.arange(30))
    splits = Splits(test=np.array([0, 1, 2]), folds=[(np.arange(3, 20), np.arange(20, 30))])
    cfg = _cfg(synthetic_dir, test_frac=0.2)
    own = se.own_split(ds, cls_ds, splits, cfg, Run(tmp_path / "run", "t"), "own.csv")
    test = set(ds.df["image_id"].iloc[own.test])
    shared = ds.df["lesion_id"].isin(cls_ds.df["lesion_id"].iloc[:3]) | ds.df["image_id"].isin(
        cls_ds.df["image_id"].iloc[:3])
    shared |= ds.df["patient_id"].isin(ds.df.loc[shared, "patient_id"].dropna())    # their patients' other images
    assert set(ds.df["image_id"][shared]) <= test and 0.15 * len(ds) <= len(test) <= 0.3 * len(ds)
    assert not test & set(ds.df["image_id"].iloc[np.concatenate(own.folds[0])])


def test_seg_data_dir_without_masks_is_refused(synthetic_dir: Path, tmp_path: Path, cache: Path) -> None:
    ham = _ham_layout(tmp_path / "ham", masks=0)
    cfg = _cfg(synthetic_dir, seg_data_dir=str(ham), hair_removal=False)
    run = Run(tmp_path / "run", "t")
    cls_ds, sym_ds = se.load_data(cfg)
    splits, sym_splits = se.split(cls_ds, sym_ds, cfg, run)
    with pytest.raises(ValueError, match=r"seg_data_dir .*no lesion masks.*_segmentation\.png"):
        se.segmenter_data(cfg, sym_ds, sym_splits, cls_ds, splits, run)


def test_a_dataset_without_symmetry_label_names_sym_data_dir(synthetic_dir: Path, tmp_path: Path) -> None:
    ham = _ham_layout(tmp_path / "ham")
    with pytest.raises(ValueError, match="set sym_data_dir"):
        se.load_data(dataclasses.replace(_cfg(synthetic_dir), data_dir=str(ham), hair_removal=False))


TEST18 = {"ISIC_0034524": "NV", "ISIC_0034525": "VASC", "ISIC_0034526": "MEL", "ISIC_0034527": "NV"}


def _isic2018_test(root: Path) -> Path:
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    df = pd.DataFrame({"image": list(TEST18)})
    for c in cols:
        df[c] = [1.0 if v == c else 0.0 for v in TEST18.values()]
    root.mkdir(parents=True)
    df.to_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv", index=False)
    (root / "ISIC2018_Task3_Test_Input").mkdir()
    rng = np.random.default_rng(1)
    for i in TEST18:
        Image.fromarray((rng.random((40, 56, 3)) * 200).astype(np.uint8)).save(
            root / "ISIC2018_Task3_Test_Input" / f"{i}.jpg")
    return root


def test_external_test_set_runs_through_the_cascade_with_the_training_classes(synthetic_dir: Path, tmp_path: Path,
                                                                              cache: Path) -> None:
    from lesionkit.papers.se_lcn.cams import cam_dls
    from lesionkit.data.loaders import image_dls, mask_dls
    from lesionkit.engine import make_learner
    from lesionkit.models import create_model

    cfg = _cfg(synthetic_dir, max_images=40, test_dir=str(_isic2018_test(tmp_path / "ext")))
    run = Run(tmp_path / "run", "t")
    cls_ds, sym_ds = se.load_data(cfg)
    tr, va = se.split(cls_ds, sym_ds, cfg, run)[0].folds[0]
    torch.manual_seed(0)
    seg = make_learner(mask_dls(sym_ds, tr, va, size=64, bs=4, preset="none"),
                       create_model("selcn_segmenter", encoder=cfg.seg_encoder))
    sym = make_learner(image_dls(sym_ds, tr, va, size=64, bs=4, preset="none", norm=None),
                       create_model("selcn_symmetry"))
    cams = {i: np.full((16, 16), 0.5, np.float32) for i in cls_ds.df["image_id"]}
    cams["ISIC_0034525"] = np.zeros((16, 16), np.float32)  # a training id equal to an external one keeps its map
    clf = make_learner(cam_dls(cls_ds, cams, tr, va, 64, 4),
                       create_model("selcn_classifier", backbone=cfg.classifier_backbone,
                                    num_classes=cls_ds.n_classes, with_symmetry_net=False))
    base = make_learner(image_dls(cls_ds, tr, va, size=64, bs=4, preset="none", norm=None),
                        create_model(cfg.classifier_backbone, num_classes=cls_ds.n_classes))
    results = SimpleNamespace(learners={"with_cam": clf, "baseline": base})  # the baseline reads no map
    table = se.evaluate_external(cfg, seg, sym, results, cams, run, ds=cls_ds)
    assert table["images"].tolist() == [4, 4]
    assert table["model"].tolist() == [se.CLASSIFIERS["with_cam"], se.CLASSIFIERS["baseline"]]
    assert pd.read_csv(run.dir / "predictions" / "external_baseline.csv")["image"].tolist() == list(TEST18)
    pred = pd.read_csv(run.dir / "predictions" / "external_with_cam.csv")
    assert pred["image"].tolist() == list(TEST18)  # exactly the external rows, in order
    truth = pd.read_csv(run.dir / "predictions" / "external_with_cam_truth.csv").set_index("image")
    assert truth.index.tolist() == list(TEST18)  # the truth in the training classes' (HAM's) columns
    assert truth.idxmax(axis=1).tolist() == list(TEST18.values()) and (truth.sum(axis=1) == 1).all()
    assert set(truth.columns) == {c.upper() for c in cls_ds.classes}
    ext = np.load(run.dir / "cams" / "external.npz")
    assert sorted(ext["image_ids"].tolist()) == sorted(TEST18)
    assert np.array_equal(cams["ISIC_0034525"], np.zeros((16, 16), np.float32))  # the training map is back
    assert not (set(TEST18) - {"ISIC_0034525"}) & set(cams)  # the external maps are gone
