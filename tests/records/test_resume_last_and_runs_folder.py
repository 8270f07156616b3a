"""Bad input, round three (issue 31), run records: `resume last` takes the newest run that can be resumed and says
which (a config error's record, a completed run are skipped), the runs folder is refused by name when it cannot be
one, and a long run_name still makes a record."""
from __future__ import annotations

import json

import pytest

from lesionkit.config import ConfigError
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.records.runs import MAX_SLUG, find_run, resume_run, start_run


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))


def interrupted(name: str):
    run = start_run("nb", QuickstartConfig, {}, run_name=name, watch_notebook=False)
    run.update(pid=2**22 + 12345)  # its process is gone: interrupted
    return run


def test_resume_last_skips_a_config_error_and_a_completed_run_and_says_which(capsys):
    wanted = interrupted("a")
    with pytest.raises(ConfigError):
        start_run("nb", QuickstartConfig, {"epoch": 3}, run_name="b", watch_notebook=False)  # a typo: no config.yaml
    start_run("nb", QuickstartConfig, {}, run_name="c", watch_notebook=False).complete()
    assert find_run("nb", "last") == wanted.dir
    assert f"resume='last': {wanted.dir.name} (interrupted) (skipped 2 newer record(s)" in capsys.readouterr().out
    run = resume_run("nb", QuickstartConfig, "last")
    assert run.dir == wanted.dir and run.info["status"] == "running"


def test_resume_last_with_nothing_resumable_says_so():
    with pytest.raises(ConfigError):
        start_run("nb", QuickstartConfig, {"epoch": 3}, watch_notebook=False)
    with pytest.raises(ConfigError, match=r"none of the 1 run\(s\) of nb .* can be resumed"):
        find_run("nb", "last")


def test_resuming_a_record_without_config_names_it(tmp_path):
    with pytest.raises(ConfigError):
        start_run("nb", QuickstartConfig, {"epoch": 3}, watch_notebook=False)
    (record,) = (tmp_path / "runs" / "nb").iterdir()
    with pytest.raises(ConfigError, match="stopped before its config was recorded"):
        resume_run("nb", QuickstartConfig, str(record))


def test_a_runs_folder_through_a_file_is_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "afile"))
    with pytest.raises(ConfigError, match=r"LESIONKIT_RUNS='.*afile': .* cannot be a folder \(a file is in the way\)"):
        start_run("nb", QuickstartConfig, {}, watch_notebook=False)


def test_a_runs_folder_that_cannot_be_created_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", "/proc/lesionkit-runs")  # not creatable, even by root
    with pytest.raises(ConfigError, match=r"LESIONKIT_RUNS='/proc/lesionkit-runs': cannot create .* point "
                                          "LESIONKIT_RUNS at a folder you can write"):
        start_run("nb", QuickstartConfig, {}, watch_notebook=False)


def test_a_300_character_run_name_still_makes_a_record():
    run = start_run("nb", QuickstartConfig, {"run_name": "x" * 300}, run_name="x" * 300, watch_notebook=False)
    assert run.dir.name.endswith("-" + "x" * MAX_SLUG) and len(run.dir.name) < 255
    assert json.loads((run.dir / "run.json").read_text())["status"] == "running"
