"""`python -m lesionkit score`: published numbers from real public predictions, output formats, and every
malformed-input case giving a clear error (file, column, ids) and a non-zero exit."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lesionkit.cli import score as score_cli
from lesionkit.metrics.formats import write_predictions

CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = score_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def binary_files(tmp_path: Path) -> tuple[Path, Path]:
    truth = write(tmp_path / "truth.csv", "image,MEL\nISIC_1,1\nISIC_2,0\nISIC_3,0\nISIC_4,1\n")
    pred = write(tmp_path / "pred.csv", "image,MEL\nISIC_1,0.9\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n")
    return truth, pred


@pytest.mark.shared_data
def test_reproduces_going_smaller_sge_b3_published_numbers(shared_data: Path, capsys):
    folder = shared_data / "metric_examples" / "going_smaller_sge_b3"
    code, out, err = run([folder / "truth.csv", folder / "pred.csv", "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    # published (SOURCE.md, methods-b.md §B.10): ROC-AUC 0.8152, AP 0.5372, weighted F1 0.8374, acc 0.8690,
    # best specificity with sensitivity >= 0.95: 0.1457 at sensitivity 0.9579
    assert round(rep["auc"], 4) == 0.8152 and round(rep["auc"], 3) == 0.815
    assert round(rep["ap"], 4) == 0.5372
    assert round(rep["f1_weighted"], 4) == 0.8374
    assert round(rep["accuracy"], 4) == 0.8690
    assert round(rep["spec_at_sens95"], 4) == 0.1457
    assert round(rep["sens_at_sens95"], 4) == 0.9579
    assert 0 < rep["pauc80"] < 0.2


@pytest.mark.shared_data
def test_going_smaller_bootstrap_is_reproducible_and_near_the_paper(shared_data: Path, capsys):
    folder = shared_data / "metric_examples" / "going_smaller_sge_b3"
    argv = [folder / "truth.csv", folder / "pred.csv", "--json", "--bootstrap", "300", "--seed", "0"]
    first = json.loads(run(argv, capsys)[1])["bootstrap"]
    second = json.loads(run(argv, capsys)[1])["bootstrap"]
    assert first == second
    # the paper (unseeded, 1000 resamples) reports sensitivity 0.96 and specificity 0.21
    assert first["sensitivity"]["mean"] == pytest.approx(0.96, abs=0.01)
    assert first["specificity"]["mean"] == pytest.approx(0.21, abs=0.03)


def test_binary_json_keys_and_values(binary_files, capsys):
    code, out, _ = run([*binary_files, "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    assert list(rep) == ["auc", "ap", "pauc80", "accuracy", "sensitivity", "specificity", "f1_weighted",
                         "spec_at_sens95", "sens_at_sens95"]
    assert rep["auc"] == pytest.approx(0.75)  # pairs: (0.9>0.2, 0.9>0.6, 0.4>0.2, 0.4<0.6) -> 3/4
    assert rep["sensitivity"] == 0.5 and rep["specificity"] == 0.5


def test_table_output_and_isic2020_format(tmp_path: Path, capsys):
    truth = write(tmp_path / "t.csv", "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,"
                  "benign_malignant,target\nISIC_1,IP_1,male,45,torso,melanoma,malignant,1\n"
                  "ISIC_2,IP_2,female,50,head/neck,nevus,benign,0\nISIC_3,IP_2,female,50,torso,nevus,benign,0\n")
    pred = write(tmp_path / "p.csv", "image_name,target\nISIC_1.jpg,0.7\nISIC_2,0.3\nISIC_3,0.1\n")
    code, out, _ = run([truth, pred], capsys)
    assert code == 0
    assert "binary task, 3 images" in out and "auc" in out and "1.0000" in out


def test_multiclass_matches_official_scorer_and_write_predictions_round_trip(tmp_path: Path, capsys):
    isic = pytest.importorskip("isic_challenge_scoring")
    rng = np.random.default_rng(0)
    y = np.r_[np.arange(7), rng.integers(0, 7, 53)]
    probs = rng.dirichlet(np.ones(7), 60)
    ids = [f"ISIC_{i:07d}" for i in range(60)]
    paths = write_predictions(tmp_path, ids, probs, [c.lower() for c in CLASSES], y_true=y)
    code, out, err = run([paths["truth"], paths["pred"], "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert list(rep) == ["balanced_accuracy", "accuracy", "f1_macro", "f1_weighted", "kappa", "auc_macro", "per_class"]
    truth = pd.read_csv(paths["truth"]).set_index("image").astype(float)
    pred = pd.read_csv(paths["pred"]).set_index("image")
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=truth.index)
    score = isic.ClassificationScore(truth, pred, weights, isic.ClassificationMetric.BALANCED_ACCURACY)
    assert rep["balanced_accuracy"] == pytest.approx(score.aggregate["balanced_accuracy"], abs=1e-9)
    assert rep["auc_macro"] == pytest.approx(score.macro_average["auc"], abs=1e-9)
    assert rep["per_class"]["MEL"]["auc"] == pytest.approx(score.per_category.loc["MEL", "auc"], abs=1e-9)


def test_score_weight_zero_rows_are_excluded(tmp_path: Path, capsys):
    truth = write(tmp_path / "t.csv", "image,MEL,score_weight,validation_weight\nISIC_1,1,1,1\nISIC_2,0,1,1\n"
                  "ISIC_3,1,0,0\nISIC_0035068,0,1,1\n")
    pred = write(tmp_path / "p.csv", "image,MEL\nISIC_1,0.9\nISIC_2,0.1\nISIC_3,0.0\nISIC_0035068,0.99\n")
    code, out, _ = run([truth, pred, "--json"], capsys)
    assert code == 0 and json.loads(out)["auc"] == 1.0  # both excluded rows would otherwise lower the AUC


def test_module_entry_point_runs(binary_files):
    done = subprocess.run([sys.executable, "-m", "lesionkit", "score", *map(str, binary_files), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["auc"] == pytest.approx(0.75)


BAD_PREDICTIONS = {
    "duplicate id": ("image,MEL\nISIC_1,0.9\nISIC_1,0.8\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n",
                     ["duplicate ids", "'image'", "ISIC_1", "pred.csv"]),
    "nan value": ("image,MEL\nISIC_1,0.9\nISIC_2,nan\nISIC_3,0.6\nISIC_4,0.4\n",
                  ["missing/NaN", "'MEL'", "ISIC_2", "pred.csv"]),
    "empty value": ("image,MEL\nISIC_1,0.9\nISIC_2,\nISIC_3,0.6\nISIC_4,0.4\n", ["missing/NaN", "ISIC_2"]),
    "non-numeric": ("image,MEL\nISIC_1,0.9\nISIC_2,high\nISIC_3,0.6\nISIC_4,0.4\n",
                    ["non-numeric", "'high'", "ISIC_2"]),
    "missing column": ("image,NV\nISIC_1,0.9\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n",
                       ["missing column", "MEL"]),
    "extra column": ("image,MEL,NV\nISIC_1,0.9,0\nISIC_2,0.2,0\nISIC_3,0.6,0\nISIC_4,0.4,0\n",
                     ["extra column", "NV"]),
    "no id column": ("id,MEL\nISIC_1,0.9\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n", ["no id column", "'image'"]),
    "above one": ("image,MEL\nISIC_1,1.5\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n",
                  ["outside [0, 1]", "'MEL'", "ISIC_1", "logits"]),
    "below zero": ("image,MEL\nISIC_1,0.9\nISIC_2,-0.2\nISIC_3,0.6\nISIC_4,0.4\n", ["outside [0, 1]", "ISIC_2"]),
    "id missing from predictions": ("image,MEL\nISIC_1,0.9\nISIC_2,0.2\nISIC_3,0.6\n",
                                    ["no prediction for 1 id", "ISIC_4", "truth.csv"]),
    "id not in truth": ("image,MEL\nISIC_1,0.9\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\nISIC_9,0.5\n",
                        ["not in truth file", "ISIC_9"]),
    "header only": ("image,MEL\n", ["no data rows"]),
    "not a csv": ('image,MEL\nISIC_1,"0.9\nISIC_2,0.2\n', ["not a valid CSV", "pred.csv"]),
    "ragged row": ("image,MEL\nISIC_1,0.9,0.1\nISIC_2,0.2\nISIC_3,0.6\nISIC_4,0.4\n",
                   ["line(s) 2", "different number of fields"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTIONS))
def test_malformed_prediction_files_fail_clearly(case, binary_files, capsys):
    truth, pred = binary_files
    text, needles = BAD_PREDICTIONS[case]
    pred.write_text(text)
    code, out, err = run([truth, pred], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error:")
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


BAD_TRUTHS = {
    "duplicate id": ("image,MEL\nISIC_1,1\nISIC_1,0\n", ["duplicate ids", "ISIC_1", "truth.csv"]),
    "nan label": ("image,MEL\nISIC_1,1\nISIC_2,NaN\n", ["missing/NaN", "ISIC_2"]),
    "soft label": ("image,MEL\nISIC_1,1\nISIC_2,0.5\n", ["must be 0 or 1", "ISIC_2"]),
    "not one-hot": ("image,MEL,NV\nISIC_1,1,1\nISIC_2,0,1\n", ["one-hot", "ISIC_1"]),
    "no category": ("image\nISIC_1\nISIC_2\n", ["no category column"]),
    "single class": ("image,MEL\nISIC_1,0\nISIC_2,0\nISIC_3,0\nISIC_4,0\n", ["no positive row", "'MEL'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TRUTHS))
def test_malformed_truth_files_fail_clearly(case, binary_files, capsys):
    truth, pred = binary_files
    text, needles = BAD_TRUTHS[case]
    truth.write_text(text)
    code, _, err = run([truth, pred], capsys)
    assert code == 2
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


def test_unreadable_missing_and_binary_files(binary_files, tmp_path: Path, capsys):
    truth, pred = binary_files
    code, _, err = run([truth, tmp_path / "nope.csv"], capsys)
    assert code == 2 and "prediction file not found" in err and "nope.csv" in err
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\xfa")
    code, _, err = run([truth, tmp_path / "bin.csv"], capsys)
    assert code == 2 and "bin.csv" in err and ("UTF-8" in err or "binary" in err)
    code, _, err = run([truth, tmp_path], capsys)
    assert code == 2 and "is a directory" in err


def test_unreadable_file_names_the_file(binary_files, tmp_path: Path, capsys, monkeypatch):
    """A permission error (simulated: the tests may run as root, who can read a chmod-0 file) is a clear error."""
    truth, pred = binary_files
    real_read_text = Path.read_text

    def read_text(self: Path, *args, **kwargs):
        if self.name == "pred.csv":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    code, _, err = run([truth, pred], capsys)
    assert code == 2 and "cannot be read" in err and "Permission denied" in err and "pred.csv" in err


def test_bad_arguments_exit_nonzero(capsys):
    assert score_cli.main([]) == 2
    assert "usage" in capsys.readouterr().err
    assert score_cli.main(["--help"]) == 0
