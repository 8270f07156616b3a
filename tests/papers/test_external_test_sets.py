"""`test_dir` takes an official download (issue 12): the most held-out part is scored, not the training rows the
readers default to, and its class names map onto the training classes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import write_derm7pt
from lesionkit.data.readers.ham10000 import HAM_CLASSES
from lesionkit.papers.common import load_external
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.testing import write_isic2020


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


def test_derm7pt_scores_its_official_test_rows_with_ham_classes(tmp_path):
    write_derm7pt(tmp_path)
    ext = _external(tmp_path)
    assert ext.df.image_id.tolist() == ["NEL_NEL005", "NEL_NEL007"]          # test rows; miscellaneous dropped
    assert ext.df.label.tolist() == ["vasc", "df"]
    assert ext.df.label_idx.tolist() == [HAM_CLASSES.index("vasc"), HAM_CLASSES.index("df")]


def _ph2(root: Path) -> None:
    rows = (("IMD003", 0), ("IMD009", 1), ("IMD058", 2))
    lines = ["|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry || Pigment Network || "
             "Dots/Globules || Streaks || Regression Areas || Blue-Whitish Veil || Colors ||"]
    for name, clin in rows:
        lines.append(f"|| {name} ||  || {clin} || {clin} || T || A || A || A || A || 3 4 ||")
        base = root / "PH2 Dataset images" / name
        for sub, mode in ((f"{name}_Dermoscopic_Image/{name}.bmp", "RGB"), (f"{name}_lesion/{name}_lesion.bmp", "L")):
            (base / sub).parent.mkdir(parents=True, exist_ok=True)
            Image.new(mode, (24, 18), 200).save(base / sub, "BMP")
    (root / "PH2_dataset.txt").write_text("\n".join(["Legend ...", *lines, ""]))


def test_ph2_is_read_whole_its_nevi_scored_as_ham_nevi(tmp_path):
    _ph2(tmp_path)
    ext = _external(tmp_path)
    assert ext.df.image_id.tolist() == ["IMD003", "IMD009", "IMD058"]
    assert ext.df.label.tolist() == ["nv", "nv", "mel"] and ext.classes == list(HAM_CLASSES)
    own = load_external(QuickstartConfig(test_dir=str(tmp_path)), ["common_nevus", "atypical_nevus", "melanoma"])
    assert own.df.label_idx.tolist() == [0, 1, 2]                           # a model trained on PH2's own classes


def _kaggle2020(root: Path) -> list[str]:
    ids = ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212", "ISIC_0068279"]
    write_isic2020(root, ids, diagnosis=["nevus", "melanoma", "seborrheic keratosis", "nevus"], target=[0, 1, 0, 0],
                   tfrecord=[0, 2, 4, 13], age_approx=45.0)
    return ids


def test_isic2020_is_read_whole_for_a_binary_melanoma_model(tmp_path):
    ids = _kaggle2020(tmp_path)
    ext = load_external(QuickstartConfig(test_dir=str(tmp_path)), ["rest", "mel"], positive="mel")
    assert ext.df.image_id.tolist() == ids and ext.classes == ["rest", "mel"]
    assert ext.df.label.tolist() == ["rest", "mel", "rest", "rest"] and ext.df.label_idx.tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("layout", ["isic2018", "ph2", "derm7pt"])
def test_a_binary_model_scores_every_other_class_as_the_rest(tmp_path, layout):
    if layout == "isic2018":
        _onehot_part(tmp_path, "ISIC2018_Task3_Test_GroundTruth.csv", "ISIC2018_Task3_Test_Input", TEST18, ISIC2018)
        want = [0, 0, 1]
    elif layout == "ph2":
        _ph2(tmp_path)
        want = [0, 0, 1]
    else:
        write_derm7pt(tmp_path)
        want = [0, 0]
    ext = load_external(QuickstartConfig(test_dir=str(tmp_path)), ["rest", "mel"], positive="mel")
    assert ext.df.label_idx.tolist() == want and set(ext.df.label) <= {"rest", "mel"}


def test_a_binary_model_refuses_a_set_without_its_positive_class(tmp_path):
    for cls in ("bkl", "nv"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (24, 18)).save(tmp_path / cls / f"{cls}.jpg")
    with pytest.raises(ValueError, match=r"no class 'mel' .* among its classes \['bkl', 'nv'\]"):
        load_external(QuickstartConfig(test_dir=str(tmp_path)), ["rest", "mel"], positive="mel")
