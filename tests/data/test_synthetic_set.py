"""The synthetic dermoscopy set: complete ISIC layouts, grouped structure, real and lesion-like class signal."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data.synthetic import CLASSES, make_synthetic


def test_layout_and_columns(synthetic_dir) -> None:
    df = pd.read_csv(synthetic_dir / "labels.csv")
    for col in ("image_id", "lesion_id", "patient_id", "dx", "dx_type", "age", "sex", "localization",
                "anatom_site_general_challenge", "target", "symmetry", "hair", "black_frame", "ruler", "filename"):
        assert col in df.columns
    assert set(df.dx) == set(CLASSES)
    assert set(df.dx_type) <= {"histo", "follow_up", "consensus", "confocal"}
    assert (df.target == (df.dx == "mel")).all()
    assert df.groupby("lesion_id").size().max() > 1, "several images per lesion"
    assert df.groupby("patient_id").lesion_id.nunique().max() > 1, "several lesions per patient"
    assert (df.groupby("lesion_id").dx.nunique() == 1).all()
    img = Image.open(synthetic_dir / df.filename[0])
    mask = np.asarray(Image.open(synthetic_dir / df.mask_filename[0]))
    assert img.mode == "RGB" and img.size == (64, 64) and set(np.unique(mask)) <= {0, 255}
    onehot = pd.read_csv(synthetic_dir / "ISIC2018_Task3_Training_GroundTruth.csv")
    assert list(onehot.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert (onehot.iloc[:, 1:].sum(1) == 1).all()
    isic20 = pd.read_csv(synthetic_dir / "train.csv")
    assert {"image_name", "patient_id", "age_approx", "anatom_site_general_challenge", "target"} <= set(isic20.columns)
    assert json.loads((synthetic_dir / "dataset.json").read_text())["n_images"] == len(df)


def test_seeded_and_cached(tmp_path) -> None:
    a = make_synthetic(tmp_path / "a", n_lesions=10, size=48, seed=3)
    b = make_synthetic(tmp_path / "b", n_lesions=10, size=48, seed=3)
    assert (a / "labels.csv").read_text() == (b / "labels.csv").read_text()
    first = sorted(p.name for p in (a / "images").iterdir())[0]
    assert (a / "images" / first).read_bytes() == (b / "images" / first).read_bytes()
    mtime = (a / "dataset.json").stat().st_mtime
    assert make_synthetic(a, n_lesions=10, size=48, seed=3) == a and (a / "dataset.json").stat().st_mtime == mtime
    with pytest.raises(FileExistsError, match="other parameters"):
        make_synthetic(a, n_lesions=11, size=48, seed=3)


def test_lesion_signal_follows_abcd(tmp_path) -> None:
    """Melanomas are larger, more asymmetric and more variegated than nevi, measured on the images themselves."""
    root = make_synthetic(tmp_path / "s", n_lesions=120, size=96, seed=1)
    df = pd.read_csv(root / "labels.csv")
    area, spread = [], []
    for _, r in df.iterrows():
        mask = np.asarray(Image.open(root / r.mask_filename)) > 0
        rgb = np.asarray(Image.open(root / r.filename), dtype=float)
        area.append(mask.mean())
        spread.append(rgb[mask].std(0).mean() if mask.any() else 0.0)
    df["area"], df["spread"] = area, spread
    mel, nv = df[df.dx == "mel"], df[df.dx == "nv"]
    assert mel.area.mean() > 1.4 * nv.area.mean()
    assert mel.symmetry.mean() > nv.symmetry.mean() + 0.5
    assert mel.spread.mean() > nv.spread.mean()
    assert mel.age.mean() > nv.age.mean() + 8


def test_symmetry_is_a_clear_property_of_each_lesion() -> None:
    """Generator 2: a symmetric lesion is mirror-symmetric about both axes, an asymmetric one clearly is not, so
    the symmetry label is learnable (version 1 left most outlines within 0.05 IoU of the 0.9 threshold)."""
    from lesionkit.data.synthetic import _axis_ious, _lesion_params
    from lesionkit.data.synthetic_looks import LOOKS

    rng = np.random.default_rng(0)
    ious = np.array([_axis_ious(_lesion_params(rng, LOOKS[dx]), res=128) for dx in ("bkl", "bcc") for _ in range(60)])
    low = ious.min(1)
    assert ((low > 0.95) | (low < 0.88)).mean() > 0.85, np.round(np.sort(low), 3)
    assert 0.25 < (low < 0.9).mean() < 0.75                       # both kinds are common in these classes


def test_null_control_has_no_class_signal(tmp_path) -> None:
    root = make_synthetic(tmp_path / "n", n_lesions=150, size=48, seed=2, signal=False)
    df = pd.read_csv(root / "labels.csv")
    by_class = df.groupby("dx").symmetry.mean()
    assert by_class.max() - by_class.min() < 0.8
    assert abs(df[df.dx == "mel"].age.mean() - df[df.dx == "nv"].age.mean()) < 10


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="size"):
        make_synthetic(tmp_path / "x", n_lesions=10, size=16)
    with pytest.raises(ValueError, match="n_lesions"):
        make_synthetic(tmp_path / "y", n_lesions=3, size=48)
