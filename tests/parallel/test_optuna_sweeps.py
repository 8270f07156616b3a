"""`python -m lesionkit sweep`: an Optuna study on SQLite whose trials are normal runs; a killed sweep resumes with
only the missing trials; the pruner's stop is recorded in the trial's run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from conftest import REPO
from lesionkit.cli.sweep import Dimension, Sweep, SweepError, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_space_specs_parse_and_bad_ones_say_the_form() -> None:
    assert parse_space("lr=loguniform:1e-5:1e-3") == Dimension("lr", "loguniform", (1e-5, 1e-3))
    assert parse_space("batch_size=choice:16,32") == Dimension("batch_size", "choice", (16, 32))
    assert parse_space("arch=choice:resnet18,resnet50").args == ("resnet18", "resnet50")
    assert parse_space("epochs=int:2:8") == Dimension("epochs", "int", (2.0, 8.0))
    for bad in ("lr", "lr=normal:0:1", "lr=loguniform:0:1", "lr=uniform:3:1", "lr=uniform:a:b"):
        with pytest.raises(SweepError, match="lr"):
            parse_space(bad)


def _study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def _sweep_cmd(storage: str) -> list[str]:
    return [sys.executable, "-m", "lesionkit", "sweep", "quickstart", "--space", "lr=loguniform:1e-3:1e-2",
            "--space", "batch_size=choice:8,16", "--trials", "3", "--name", "t", "--storage", storage,
            "-p", "smoke", "True"]


@pytest.mark.slow
def test_killed_sweep_resumes_with_only_the_missing_trials(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'sweeps' / 't.db'}"
    env = {**os.environ, "LESIONKIT_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    log = tmp_path / "first.log"
    first = subprocess.Popen(_sweep_cmd(storage), env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    trial1_log = tmp_path / "runs" / "sweeps" / "t" / "trials" / "trial1.log"
    while time.time() < deadline:  # kill the sweep (only its own process) once trial 1 has started
        time.sleep(0.5)
        if not trial1_log.exists():  # opening the study before the sweep has created it races its schema setup
            continue
        try:
            trials = _study(storage, "t").get_trials()
        except Exception:  # the database or the study is not created yet
            continue
        if [t.state.name for t in trials] == ["COMPLETE", "RUNNING"] and trials[1].user_attrs.get("sweep_pid"):
            break
    else:
        first.kill()
        pytest.fail(f"the sweep never reached trial 1:\n{log.read_text()[-3000:]}")
    runs = tmp_path / "runs" / "00_quickstart"
    while not list(runs.glob("*-t-trial1/config.yaml")) and time.time() < deadline:  # trial 1's run is open
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    run1 = next(runs.glob("*-t-trial1"))
    deadline = time.time() + 30  # the trial's process notices its sweep is gone and stops, recording why
    while json.loads((run1 / "run.json").read_text())["status"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert json.loads((run1 / "run.json").read_text())["ended"] == "signal SIGTERM"

    out = subprocess.run(_sweep_cmd(storage), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "1 finished, 2 to run" in out.stdout
    trials = _study(storage, "t").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == trials[1].params and trials[2].user_attrs["retry_of"] == 1  # the killed one, again
    for t in (trials[0], trials[2], trials[3]):
        run_dir = Path(t.user_attrs["run_dir"])
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "completed" and info["sweep"]["trial"] == t.number
        assert t.intermediate_values, "no per-epoch value reached the pruner"
        stages = json.loads((run_dir / "stages.json").read_text())
        assert t.value == pytest.approx(stages["model"]["best"])  # the validation selection metric, not test
    folder = tmp_path / "runs" / "sweeps" / "t"
    assert len((folder / "trials.csv").read_text().strip().splitlines()) == 1 + 4
    assert (folder / "figures" / "history.png").is_file()


@pytest.mark.slow
def test_pruned_trial_stops_its_run_and_says_so(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    sweep = Sweep("quickstart", "p", storage, [parse_space("lr=loguniform:1e-3:1e-2")], {"smoke": True},
                  pruner=("median", 0))
    study = sweep.study()
    dist = optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)
    study.add_trial(optuna.trial.create_trial(params={"lr": 2e-3}, distributions={"lr": dist}, value=2.0,
                                              intermediate_values={0: 2.0}))  # a BMA no run reaches
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        sweep.run_trial(trial, threads=1)
    (run_dir,) = (tmp_path / "runs" / "00_quickstart").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["ended"] == "pruned"
    assert "pruned after epoch 1" in info["error"]
    assert list(_study(storage, "p").trials[1].intermediate_values) == [0]


def test_train_and_sweep_commands_name_a_bad_notebook_or_space(capsys) -> None:
    from lesionkit.cli import sweep
    from lesionkit.cli import train as train_cli

    assert train_cli.main(["nosuch"]) == 2
    assert "no notebook 'nosuch'" in capsys.readouterr().err
    assert sweep.main(["quickstart", "--space", "lr=normal:0:1", "--trials", "1"]) == 2
    assert "kind one of" in capsys.readouterr().err
