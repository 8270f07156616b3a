"""Seeded, resumable notebook runs end to end: the same seed gives the same metrics.json, and a papermill run
SIGKILLed mid-training and resumed with ``-p resume`` ends exactly as a run that was never stopped."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

PAPERMILL = str(Path(sys.executable).parent / "papermill")
NB = REPO / "notebooks" / "00_quickstart.ipynb"
SMALL = {"epochs": 3, "image_size": 32, "batch_size": 16, "max_images": 120, "seed": 0}


def _cmd(out: Path, **params) -> list[str]:
    args = [PAPERMILL, str(NB), str(out), "-k", "python3"]
    for k, v in params.items():
        args += ["-p", k, str(v)]
    return args


def _env(runs_dir: Path) -> dict:
    env = {**os.environ, "LESIONKIT_RUNS": str(runs_dir)}
    env.pop("LESIONKIT_NOTEBOOK_OUTPUT", None)
    return env


def _run_dir(runs_dir: Path, name: str) -> Path:
    (d,) = (runs_dir / "00_quickstart").glob(f"*-{name}")
    return d


def _history(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "history.csv").drop(columns=["time"])


@pytest.mark.slow
def test_same_seed_same_metrics_and_sigkill_then_resume_matches(tmp_path: Path) -> None:
    runs_dir, env = tmp_path / "runs", _env(tmp_path / "runs")
    for name in ("a", "b"):
        subprocess.run(_cmd(tmp_path / f"{name}.ipynb", run_name=name, **SMALL), env=env, check=True,
                       capture_output=True)
    a, b = _run_dir(runs_dir, "a"), _run_dir(runs_dir, "b")
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text(), "same seed, same metrics.json"
    assert pd.read_csv(a / "splits.csv").equals(pd.read_csv(b / "splits.csv"))

    proc = subprocess.Popen(_cmd(tmp_path / "k.ipynb", run_name="killed", **SMALL), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    ckpt = None
    while time.time() < deadline and proc.poll() is None:
        found = list((runs_dir / "00_quickstart").glob("*-killed/checkpoints/model_last.pth"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.1)
    assert ckpt is not None, "the run never wrote an epoch checkpoint"
    killed = ckpt.parents[1]
    os.kill(json.loads((killed / "run.json").read_text())["pid"], signal.SIGKILL)  # the kernel (its own session)
    os.killpg(proc.pid, signal.SIGKILL)  # and papermill: everything, as a scheduler's hard kill would
    proc.wait()
    assert json.loads((killed / "run.json").read_text())["status"] == "running", "a hard kill leaves no trace"
    assert not (killed / "metrics.json").exists() or "test" not in json.loads((killed / "metrics.json").read_text())

    done = subprocess.run(_cmd(tmp_path / "r.ipynb", resume=str(killed)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((killed / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed"][0]["after"] == "interrupted"
    assert (killed / "metrics.json").read_text() == (a / "metrics.json").read_text()
    hist = _history(killed)
    assert hist["epoch"].tolist() == [0, 1, 2], "each epoch once"
    pd.testing.assert_frame_equal(hist, _history(a))
    kept = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert kept and all(n.endswith("_final.pth") for n in kept), f"per-epoch state goes once the run completes: {kept}"

    refused = subprocess.run(_cmd(tmp_path / "x.ipynb", resume=str(a)), env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "completed; nothing to resume" in refused.stderr + refused.stdout
