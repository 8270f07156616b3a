"""write_predictions writes the official formats, which read_truth/load_pair (and the official scorer) accept."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lesionkit.metrics import ScoreFormatError, binary_auc, load_pair, read_truth, write_predictions

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def test_multiclass_isic2018_layout(tmp_path: Path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(7), 10)
    y = np.r_[np.arange(7), [4, 5, 5]]
    ids = [f"ISIC_{i:07d}" for i in range(10)]
    paths = write_predictions(tmp_path, ids, probs, HAM, y_true=y)
    pred = pd.read_csv(paths["pred"])
    assert list(pred.columns) == ["image", "AKIEC", "BCC", "BKL", "DF", "MEL", "NV", "VASC"]
    np.testing.assert_allclose(pred.iloc[:, 1:].to_numpy(), probs, rtol=0, atol=1e-15)
    truth = read_truth(paths["truth"])
    assert truth.kind == "multiclass" and truth.labels.tolist() == y.tolist()
    pair = load_pair(paths["truth"], paths["pred"])
    assert pair.ids == ids and pair.y_true.tolist() == y.tolist()
    np.testing.assert_allclose(pair.scores, probs, atol=1e-15)


@pytest.mark.parametrize("fmt,header", [("auto", "image,MEL"), ("isic2020", "image_name,target")])
def test_binary_layouts(tmp_path: Path, fmt: str, header: str):
    probs = np.array([[0.8, 0.2], [0.1, 0.9], [0.6, 0.4]])
    paths = write_predictions(tmp_path, ["a.jpg", "b", "c"], probs, ["benign", "melanoma"], y_true=[0, 1, 1], fmt=fmt)
    assert paths["pred"].read_text().splitlines()[0] == header
    pair = load_pair(paths["truth"], paths["pred"])
    assert pair.kind == "binary" and pair.ids == ["a", "b", "c"]  # the scorer's .jpg stripping
    np.testing.assert_allclose(pair.scores, [0.2, 0.9, 0.4])
    assert binary_auc(pair.y_true, pair.scores) == 1.0


def test_predictions_only_and_bad_inputs(tmp_path: Path):
    paths = write_predictions(tmp_path, ["a", "b"], [0.3, 0.7], ["0", "1"], stem="run1")
    assert set(paths) == {"pred"} and paths["pred"].name == "run1.csv"
    with pytest.raises(ValueError, match="duplicate image ids"):
        write_predictions(tmp_path, ["a", "a"], [0.3, 0.7], ["0", "1"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_predictions(tmp_path, ["a", "b"], [-1.2, 3.0], ["0", "1"])
    with pytest.raises(ValueError, match="2 image ids but probs has 3 rows"):
        write_predictions(tmp_path, ["a", "b"], [0.1, 0.2, 0.3], ["0", "1"])
    with pytest.raises(ValueError, match="binary but 3 classes"):
        write_predictions(tmp_path, ["a"], [[0.2, 0.3, 0.5]], ["x", "y", "z"], fmt="isic2020")


def test_scoreformaterror_is_a_valueerror(tmp_path: Path):
    bad = tmp_path / "t.csv"
    bad.write_text("image,MEL,NV\nx,1,0\nx,0,1\n")
    with pytest.raises(ValueError, match="duplicate ids"):
        read_truth(bad)
    assert issubclass(ScoreFormatError, ValueError)
