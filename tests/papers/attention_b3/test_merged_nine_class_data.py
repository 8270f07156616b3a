"""Going Smaller's training data (methods-b §A.1-A.2, §B.5): ISIC 2019 + 2020 read from layouts generated with the
official file names, merged into the 1st place's 9 classes (2020 diagnoses renamed onto the 2019 classes, is_ext
for 2019), the tfrecord folds, and the task choices (auto, diagnosis9, melanoma, classes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.config import ConfigError
from lesionkit.data.readers.isic2020 import DIAGNOSIS9, FOLD_MAPS
from lesionkit.data.splits import folds_from_column
from lesionkit.papers.attention_b3 import recipe as b3
from lesionkit.testing import write_isic2020

DX2020 = {"ISIC_0015719": "melanoma", "ISIC_0052212": "seborrheic keratosis", "ISIC_0068279": "lentigo NOS",
          "ISIC_0074268": "cafe-au-lait macule", "ISIC_0074311": "atypical melanocytic proliferation",
          "ISIC_0074542": "unknown", "ISIC_0075663": "nevus", "ISIC_0075914": "nevus", "ISIC_0076262": "melanoma",
          "ISIC_0076545": "lichenoid keratosis", "ISIC_0076742": "solar lentigo", "ISIC_0076995": "unknown"}
DX2019 = {"ISIC_0000000": "NV", "ISIC_0000002_downsampled": "MEL", "ISIC_0010491": "BCC", "ISIC_0024329": "AK",
          "ISIC_0025030": "BKL", "ISIC_0024318": "DF", "ISIC_0024370": "VASC", "ISIC_0053454": "SCC",
          "ISIC_0000001": "NV"}
# the 1st place's sorted classes: AK BCC BKL DF SCC VASC melanoma nevus unknown
EXPECTED = [1, 1, 1 + 4, 1, 1, 1, 1 + 2, 2 + 2, 4]


def _img(path: Path, k: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 18), (10 * k % 255, 80, 60)).save(path)


def _official_2020(root: Path) -> Path:
    n, dx = len(DX2020), list(DX2020.values())
    write_isic2020(root, list(DX2020), official=True, patient_id=[f"IP_{i // 2}" for i in range(n)],
                   lesion_id=[f"IL_{i}" for i in range(n)], sex="female", age_approx=45.0, diagnosis=dx,
                   target=[int(d == "melanoma") for d in dx])
    return root


def _official_2019(root: Path) -> Path:
    cols = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"]
    df = pd.DataFrame({"image": list(DX2019)})
    for c in cols:
        df[c] = [1.0 if v == c else 0.0 for v in DX2019.values()]
    df.to_csv(root / "ISIC_2019_Training_GroundTruth.csv", index=False)
    pd.DataFrame({"image": list(DX2019), "age_approx": 50.0, "anatom_site_general": "anterior torso",
                  "lesion_id": [f"BCN_{i:07d}" for i in range(len(DX2019))], "sex": "male"}).to_csv(
        root / "ISIC_2019_Training_Metadata.csv", index=False)
    for k, i in enumerate(DX2019):
        _img(root / "ISIC_2019_Training_Input" / f"{i}.jpg", k)
    return root


def _kaggle(root: Path, tfrecords20: list[int], tfrecords19: list[int]) -> Path:
    """Deotte's folders under the 1st place's parent: jpeg-melanoma-512x512/ and jpeg-isic2019-512x512/."""
    r20, r19 = root / "jpeg-melanoma-512x512", root / "jpeg-isic2019-512x512"
    ids20, dx20 = list(DX2020), list(DX2020.values())
    pd.DataFrame({"image_name": ids20, "patient_id": [f"IP_{i}" for i in range(len(ids20))], "sex": "male",
                  "age_approx": 40.0, "anatom_site_general_challenge": "torso", "diagnosis": dx20,
                  "benign_malignant": "benign", "target": [int(d == "melanoma") for d in dx20],
                  "tfrecord": tfrecords20, "width": 24, "height": 18}).to_csv(_mk(r20) / "train.csv", index=False)
    pd.DataFrame({"image_name": list(DX2019), "patient_id": -1, "sex": "female", "age_approx": 50.0,
                  "anatom_site_general_challenge": np.nan, "diagnosis": list(DX2019.values()),
                  "tfrecord": tfrecords19}).to_csv(_mk(r19) / "train.csv", index=False)
    for k, i in enumerate(ids20):
        _img(r20 / "train" / f"{i}.jpg", k)
    for k, i in enumerate(DX2019):
        _img(r19 / "train" / f"{i}.jpg", k)
    return root


def _mk(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _cfg(**kw) -> b3.AttentionB3Config:
    return b3.AttentionB3Config.from_params({"n_bootstrap": 0, **{k: str(v) for k, v in kw.items()}})


def test_official_2019_and_2020_load_as_one_nine_class_dataset(tmp_path):
    r20, r19 = _official_2020(_mk(tmp_path / "isic2020")), _official_2019(_mk(tmp_path / "isic2019"))
    cfg = _cfg(data_dir=r20, data_dir_2019=r19)
    ds = b3.load(cfg)
    assert ds.classes == list(DIAGNOSIS9) and ds.info["mel_idx"] == 6
    assert ds.class_counts().tolist() == EXPECTED and len(ds) == len(DX2020) + len(DX2019)
    label = ds.df.set_index("image_id")["label"]
    assert label["ISIC_0076742"] == "BKL" and label["ISIC_0076545"] == "BKL"            # solar lentigo, LK
    assert label["ISIC_0074311"] == "unknown" and label["ISIC_0074268"] == "unknown"    # AMP, cafe-au-lait
    assert label["ISIC_0000002_downsampled"] == "melanoma" and label["ISIC_0000000"] == "nevus"
    assert label["ISIC_0053454"] == "SCC"
    ext = ds.df.set_index("image_id")["is_ext"]
    assert ext[list(DX2019)].eq(1).all() and ext[list(DX2020)].eq(0).all()
    assert ds.df.loc[ds.df.is_ext == 1, "lesion_id"].notna().all()                     # 2019 still grouped by lesion
    positive = ds.classes.index("melanoma")
    y = ds.df.label_idx.to_numpy()
    probs = np.eye(9)[y] * 0.9 + 0.01
    assert b3.evaluate(probs, y, ds, cfg)["auc"] == 1.0                                 # P(melanoma) is column 6
    assert (y == positive).sum() == 3


def test_task_choices_and_their_refusals(tmp_path):
    r20, r19 = _official_2020(_mk(tmp_path / "isic2020")), _official_2019(_mk(tmp_path / "isic2019"))
    mel = b3.load(_cfg(data_dir=r20, data_dir_2019=r19, task="melanoma"))
    assert mel.classes == ["rest", "melanoma"] and mel.class_counts().tolist() == [18, 3]
    alone = b3.load(_cfg(data_dir=r20))                      # auto without 2019: the dataset's own (binary) classes
    assert alone.classes == ["other", "melanoma"] and len(alone) == len(DX2020)
    with pytest.raises(ConfigError, match=r"classes \['AK', 'BCC', 'DF', 'SCC', 'VASC'\] have no images"):
        b3.load(_cfg(data_dir=r20, task="diagnosis9"))
    with pytest.raises(ConfigError, match="merged only by task='diagnosis9' or 'melanoma'"):
        b3.load(_cfg(data_dir=r20, data_dir_2019=r19, task="classes"))
    with pytest.raises(ConfigError, match="needs an ISIC 2020 data_dir"):
        b3.load(_cfg(data_dir=r19, data_dir_2019=r19, task="diagnosis9"))
    with pytest.raises(ConfigError, match="data_dir_2019 .* is not a folder"):
        _cfg(data_dir=r20, data_dir_2019=tmp_path / "nowhere")


def test_first_place_parent_folder_tfrecord_filters_and_folds(tmp_path):
    tf20 = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, -1, 0]           # ISIC_0076742 (solar lentigo) is a duplicate
    tf19 = [0, 1, 2, 3, 4, 0, 1, 2, -1]                    # ISIC_0000001 (NV) has tfrecord -1
    root = _kaggle(tmp_path, tf20, tf19)
    cfg = _cfg(data_dir=root)                              # data_dir_2019 found beside jpeg-melanoma-*
    ds = b3.load(cfg)
    assert ds.classes == list(DIAGNOSIS9) and len(ds) == 11 + 8
    counts = dict(zip(ds.classes, ds.class_counts().tolist()))
    assert counts["nevus"] == 2 + 1 and counts["BKL"] == 3 + 1 and "ISIC_0000001" not in set(ds.df.image_id)
    fold = ds.df.set_index("image_id")["fold"]
    assert fold["ISIC_0015719"] == 0 and fold["ISIC_0074542"] == 0 and fold["ISIC_0053454"] == 2  # fold = tfrecord
    pairs = folds_from_column(ds.df)                       # what split='official' uses (beside its test hold-out)
    assert len(pairs) == 5
    va = ds.df.iloc[pairs[0][1]]
    assert set(va.fold) == {0} and va.is_ext.nunique() == 2   # every validation fold mixes 2020 and 2019


def test_fold_mode_maps_deottes_fifteen_tfrecords(tmp_path):
    tf20 = [2, 13, 5, 0, 9, 14, 6, 1, 3, 8, 10, 7]
    tf19 = [0, 6, 11, 3, 14, 1, 2, 4, 12]
    root = _kaggle(tmp_path, tf20, tf19)
    with pytest.warns(UserWarning, match="fold_mode='tfrecord': 15 distinct tfrecords"):
        raw = b3.load(_cfg(data_dir=root))
    assert raw.df.set_index("image_id")["fold"]["ISIC_0068279"] == 5
    ds = b3.load(_cfg(data_dir=root, fold_mode="default"))
    fold = ds.df.set_index("image_id")["fold"]
    assert fold["ISIC_0015719"] == FOLD_MAPS["default"][2] == 0 and fold["ISIC_0052212"] == FOLD_MAPS["default"][13] == 1
    assert fold["ISIC_0025030"] == 14 % 5                  # 2019: tfrecord mod 5
    assert set(fold.dropna().astype(int)) <= set(range(5))


def test_fold_mode_reaches_the_reader_without_the_2019_merge(tmp_path):
    """task='classes' (no merge) read ISIC 2020 with the reader's own fold map, not the config's fold_mode."""
    tf20 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14]
    r20 = _kaggle(tmp_path, tf20, [0] * len(DX2019)) / "jpeg-melanoma-512x512"
    by_id = dict(zip(DX2020, tf20))
    for mode in ("tfrecord", "newfold"):
        ds = b3.load(_cfg(data_dir=r20, task="classes", fold_mode=mode))
        fold = ds.df.set_index("image_id")["fold"]
        want = {i: t if mode == "tfrecord" else FOLD_MAPS["newfold"][t] for i, t in by_id.items()}
        assert fold.to_dict() == want
