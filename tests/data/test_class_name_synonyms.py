"""Class names across layouts (issue 12): `positive="mel"` finds ISIC 2017's and 2020's "melanoma" and ISIC 2019's
"MEL", so the ARL and attention-B3 notebooks run on their own headline datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data import load_dataset
from lesionkit.data.tasks import find_class, one_vs_rest
from lesionkit.testing import write_isic2020


def _isic2017(root: Path) -> Path:
    """The three official parts, with their ground-truth CSVs and image folders (8 images, 3 melanomas)."""
    parts = {"Training": range(0, 4), "Validation": range(4, 6), "Test_v2": range(6, 8)}
    mel = [1.0, 0, 0, 1.0, 0, 1.0, 0, 0]
    for tag, rows in parts.items():
        ids = [f"ISIC_00000{i:02d}" for i in rows]
        pd.DataFrame({"image_id": ids, "melanoma": [mel[i] for i in rows],
                      "seborrheic_keratosis": [float(i == 1) for i in rows]}).to_csv(
            root / f"ISIC-2017_{tag}_Part3_GroundTruth.csv", index=False)
        (root / f"ISIC-2017_{tag}_Data").mkdir(parents=True, exist_ok=True)
        for i, image_id in zip(rows, ids):
            Image.new("RGB", (32, 24), (30 * i, 80, 60)).save(root / f"ISIC-2017_{tag}_Data" / f"{image_id}.jpg")
    return root


def _isic2020(root: Path) -> Path:
    write_isic2020(root, [f"ISIC_{i:07d}" for i in range(8)], target=[1, 0, 0, 1, 0, 1, 0, 0], tfrecord=list(range(8)),
                   size=(32, 24))
    return root


def test_find_class_resolves_synonyms_and_refuses_what_is_not_there():
    assert find_class("mel", ["other", "melanoma"]) == "melanoma"
    assert find_class("mel", ["MEL", "NV", "BCC"]) == "MEL"
    assert find_class("Melanoma", ["akiec", "mel", "nv"]) == "mel"
    assert find_class("nv", ["nevus", "melanoma", "seborrheic_keratosis"]) == "nevus"
    with pytest.raises(ValueError, match=r"'mel' is not in the dataset's classes \['common_nevus', 'atypical_nevus'\]"):
        find_class("mel", ["common_nevus", "atypical_nevus"])


@pytest.mark.parametrize("make", [_isic2017, _isic2020])
def test_positive_mel_runs_on_the_binary_melanoma_layouts(tmp_path, make):
    from lesionkit.papers.arl import recipe as arl
    from lesionkit.papers.attention_b3 import recipe as attention_b3

    (tmp_path / "ds").mkdir()
    root = make(tmp_path / "ds")
    ds = load_dataset(root)
    assert ds.classes == ["other", "melanoma"]
    binary = one_vs_rest(ds, "mel")
    assert binary.classes == ["rest", "melanoma"] and binary.df.label_idx.tolist() == ds.df.label_idx.tolist()
    arl_ds = arl.load(arl.ARLConfig(data_dir=str(root), positive="mel"))
    assert arl_ds.df.label_idx.sum() == 3
    b3_cfg = attention_b3.AttentionB3Config(data_dir=str(root), positive="mel", n_bootstrap=0)
    b3_ds = attention_b3.load(b3_cfg)
    y = b3_ds.df.label_idx.to_numpy()
    probs = np.stack([1 - y * 0.9, y * 0.9 + 0.05], 1)
    assert attention_b3.evaluate(probs, y, b3_ds, b3_cfg)["auc"] == 1.0     # melanoma is the scored column
