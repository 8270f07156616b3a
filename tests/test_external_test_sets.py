"""`test_dir` takes an official download (issue 12): the most held-out part is scored, not the training rows the
readers default to, and its class names map onto the training classes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lesionkit.data.readers.ham10000 import HAM_CLASSES
from lesionkit.experiments.common import load_external
from lesionkit.experiments.quickstart import QuickstartConfig


def _onehot_part(root: Path, csv: str, folder: str, labels: dict[str, str], cols: list[str]) -> None:
    df = pd.DataFrame({"image": list(labels)})
    for c in cols:
        df[c] = [1.0 if v == c else 0.0 for v in labels.values()]
    df.to_csv(root / csv, index=False)
    (root / folder).mkdir(parents=True, exist_ok=True)
    for k, i in enumerate(labels):
        Image.new("RGB", (24, 18), (20 * k, 90, 60)).save(root / folder / f"{i}.jpg")


ISIC2018 = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
TRAIN18 = {"ISIC_0024306": "NV", "ISIC_0024307": "NV", "ISIC_0024310": "MEL", "ISIC_0024311": "BKL"}
TEST18 = {"ISIC_0034524": "NV", "ISIC_0034525": "VASC", "ISIC_0034526": "MEL"}


def _external(root: Path):
    return load_external(QuickstartConfig(test_dir=str(root)), list(HAM_CLASSES))


@pytest.mark.parametrize("with_training", [True, False])
def test_isic2018_test_part_is_what_gets_scored(tmp_path, with_training):
    if with_training:
        _onehot_part(tmp_path, "ISIC2018_Task3_Training_GroundTruth.csv", "ISIC2018_Task3_Training_Input", TRAIN18,
                     ISIC2018)
    _onehot_part(tmp_path, "ISIC2018_Task3_Test_GroundTruth.csv", "ISIC2018_Task3_Test_Input", TEST18, ISIC2018)
    ext = _external(tmp_path)
    assert ext.df.image_id.tolist() == list(TEST18) and (ext.df.split == "test").all()
    assert ext.df.label.tolist() == ["nv", "vasc", "mel"] and ext.classes == list(HAM_CLASSES)
    assert ext.df.label_idx.tolist() == [HAM_CLASSES.index(c) for c in ("nv", "vasc", "mel")]


def test_isic2019_test_part_maps_its_class_codes(tmp_path):
    cols = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
    _onehot_part(tmp_path, "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Input",
                 {"ISIC_0000000": "NV", "ISIC_0000001": "MEL"}, cols)
    _onehot_part(tmp_path, "ISIC_2019_Test_GroundTruth.csv", "ISIC_2019_Test_Input",
                 {"ISIC_0034321": "AK", "ISIC_0034322": "MEL", "ISIC_0034323": "NV"}, cols)
    ext = _external(tmp_path)
    assert ext.df.image_id.tolist() == ["ISIC_0034321", "ISIC_0034322", "ISIC_0034323"]
    assert ext.df.label.tolist() == ["akiec", "mel", "nv"]                  # AK = akiec, MEL = mel
    pd.DataFrame({"image": ["ISIC_0034324"], **{c: [float(c == "SCC")] for c in cols}}).to_csv(
        tmp_path / "ISIC_2019_Test_GroundTruth.csv", mode="a", header=False, index=False)
    Image.new("RGB", (24, 18)).save(tmp_path / "ISIC_2019_Test_Input" / "ISIC_0034324.jpg")
    with pytest.raises(ValueError, match=r"classes \['SCC'\] were not in the training data"):
        _external(tmp_path)


def test_isic2017_test_part_only(tmp_path):
    parts = {"Training": ["ISIC_0000000", "ISIC_0000001"], "Validation": ["ISIC_0001769"],
             "Test_v2": ["ISIC_0012086", "ISIC_0012087"]}
    for tag, ids in parts.items():
        pd.DataFrame({"image_id": ids, "melanoma": [1.0, 0.0][: len(ids)],
                      "seborrheic_keratosis": [0.0] * len(ids)}).to_csv(
            tmp_path / f"ISIC-2017_{tag}_Part3_GroundTruth.csv", index=False)
        (tmp_path / f"ISIC-2017_{tag}_Data").mkdir()
        for i in ids:
            Image.new("RGB", (24, 18)).save(tmp_path / f"ISIC-2017_{tag}_Data" / f"{i}.jpg")
    ext = load_external(QuickstartConfig(test_dir=str(tmp_path)), ["other", "melanoma"])
    assert ext.df.image_id.tolist() == parts["Test_v2"] and ext.df.label_idx.tolist() == [1, 0]


def test_class_folders_with_a_test_split_score_only_the_test_folder(tmp_path):
    for part, n in (("train", 3), ("test", 2)):
        for cls in ("mel", "nv"):
            (tmp_path / part / cls).mkdir(parents=True)
            for k in range(n):
                Image.new("RGB", (24, 18), (40 * k, 30, 90)).save(tmp_path / part / cls / f"{part}_{cls}_{k}.jpg")
    ext = _external(tmp_path)
    assert len(ext) == 4 and (ext.df.split == "test").all()
    assert sorted(ext.df.label) == ["mel", "mel", "nv", "nv"] and ext.classes == list(HAM_CLASSES)
