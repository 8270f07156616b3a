"""Bad input, round three (issue 31), the scorer: a threshold outside [0, 1] (NaN included), a negative bootstrap
count and a truth file whose every row has score_weight 0 are refused by name, never scored."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lesionkit.cli import score as score_cli
from lesionkit.metrics.reports import binary_report


def files(tmp_path: Path, weights: str | None = None) -> tuple[str, str]:
    head = "image,MEL" + (",score_weight" if weights else "")
    rows = [f"ISIC_{i},{y}" + (f",{weights}" if weights else "") for i, y in enumerate((1, 0, 0, 1))]
    (tmp_path / "truth.csv").write_text("\n".join([head, *rows]) + "\n")
    (tmp_path / "pred.csv").write_text("image,MEL\nISIC_0,0.9\nISIC_1,0.2\nISIC_2,0.6\nISIC_3,0.4\n")
    return str(tmp_path / "truth.csv"), str(tmp_path / "pred.csv")


@pytest.mark.parametrize("option, value, message", [
    ("--threshold", "nan", "--threshold nan: must be a probability in [0, 1]"),
    ("--threshold", "5", "--threshold 5.0: must be a probability in [0, 1]"),
    ("--threshold", "-1", "--threshold -1.0: must be a probability in [0, 1]"),
    ("--bootstrap", "-5", "--bootstrap -5: give 0 (none) or a positive number of resamples"),
])
def test_meaningless_options_are_refused_by_name(tmp_path, capsys, option, value, message):
    assert score_cli.main([*files(tmp_path), option, value]) == score_cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    tail = " (positive when score >= threshold)" if option == "--threshold" else ""
    assert out == "" and err.strip() == f"error: {message}{tail}"


def test_the_bounds_themselves_are_scored(tmp_path, capsys):
    for t in ("0", "1"):
        assert score_cli.main([*files(tmp_path), "--threshold", t]) == 0


def test_a_truth_file_with_every_weight_zero_is_refused(tmp_path, capsys):
    assert score_cli.main(list(files(tmp_path, weights="0"))) == score_cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "truth.csv: every row is excluded (score_weight 0" in err and "empty input array" not in err


@pytest.mark.parametrize("kw, name", [({"threshold": float("nan")}, "threshold=nan"),
                                      ({"threshold": 1.5}, "threshold=1.5"),
                                      ({"n_bootstrap": -1}, "n_bootstrap=-1")])
def test_binary_report_refuses_them_too(kw, name):
    with pytest.raises(ValueError, match=name):
        binary_report(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.6]), **kw)
