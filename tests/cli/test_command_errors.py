"""Bad input, round three (issue 31), the commands: an option or file-system error ends in one clear line on
stderr and a non-zero exit, never a traceback (``--debug`` or LESIONKIT_DEBUG=1 shows it); `train` types ``-p``
values as papermill does, so ``-p lr inf`` is answered by the config check."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lesionkit.__main__ import main as lesionkit_main
from lesionkit.cli.train import code_cells, notebook_path, parse_params


def one_line_error(capsys, argv: list[str]) -> str:
    code = lesionkit_main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_data_check_refuses_max_pixels_zero_once(capsys, synthetic_dir):
    with pytest.raises(SystemExit) as exit_:
        lesionkit_main(["data", "check", str(synthetic_dir), "--max-pixels", "0"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max-pixels 0: must be a positive number of pixels" in err and err.count("error") == 1


def test_data_check_json_into_a_missing_folder_is_refused_before_the_check(capsys, synthetic_dir, tmp_path):
    with pytest.raises(SystemExit):
        lesionkit_main(["data", "check", str(synthetic_dir), "--quick", "--json", str(tmp_path / "no" / "r.json")])
    out, err = capsys.readouterr()
    assert out == "" and f"--json {tmp_path / 'no' / 'r.json'}: its folder" in err


def test_data_check_names_an_unknown_option(capsys, synthetic_dir):
    assert lesionkit_main(["data", "check", str(synthetic_dir), "--quick", "--opt", "bogus=1"]) == 1
    assert "reader option(s) ['bogus'] unknown" in capsys.readouterr().out


def test_presize_cache_under_a_file_says_so(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    assert lesionkit_main(["data", "presize", str(tmp_path), "--cache", str(tmp_path / "afile")]) == 2
    assert f"--cache {tmp_path / 'afile'}: {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err


def test_a_file_system_error_is_one_line_and_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "afile"))
    err = one_line_error(capsys, ["train", "quickstart", "-p", "smoke", "true"])
    assert "LESIONKIT_RUNS=" in err and "a file is in the way" in err and "--debug" in err
    with pytest.raises(ValueError, match="a file is in the way"):
        lesionkit_main(["train", "quickstart", "--debug", "-p", "smoke", "true"])
    monkeypatch.setenv("LESIONKIT_DEBUG", "1")
    with pytest.raises(ValueError):
        lesionkit_main(["train", "quickstart", "-p", "smoke", "true"])


def test_train_types_inf_and_nan_as_papermill_does(capsys, tmp_path, monkeypatch):
    params = parse_params([["lr", "inf"], ["valid_frac", "nan"]])
    source = dict(code_cells(notebook_path("quickstart"), params))["00_quickstart.ipynb injected parameters"]
    assert source == "lr = float('inf')\nvalid_frac = float('nan')"
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    err = one_line_error(capsys, ["train", "quickstart", "-p", "lr", "inf"])
    assert "parameter 'lr' = inf is not a finite number" in err and "NameError" not in err


def test_the_command_line_itself_prints_no_traceback(tmp_path):
    (tmp_path / "afile").write_text("")
    env = {**os.environ, "LESIONKIT_RUNS": str(tmp_path / "afile"), "LESIONKIT_DEBUG": ""}
    proc = subprocess.run([sys.executable, "-m", "lesionkit", "train", "quickstart", "-p", "smoke", "true"],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("python -m lesionkit train: error: LESIONKIT_RUNS=")
