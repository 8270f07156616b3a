"""Readers against tiny layouts generated in tmp_path exactly as the official downloads name files and columns
(ISIC 2017/2018/2019/2020, derm7pt, PH2 original, class folders, any CSV); no real data involved."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data import load_dataset
from lesionkit.data.detect import detect_format
from lesionkit.data.errors import FormatDetectionError
from lesionkit.data.readers.derm7pt import patch_attention_label
from lesionkit.data.readers.isic2020 import FOLD_MAPS, first_place_label
from lesionkit.data.splits import official_splits
from lesionkit.testing import write_isic2020


def _img(path: Path, colour=(120, 80, 60), size=(24, 18), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)


def _mask(path: Path, size=(24, 18)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, 255).save(path)


def test_isic2017(tmp_path):
    parts = {"Training": ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"], "Validation": ["ISIC_0001769"],
             "Test_v2": ["ISIC_0012086", "ISIC_0012087"]}
    labels = {"ISIC_0000000": (0, 0), "ISIC_0000001": (1, 0), "ISIC_0000002": (0, 1), "ISIC_0001769": (1, 0),
              "ISIC_0012086": (0, 0), "ISIC_0012087": (1, 0)}
    for tag, ids in parts.items():
        pd.DataFrame({"image_id": ids, "melanoma": [float(labels[i][0]) for i in ids],
                      "seborrheic_keratosis": [float(labels[i][1]) for i in ids]}).to_csv(
            tmp_path / f"ISIC-2017_{tag}_Part3_GroundTruth.csv", index=False)
        for i in ids:
            _img(tmp_path / f"ISIC-2017_{tag}_Data" / f"{i}.jpg")
            _img(tmp_path / f"ISIC-2017_{tag}_Data" / f"{i}_superpixels.png", fmt="PNG")
            _mask(tmp_path / f"ISIC-2017_{tag}_Part1_GroundTruth" / f"{i}_segmentation.png")
        pd.DataFrame({"image_id": ids, "age_approximate": ["55", "unknown", "30"][: len(ids)],
                      "sex": ["female", "unknown", "male"][: len(ids)]}).to_csv(
            tmp_path / f"ISIC-2017_{tag}_Data" / f"ISIC-2017_{tag}_Data_metadata.csv", index=False)
    assert detect_format(tmp_path) == "isic2017"
    ds = load_dataset(tmp_path)
    assert ds.classes == ["other", "melanoma"] and ds.class_counts().tolist() == [3, 3]
    assert {k: len(v) for k, v in official_splits(ds.df).items()} == {"train": 3, "valid": 1, "test": 2}
    assert ds.df.path.str.endswith(".jpg").all() and ds.df.mask_path.notna().all()
    assert ds.df.age.isna().sum() == 2 and ds.df.sex.isna().sum() == 2          # 'unknown' -> NaN
    d3 = load_dataset(tmp_path, target="diagnosis", parts=("train",))
    assert d3.class_counts().to_dict() == {"nevus": 1, "melanoma": 1, "seborrheic_keratosis": 1}


def _isic2018(root: Path) -> None:
    cols = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    train = {"ISIC_0024306": "NV", "ISIC_0024307": "NV", "ISIC_0024310": "MEL", "ISIC_0024311": "BKL"}
    test = {"ISIC_0034524": "NV", "ISIC_0034525": "VASC"}
    for part, ids in (("Training", train), ("Test", test)):
        df = pd.DataFrame({"image": list(ids)})
        for c in cols:
            df[c] = [1.0 if v == c else 0.0 for v in ids.values()]
        df.to_csv(root / f"ISIC2018_Task3_{part}_GroundTruth.csv", index=False)
        for i in ids:
            _img(root / f"ISIC2018_Task3_{part}_Input" / f"{i}.jpg")
    pd.DataFrame({"image": list(train), "lesion_id": ["HAM_1", "HAM_1", "HAM_2", "HAM_3"],
                  "diagnosis_confirm_type": ["follow_up", "follow_up", "histo", "histo"]}).to_csv(
        root / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)
    _mask(root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0024310_segmentation.png")


def test_isic2018_training_and_external_test(tmp_path):
    _isic2018(tmp_path)
    assert detect_format(tmp_path) == "isic2018"
    ds = load_dataset(tmp_path)
    assert ds.class_counts()[["mel", "nv", "bkl"]].tolist() == [1, 2, 1] and (ds.df.split == "train").all()
    assert ds.df.lesion_id.tolist() == ["HAM_1", "HAM_1", "HAM_2", "HAM_3"]
    assert ds.df.dx_type.iloc[2] == "histo" and ds.df.mask_path.notna().sum() == 1
    test = load_dataset(tmp_path, parts=("test",))                              # the external test set on its own
    assert test.classes == ds.classes and test.class_counts()[["nv", "vasc"]].tolist() == [1, 1]


def test_isic2018_rejects_non_onehot_rows(tmp_path):
    _isic2018(tmp_path)
    gt = tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv"
    df = pd.read_csv(gt)
    df.loc[1, "MEL"] = 1.0
    df.to_csv(gt, index=False)
    with pytest.raises(ValueError, match=r"not one-hot.*line 3 \(ISIC_0024307\)"):
        load_dataset(tmp_path)


def test_isic2019_official(tmp_path):
    cols = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    ids = {"ISIC_0000000": "NV", "ISIC_0000002_downsampled": "MEL", "ISIC_0053454": "SCC", "ISIC_0060000": "UNK"}
    df = pd.DataFrame({"image": list(ids)})
    for c in cols:
        df[c] = [1.0 if v == c else 0.0 for v in ids.values()]
    df.to_csv(tmp_path / "ISIC_2019_Training_GroundTruth.csv", index=False)
    pd.DataFrame({"image": list(ids), "age_approx": [55.0, 60.0, np.nan, 40.0],
                  "anatom_site_general": ["anterior torso", "upper extremity", np.nan, "head/neck"],
                  "lesion_id": ["MSK4_0011169", np.nan, "BCN_0003925", np.nan],
                  "sex": ["female", "female", "male", np.nan]}).to_csv(
        tmp_path / "ISIC_2019_Training_Metadata.csv", index=False)
    for i in ids:
        _img(tmp_path / "ISIC_2019_Training_Input" / f"{i}.jpg")
    assert detect_format(tmp_path) == "isic2019"
    with pytest.warns(UserWarning, match="dropped 1 row"):
        ds = load_dataset(tmp_path)
    assert ds.classes == cols[:-1] and ds.class_counts()[["MEL", "NV", "SCC"]].tolist() == [1, 1, 1]
    assert ds.df.site.iloc[0] == "anterior torso" and ds.df.lesion_id.iloc[2] == "BCN_0003925"
    assert len(load_dataset(tmp_path, include_unk=True)) == 4


def _kaggle2020(root: Path) -> None:
    rows = [("ISIC_2637011", "IP_7279968", "nevus", 0, 0), ("ISIC_0015719", "IP_3075186", "melanoma", 1, 2),
            ("ISIC_0052212", "IP_2842074", "seborrheic keratosis", 0, 4), ("ISIC_0068279", "IP_6890425",
            "lentigo NOS", 0, 13), ("ISIC_0074268", "IP_8723313", "cafe-au-lait macule", 0, 9),
            ("ISIC_0074311", "IP_2950485", "atypical melanocytic proliferation", 0, 14),
            ("ISIC_0074542", "IP_4698288", "unknown", 0, 5), ("ISIC_dup", "IP_4698288", "unknown", 0, -1)]
    ids, patients, dx, target, tfrecord = map(list, zip(*rows))
    write_isic2020(root, ids, patient_id=patients, diagnosis=dx, target=target, tfrecord=tfrecord, age_approx=45.0,
                   width=24, height=18)


def _kaggle2019(root: Path) -> None:
    rows = [("ISIC_0000000", "NV", 0), ("ISIC_0000002", "MEL", 6), ("ISIC_0010491", "BCC", 11),
            ("ISIC_0024329", "AK", 3), ("ISIC_0025030", "BKL", 14), ("ISIC_0024318", "DF", 1),
            ("ISIC_0024370", "VASC", 2), ("ISIC_0053454", "SCC", 4), ("ISIC_dupe19", "NV", -1)]
    df = pd.DataFrame(rows, columns=["image_name", "diagnosis", "tfrecord"])
    df["patient_id"], df["sex"], df["age_approx"], df["anatom_site_general_challenge"] = -1, "female", 50.0, np.nan
    df.to_csv(root / "train.csv", index=False)
    for i in df.image_name:
        _img(root / "train" / f"{i}.jpg")


def test_isic2020_kaggle_first_place_mapping_folds_and_2019_merge(tmp_path):
    r20, r19 = tmp_path / "jpeg-melanoma-512x512", tmp_path / "jpeg-isic2019-512x512"
    r20.mkdir()
    r19.mkdir()
    _kaggle2020(r20)
    _kaggle2019(r19)
    assert detect_format(r20) == "isic2020"
    ds = load_dataset(r20)
    assert len(ds) == 7 and ds.class_counts().tolist() == [6, 1]                 # tfrecord -1 dropped
    d9 = load_dataset(r20, target="diagnosis9", merge_2019=r19)
    assert d9.classes == ["AK", "BCC", "BKL", "DF", "SCC", "VASC", "melanoma", "nevus", "unknown"]
    assert d9.info["mel_idx"] == 6 and len(d9) == 7 + 8
    assert d9.class_counts().tolist() == [1, 1, 3, 1, 1, 1, 2, 2, 3]
    assert d9.df.is_ext.sum() == 8 and d9.df.loc[d9.df.is_ext == 1, "patient_id"].isna().all()
    f = d9.df.set_index("image_id")["fold"]
    assert f["ISIC_0015719"] == FOLD_MAPS["default"][2] == 0 and f["ISIC_0068279"] == 1   # tfrecord 13 -> fold 1
    assert f["ISIC_0025030"] == 14 % 5                                           # 2019: tfrecord mod 5
    d4 = load_dataset(r20, target="diagnosis4", merge_2019=r19, fold_mode="newfold")
    assert d4.classes == ["BKL", "melanoma", "nevus", "unknown"] and d4.info["mel_idx"] == 1
    assert d4.class_counts().tolist() == [3, 2, 2, 8]
    assert d4.df.set_index("image_id")["fold"]["ISIC_0015719"] == FOLD_MAPS["newfold"][2] == 4


def test_first_place_relabelling_rules():
    s = pd.Series(["seborrheic keratosis", "lichenoid keratosis", "solar lentigo", "lentigo NOS",
                   "cafe-au-lait macule", "atypical melanocytic proliferation", "nevus", "melanoma"])
    assert first_place_label(s, is_2019=False).tolist() == ["BKL"] * 4 + ["unknown"] * 2 + ["nevus", "melanoma"]
    assert first_place_label(pd.Series(["NV", "MEL", "SCC"]), is_2019=True).tolist() == ["nevus", "melanoma", "SCC"]


def test_isic2020_official_groundtruth_layout(tmp_path):
    write_isic2020(tmp_path, ["ISIC_0015719", "ISIC_0052212"], official=True, lesion_id=["IL_1", "IL_2"],
                   sex=["female", "male"], age_approx=[45.0, np.nan],
                   anatom_site_general_challenge=["upper extremity", np.nan], target=[1, 0])
    assert detect_format(tmp_path) == "isic2020"
    ds = load_dataset(tmp_path)
    assert ds.df.label.tolist() == ["melanoma", "other"] and ds.df.lesion_id.tolist() == ["IL_1", "IL_2"]


def test_derm7pt(tmp_path):
    diags = ["basal cell carcinoma", "clark nevus", "melanoma (in situ)", "seborrheic keratosis", "miscellaneous",
             "melanosis", "reed or spitz nevus", "lentigo", "vascular lesion", "dermatofibroma"]
    n = len(diags)
    meta = pd.DataFrame({"case_num": range(1, n + 1), "diagnosis": diags, "seven_point_score": range(n)})
    for c in ("pigment_network", "streaks", "pigmentation", "regression_structures", "dots_and_globules",
              "blue_whitish_veil", "vascular_structures"):
        meta[c] = "absent"
    meta["level_of_diagnostic_difficulty"], meta["elevation"], meta["location"] = "low", "flat", "back"
    meta["sex"] = ["female", "male"] * (n // 2)
    meta["clinic"] = [f"NEL/Nel{i:03d}.jpg" for i in range(n)]
    meta["derm"] = [f"NEL/NEL{i:03d}.jpg" for i in range(n)]
    meta["management"] = "excision"
    (tmp_path / "meta").mkdir()
    meta.to_csv(tmp_path / "meta" / "meta.csv", index=False)
    for part, idx in (("train", [0, 1, 2, 3, 4]), ("valid", [5, 6]), ("test", [7, 8, 9])):
        pd.DataFrame({"indexes": idx}).to_csv(tmp_path / "meta" / f"{part}_indexes.csv", index=False)
    for p in list(meta.derm) + list(meta.clinic):
        _img(tmp_path / "images" / p)
    assert detect_format(tmp_path) == "derm7pt"
    ds = load_dataset(tmp_path)
    assert ds.classes == ["bcc", "bkl", "df", "mel", "nv", "vasc"] and len(ds) == 8
    assert ds.class_counts().tolist() == [1, 2, 1, 1, 2, 1]
    assert ds.info["dropped"] == {"miscellaneous": 1, "melanosis": 1}
    assert {k: len(v) for k, v in official_splits(ds.df).items()} == {"train": 4, "valid": 1, "test": 3}
    assert ds.df.image_id.iloc[0] == "NEL_NEL000" and "blue_whitish_veil" in ds.df.columns
    assert load_dataset(tmp_path, mapping="melanoma").class_counts()["melanoma"] == 1
    assert patch_attention_label("melanoma metastasis") == "mel" and patch_attention_label("melanosis") is None


def test_ph2_original_download(tmp_path):
    lines = ["|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry || Pigment Network || "
             "Dots/Globules || Streaks || Regression Areas || Blue-Whitish Veil || Colors ||"]
    for name, histo, clin, asym in (("IMD003", "", 0, 0), ("IMD009", "", 1, 1), ("IMD058", "Melanoma", 2, 2)):
        lines.append(f"|| {name} || {histo} || {clin} || {asym} || T || A || A || A || A || 3 4 ||")
        base = tmp_path / "PH2 Dataset images" / name
        _img(base / f"{name}_Dermoscopic_Image" / f"{name}.bmp", fmt="BMP")
        _mask(base / f"{name}_lesion" / f"{name}_lesion.bmp")
    (tmp_path / "PH2_dataset.txt").write_text("\n".join(["Legend ...", *lines, ""]))
    assert detect_format(tmp_path) == "ph2"
    ds = load_dataset(tmp_path)
    assert ds.df.label.tolist() == ["common_nevus", "atypical_nevus", "melanoma"] and ds.has_masks
    assert load_dataset(tmp_path, target="asymmetric").df.label.tolist() == ["symmetric", "asymmetric", "asymmetric"]
    assert load_dataset(tmp_path, target="ham").class_counts()[["nv", "mel"]].tolist() == [2, 1]


def test_class_folders_with_splits(tmp_path):
    for split, cls, n in (("train", "benign", 3), ("train", "malignant", 2), ("val", "benign", 1),
                          ("val", "malignant", 1)):
        for k in range(n):
            _img(tmp_path / split / cls / f"img{k}.jpg")
    (tmp_path / "train" / "benign" / "notes.txt").write_text("not an image")
    assert detect_format(tmp_path) == "folders"
    ds = load_dataset(tmp_path)
    assert ds.classes == ["benign", "malignant"] and ds.task == "binary" and len(ds) == 7
    assert ds.df.split.value_counts().to_dict() == {"train": 5, "valid": 2}
    assert ds.df.image_id.is_unique


def test_generic_csv_with_configured_columns(tmp_path):
    for k in range(3):
        _img(tmp_path / "pics" / f"case{k}.png", fmt="PNG")
    pd.DataFrame({"case": ["case0", "case1", "case2"], "truth": ["benign", "malignant", "benign"],
                  "pt": ["A", "A", "B"], "years": [40, np.nan, 60]}).to_csv(tmp_path / "my.csv", index=False)
    ds = load_dataset(tmp_path / "my.csv", columns={"image_id": "case", "label": "truth", "patient_id": "pt",
                                                    "age": "years"}, image_dir="pics")
    assert ds.class_counts().tolist() == [2, 1] and ds.df.patient_id.tolist() == ["A", "A", "B"]
    assert ds.df.path.str.endswith(".png").all() and ds.df.age.isna().sum() == 1
    mapped = load_dataset(tmp_path / "my.csv", columns={"image_id": "case", "label": "truth"}, image_dir="pics",
                          label_map={"benign": "other", "malignant": "melanoma"}, classes=["other", "melanoma"])
    assert mapped.df.label_idx.tolist() == [0, 1, 0]


def test_generic_csv_numeric_labels(tmp_path):
    for k in range(3):
        _img(tmp_path / f"{k}.jpg")
    pd.DataFrame({"filename": ["0.jpg", "1.jpg", "2.jpg"], "target": [0, 1, 0]}).to_csv(tmp_path / "t.csv", index=False)
    ds = load_dataset(tmp_path / "t.csv")
    assert ds.classes == ["0", "1"] and ds.df.image_id.tolist() == ["0", "1", "2"] and ds.task == "binary"


def test_unknown_layout_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(FormatDetectionError, match="cannot tell the dataset layout.*fmt="):
        load_dataset(tmp_path)
