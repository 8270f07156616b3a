"""Data-parallel training over processes (torchrun / accelerate launch start ``python -m lesionkit train``): fastai's
DDP integration on gloo, the validation metrics over every row once, one run record, results within noise of one
process."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env(tmp_path: Path) -> dict[str, str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "LESIONKIT_RUNS": str(tmp_path / "runs"), "TMPDIR": str(scratch), "OMP_NUM_THREADS": "1"}


def _run(cmd: list[str], env: dict[str, str], timeout: int = 420) -> str:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_validation_metrics_see_every_row_once_and_batch_is_split(tmp_path) -> None:
    # 7 validation rows over 2 processes: fastai pads one process's shard; the gathered metric must see 0..6 once
    out = _run([*TORCHRUN, str(REPO / "tests" / "helpers" / "ddp_probe.py")], _env(tmp_path), timeout=180)
    # the two processes share one stdout pipe, so their lines may interleave: match the reports, not the lines
    found = re.findall(r"rank (\d) of 2: valid rows 7 once True train batch 2 model Linear", out)
    assert sorted(found) == ["0", "1"], out


@pytest.mark.slow
def test_two_processes_one_record_every_test_row_once_close_to_one_process(tmp_path) -> None:
    env = _env(tmp_path)
    params = ["-p", "image_size", "64", "-p", "epochs", "3", "-p", "max_images", "400", "-p", "batch_size", "32"]
    train = ["-m", "lesionkit", "train", "quickstart", *params]
    _run([sys.executable, *train, "-p", "run_name", "one"], env)
    _run([*TORCHRUN, *train[1:], "-p", "run_name", "two"], env)
    _run([sys.executable, *train, "-p", "run_name", "launched", "-p", "num_processes", "2"], env)  # Accelerate's
    runs = sorted((tmp_path / "runs" / "00_quickstart").iterdir())  # launcher forks the workers of each stage
    assert [p.name.split("-")[-1] for p in runs] == ["one", "two", "launched"]  # no record of another process
    assert not list((tmp_path / "tmp").glob("lesionkit-rank*")), "a scratch record was left behind"
    scores = {}
    for run_dir in runs:
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "completed", info.get("error")
        splits = pd.read_csv(run_dir / "splits.csv", dtype={"image_id": str})
        test_ids = set(splits.loc[splits["part"] == "test", "image_id"])
        pred = pd.read_csv(run_dir / "predictions" / "test.csv", dtype={"image": str})
        assert len(pred) == len(test_ids) and set(pred["image"]) == test_ids  # each test row once, no padding
        history = pd.read_csv(run_dir / "history.csv")
        assert len(history) == 3  # one row per epoch, not one per process
        trained_by = json.loads((run_dir / "stages.json").read_text())["model"]["processes"]
        scores[run_dir.name.split("-")[-1]] = (trained_by, json.loads((run_dir / "metrics.json").read_text()))
    assert [scores[k][0] for k in ("one", "two", "launched")] == [1, 2, 2]
    one = scores["one"][1]["test"]
    for other in (scores["two"][1]["test"], scores["launched"][1]["test"]):
        assert one["auc_macro"] > 0.7 and other["auc_macro"] > 0.7  # both learn
        assert abs(one["auc_macro"] - other["auc_macro"]) < 0.1  # and agree within this setting's noise
        assert abs(one["balanced_accuracy"] - other["balanced_accuracy"]) < 0.15


@pytest.mark.slow
def test_two_process_run_killed_mid_training_resumes_from_its_checkpoint(tmp_path) -> None:
    import signal
    import time

    env = _env(tmp_path)
    params = ["-p", "image_size", "32", "-p", "epochs", "8", "-p", "max_images", "300", "-p", "batch_size", "16"]
    cmd = [*TORCHRUN, "-m", "lesionkit", "train", "quickstart", *params]
    proc = subprocess.Popen([*cmd, "-p", "run_name", "killed"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    runs, deadline = tmp_path / "runs" / "00_quickstart", time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(runs.glob("*-killed/checkpoints/model_last.pth")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True)  # torchrun starts them in sessions of their own
    for p in [psutil.Process(proc.pid), *workers]:  # torchrun and both workers at once: nothing gets to write
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(workers, timeout=30)
    (run_dir,) = runs.glob("*-killed")
    _run([*cmd, "-p", "resume", str(run_dir)], env)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed"][0]["after"] == "interrupted"
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(8))  # each epoch once: the resumed fit continued, not restarted
    assert json.loads((run_dir / "stages.json").read_text())["model"]["resumed_at"] >= 1
    assert not list((tmp_path / "tmp").glob("lesionkit-rank*"))
