"""Run records: atomic files, failed runs keep their record, no pickles."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lesionkit.config import ConfigError
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.utils.kernel import _papermill_positionals
from lesionkit.records.runs import env_report, start_run
from lesionkit.utils.files import atomic_write


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))


def test_completed_run_writes_the_record(tmp_path) -> None:
    import torch

    run = start_run("nb", QuickstartConfig, {"epochs": "2"}, run_name="try 1", watch_notebook=False)
    assert run.dir.parent == tmp_path / "runs" / "nb" and run.dir.name.endswith("try-1")
    run.log_metrics({"test": {"auc": 0.9}})
    run.log_metrics({"valid": {"auc": float("nan")}})
    run.save_model(torch.nn.Linear(2, 3), spec={"name": "linear"})
    run.complete()
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "completed" and info["finished"]
    assert json.loads((run.dir / "metrics.json").read_text()) == {"test": {"auc": 0.9}, "valid": {"auc": None}}
    assert "epochs: 2" in (run.dir / "config.yaml").read_text()
    state = torch.load(run.dir / "model.pth", weights_only=True)
    assert set(state) == {"weight", "bias"}
    env = json.loads((run.dir / "env.json").read_text())
    assert env["packages"]["torch"] and "python" in env


def test_bad_parameter_leaves_a_failed_record(tmp_path) -> None:
    with pytest.raises(ConfigError):
        start_run("nb", QuickstartConfig, {"epoch": 3}, watch_notebook=False)
    (run_dir,) = (tmp_path / "runs" / "nb").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "unknown parameter 'epoch'" in info["error"]
    assert json.loads((run_dir / "params.json").read_text()) == {"epoch": 3}


def test_exception_marks_failed_and_keeps_what_was_written() -> None:
    run = start_run("nb", QuickstartConfig, {}, watch_notebook=False)
    with pytest.raises(KeyboardInterrupt):
        with run:
            atomic_write(run.dir / "history.csv", "epoch,train_loss\n0,1.0\n")
            raise KeyboardInterrupt
    info = json.loads((run.dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith("KeyboardInterrupt")
    assert "Traceback" in info["traceback"]
    assert (run.dir / "history.csv").read_text().startswith("epoch")
    assert (run.dir / "config.yaml").exists()


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, "old")
    import os

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_papermill_command_line_parsing() -> None:
    args = ["-p", "epochs", "100", "notebooks/arl.ipynb", "-k", "python3", "out.ipynb", "--log-output"]
    assert _papermill_positionals(args) == ["notebooks/arl.ipynb", "out.ipynb"]


def test_env_report_has_versions_and_device() -> None:
    env = env_report()
    assert env["packages"]["fastai"] == "2.8.12" and env["device"]["cpu_count"] >= 1
    assert Path(__file__).exists()


def test_sigterm_marks_the_run_failed(tmp_path) -> None:
    """A run whose process is terminated (scheduler time-out, papermill stopped) is recorded as failed."""
    import subprocess
    import sys

    code = ("import os, signal, time\n"
            "from lesionkit.records.runs import start_run\n"
            "from lesionkit.papers.quickstart.recipe import QuickstartConfig\n"
            "run = start_run('nb', QuickstartConfig, {})\n"
            "print(run.dir, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "LESIONKIT_RUNS": str(tmp_path / "runs")})
    assert proc.returncode == -15
    info = json.loads((Path(proc.stdout.strip()) / "run.json").read_text())
    assert info["status"] == "failed" and "terminated by signal 15" in info["error"]


def test_hard_killed_run_reads_as_interrupted() -> None:
    from lesionkit.records.runs import list_runs, run_status

    run = start_run("nb", QuickstartConfig, {}, watch_notebook=False)
    run.update(pid=2**22 + 12345)  # no such process
    assert run_status(run.info) == "interrupted"
    assert [r["status"] for r in list_runs("nb")] == ["interrupted"]
