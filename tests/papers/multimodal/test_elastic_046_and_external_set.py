"""The multimodal paper's remaining settings (issue 12): albumentations 0.4.6's ElasticTransform (methods-b §A.6,
an affine warp of alpha_affine px before the elastic field), the external test set through the image + metadata
model, and ImageNet B2 weights by default."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lesionkit.data import augment
from lesionkit.data.splits import make_splits
from lesionkit.papers.multimodal import recipe as mm
from lesionkit.records.runs import start_run
from lesionkit.testing import write_isic2020


def _img(seed: int = 0, size: int = 64) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _apply(t, img: np.ndarray, seed: int) -> np.ndarray:
    import albumentations as A

    return A.Compose([t], seed=seed)(image=img)["image"]


def test_elastic_046_affine_part_moves_pixels_even_without_the_field() -> None:
    img = _img()
    moved = _apply(augment.ElasticTransform046(alpha=0, alpha_affine=20, p=1.0), img, seed=3)
    assert np.abs(moved.astype(int) - img).mean() > 10
    again = _apply(augment.ElasticTransform046(alpha=0, alpha_affine=20, p=1.0), img, seed=3)
    assert np.array_equal(moved, again)  # deterministic under the Compose seed
    other = _apply(augment.ElasticTransform046(alpha=0, alpha_affine=20, p=1.0), img, seed=4)
    assert not np.array_equal(moved, other)


def test_elastic_046_without_affine_is_the_plain_046_elastic_field() -> None:
    import cv2
    from scipy.ndimage import gaussian_filter

    img = _img(1)
    out = augment.elastic_046(img, alpha=30.0, sigma=4.0, alpha_affine=0.0, random_state=7)
    rs = np.random.RandomState(7)
    rs.uniform(-0.0, 0.0, size=(3, 2))  # 0.4.6 draws the three affine points first, from the same RandomState
    dx = np.float32(gaussian_filter(rs.rand(64, 64) * 2 - 1, 4.0) * 30.0)
    dy = np.float32(gaussian_filter(rs.rand(64, 64) * 2 - 1, 4.0) * 30.0)
    x, y = np.meshgrid(np.arange(64), np.arange(64))
    want = cv2.remap(img, np.float32(x + dx), np.float32(y + dy), interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT_101)
    assert np.array_equal(out, want) and not np.array_equal(out, img)
    t = augment.ElasticTransform046(alpha=3)
    assert (t.alpha, t.sigma, t.alpha_affine) == (3, 50.0, 50.0)  # 0.4.6's defaults behind ElasticTransform(alpha=3)


def test_first_place_pipeline_uses_the_046_elastic_and_keeps_2x_as_option() -> None:
    import albumentations as A

    def elastic_of(pipe):
        return [t for t in pipe.transforms if isinstance(t, A.OneOf)][1].transforms[2]

    assert type(elastic_of(augment.first_place_train(64))).__name__ == "ElasticTransform046"
    assert elastic_of(augment.first_place_train(64)).alpha == 3
    assert type(elastic_of(augment.first_place_train(64, elastic="albumentations2"))) is A.ElasticTransform
    with pytest.raises(ValueError, match="elastic"):
        augment.first_place_train(64, elastic="0.5")


def test_defaults_start_from_imagenet_b2_and_smoke_stays_offline() -> None:
    cfg = mm.MultimodalConfig()
    assert (cfg.backbone, cfg.pretrained) == ("tf_efficientnet_b2.aa_in1k", True)
    small = mm.MultimodalConfig.from_params({"smoke": True}).effective()
    assert small.backbone == "tf_efficientnet_lite0" and small.pretrained is True  # installed weights


def _isic2020_external(root: Path) -> pd.DataFrame:
    """A Kaggle ISIC 2020 folder whose metadata differs per row, so each row's encoding is identifiable."""
    return write_isic2020(root, [f"ISIC_{9000 + i}" for i in range(6)], size=(40, 40),
                          diagnosis=["nevus", "melanoma", "nevus", "seborrheic keratosis", "melanoma", "nevus"],
                          target=[0, 1, 0, 0, 1, 0], tfrecord=[0, 1, 2, 3, 4, 5], sex=["male", "female"] * 3,
                          age_approx=[20.0, 35.0, 50.0, 65.0, 80.0, 45.0],
                          anatom_site_general_challenge=["torso", "head/neck", "lower extremity", "torso",
                                                         "upper extremity", "head/neck"])


class _Recorder(torch.nn.Module):
    """Stands in for the fitted model: returns logits from the metadata and keeps every metadata batch."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.inner, self.seen = model, []

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.append(meta.detach().clone())
        return torch.stack([torch.zeros(len(x)), meta[:, 1] * 5], 1)  # P(melanoma) rises with age


def test_external_isic2020_is_scored_row_for_row_with_its_metadata(synthetic_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    raw = _isic2020_external(ext_dir)
    cfg = mm.MultimodalConfig(data_dir=str(synthetic_dir), test_dir=str(ext_dir), max_images=60, image_size=32,
                              batch_size=4, backbone="tf_efficientnet_lite0", pretrained=False, tta=False)
    ds = mm.load_data(cfg)
    splits = make_splits(ds.df, test_frac=0.25, valid_frac=0.25)
    run = start_run("multimodal_test", mm.MultimodalConfig, {}, watch_notebook=False)
    learners = {}
    for v in mm.variants(ds, splits, cfg):
        learn = v.learner(*splits.folds[0])
        learn.model = _Recorder(learn.model)
        learners[v.key] = learn
    table = mm.evaluate_external(ds, splits, SimpleNamespace(learners=learners), cfg, run).set_index("model")
    assert table["images"].tolist() == [6, 6] and table["melanomas"].tolist() == [2, 2]
    assert table.loc["image + metadata", "auc"] == pytest.approx(5 / 8)  # ages 35, 80 against 20, 50, 65, 45
    meta = torch.cat(learners["meta"].model.seen).numpy()
    enc = learners["meta"].dls.meta_encoder
    ext = mm.load_external_set(cfg, ds)
    assert ext.df["label_idx"].tolist() == raw["target"].tolist() and ext.classes == ds.classes
    assert np.allclose(meta, enc.transform(ext.df), atol=1e-6)  # the training encoder, every external row
    assert np.allclose(meta[:, enc.feature_names.index("age")], raw["age_approx"] / 90)
    assert meta[:, [i for i, n in enumerate(enc.feature_names) if n.startswith("site_")]].sum(1).min() >= 1
    pred = pd.read_csv(run.dir / "predictions" / "external_meta.csv")
    assert pred.iloc[:, 0].tolist() == raw["image_name"].tolist()  # every external row, in order, once


def test_external_official_download_scores_its_test_part_only(synthetic_dir: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """ISIC 2018 with its training and test parts: only the 3 test images, MEL as melanoma, the rest as other."""
    from types import SimpleNamespace

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    parts = {"Training": {"ISIC_0024306": "NV", "ISIC_0024310": "MEL"},
             "Test": {"ISIC_0034524": "NV", "ISIC_0034525": "VASC", "ISIC_0034526": "MEL"}}
    for part, labels in parts.items():
        pd.DataFrame({"image": list(labels), **{c: [float(v == c) for v in labels.values()] for c in cols}}).to_csv(
            tmp_path / f"ISIC2018_Task3_{part}_GroundTruth.csv", index=False)
        (tmp_path / f"ISIC2018_Task3_{part}_Input").mkdir()
        for i in labels:
            Image.new("RGB", (40, 30), (120, 80, 60)).save(tmp_path / f"ISIC2018_Task3_{part}_Input" / f"{i}.jpg")
    cfg = mm.MultimodalConfig(data_dir=str(synthetic_dir), test_dir=str(tmp_path), max_images=60, image_size=32,
                              batch_size=4, backbone="tf_efficientnet_lite0", pretrained=False, tta=False)
    ds = mm.load_data(cfg)
    splits = make_splits(ds.df, test_frac=0.25, valid_frac=0.25)
    ext = mm.load_external_set(cfg, ds)
    assert ext.df["image_id"].tolist() == list(parts["Test"]) and ext.df["label_idx"].tolist() == [0, 0, 1]
    run = start_run("multimodal_test", mm.MultimodalConfig, {}, watch_notebook=False)
    learners = {v.key: v.learner(*splits.folds[0]) for v in mm.variants(ds, splits, cfg)}
    table = mm.evaluate_external(ds, splits, SimpleNamespace(learners=learners), cfg, run)
    assert table["images"].tolist() == [3, 3] and table["melanomas"].tolist() == [1, 1]


def test_no_test_dir_means_no_external_set() -> None:
    from types import SimpleNamespace

    ds = SimpleNamespace(classes=["other", "melanoma"])
    assert mm.load_external_set(mm.MultimodalConfig(), ds) is None
    assert mm.evaluate_external(ds, None, None, mm.MultimodalConfig(), None) is None
