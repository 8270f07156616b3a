"""Each reader on its real sample in the shared data (skipped without LESIONKIT_DATA) and on the synthetic set."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lesionkit.data import load_dataset
from lesionkit.data.detect import detect_format
from lesionkit.data.table import CANONICAL_COLUMNS

HAM_224 = {"nv": 4323, "bkl": 583, "mel": 491, "bcc": 264, "akiec": 183, "vasc": 80, "df": 60}


def _canonical(ds) -> None:
    assert list(ds.df.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)
    assert (np.asarray(ds.classes)[ds.df.label_idx] == ds.df.label).all()
    assert ds.df.image_id.is_unique and ds.df.path.map(lambda p: p.startswith(str(ds.root))).all()


def test_ham10000_224_labels(shared_data):
    root = shared_data / "ham10000_224"
    assert detect_format(root) == "ham10000"
    ds = load_dataset(root)
    _canonical(ds)
    assert ds.class_counts().to_dict() == HAM_224 and len(ds) == 5984
    assert ds.df.lesion_id.nunique() == 5984 and ds.df.dx_type.notna().all()
    assert ds.df.age.isna().sum() == 36 and set(ds.df.sex.dropna()) <= {"male", "female"}


def test_ham10000_224_from_official_metadata(shared_data):
    root = shared_data / "ham10000_224"
    with pytest.raises(FileNotFoundError, match="10015|4031"):
        load_dataset(root, "ham10000", which="metadata")      # 4031 metadata rows have no image here
    with pytest.warns(UserWarning, match="dropped 4031"):
        ds = load_dataset(root, "ham10000", which="metadata", missing="drop")
    assert ds.class_counts().to_dict() == HAM_224


def test_isic2020_512(shared_data):
    root = shared_data / "isic2020_512"
    assert detect_format(root) == "isic2020"
    ds = load_dataset(root)
    _canonical(ds)
    assert ds.task == "binary" and ds.classes == ["other", "melanoma"]
    assert ds.class_counts().to_dict() == {"other": 561, "melanoma": 39}
    assert ds.df.patient_id.nunique() == 104 and ds.df.site.isna().sum() == 3
    d9 = load_dataset(root, target="diagnosis9")
    assert d9.info["mel_idx"] == 6 and d9.classes[6] == "melanoma"
    assert d9.class_counts()[["melanoma", "nevus", "BKL", "unknown"]].tolist() == [39, 35, 4, 522]


def test_ph2_with_masks_and_asymmetry(shared_data):
    root = shared_data / "ph2"
    assert detect_format(root) == "ph2"
    ds = load_dataset(root)
    _canonical(ds)
    assert ds.class_counts().to_dict() == {"common_nevus": 80, "atypical_nevus": 80, "melanoma": 40}
    assert ds.df.mask_path.notna().all() and ds.has_masks
    assert load_dataset(root, target="asymmetry").class_counts().to_dict() == {"0": 117, "1": 31, "2": 52}
    assert load_dataset(root, target="asymmetric").class_counts().to_dict() == {"symmetric": 117, "asymmetric": 83}
    assert {"pigment_network", "blue_whitish_veil", "color_black"} <= set(ds.df.columns)


def test_testsuite_sample(shared_data):
    root = shared_data / "testsuite_sample"
    assert detect_format(root) == "csv"
    ds = load_dataset(root)
    _canonical(ds)
    assert len(ds) == 30 and ds.df.mask_path.notna().sum() == 8
    assert ds.class_counts().to_dict() == {"akiec": 2, "bcc": 2, "bkl": 4, "df": 2, "mel": 7, "nv": 10,
                                           "unknown_benign": 1, "vasc": 2}


def test_shared_name_resolves(shared_data, monkeypatch):
    monkeypatch.setenv("LESIONKIT_DATA", str(shared_data))
    assert len(load_dataset("testsuite_sample")) == 30


# ---- the synthetic set, in every layout it writes -------------------------------------------------------------

def _truth(synthetic_dir) -> pd.Series:
    return pd.read_csv(synthetic_dir / "labels.csv").dx.value_counts().sort_index()


def test_synthetic_default_layout(synthetic_dir):
    assert detect_format(synthetic_dir) == "synthetic"
    ds = load_dataset(synthetic_dir)
    _canonical(ds)
    assert ds.class_counts().to_dict() == _truth(synthetic_dir).to_dict()
    assert ds.df.mask_path.notna().all() and ds.df.patient_id.notna().all()
    assert ds.df.lesion_id.nunique() == 60 and ds.info["mel_idx"] == 4
    mel = load_dataset(synthetic_dir, target="melanoma")
    assert mel.class_counts()["melanoma"] == _truth(synthetic_dir)["mel"] and mel.task == "binary"


@pytest.mark.parametrize("fmt", ["ham10000", "isic2018", "csv"])
def test_synthetic_ham_and_isic2018_layouts(synthetic_dir, fmt):
    kw = {"which": "metadata"} if fmt == "ham10000" else {}
    ds = load_dataset(synthetic_dir, fmt, **kw)
    _canonical(ds)
    assert ds.class_counts().to_dict() == _truth(synthetic_dir).to_dict()
    if fmt != "csv":
        assert ds.df.mask_path.notna().all()                  # <id>_segmentation.png found by id


def test_synthetic_isic2020_layout(synthetic_dir, tmp_path):
    # train.csv is ISIC 2020's table; give it its own folder (labels.csv would win detection) with images linked
    (tmp_path / "train.csv").write_bytes((synthetic_dir / "train.csv").read_bytes())
    (tmp_path / "train").symlink_to(synthetic_dir / "images")
    assert detect_format(tmp_path) == "isic2020"
    ds = load_dataset(tmp_path)
    t = pd.read_csv(synthetic_dir / "train.csv")
    assert ds.class_counts().to_dict() == {"other": int((t.target == 0).sum()), "melanoma": int(t.target.sum())}
    assert ds.df.patient_id.nunique() == t.patient_id.nunique()
