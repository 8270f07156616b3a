"""The trial side of a sweep (``python -m lesionkit sweep``): a run started by the sweep finds its Optuna trial in
``$LESIONKIT_TRIAL``, links its run record to it, and reports each epoch's validation value so the study's pruner
can stop it early. Outside a sweep every function here does nothing.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any

from lesionkit.parallel.distributed import is_main

ENV = "LESIONKIT_TRIAL"  # JSON: {"storage": URL, "study": name, "trial_id": int, "number": int, "pruner": [...]}


def make_pruner(name: str = "median", startup_trials: int = 5) -> Any:
    """The study's pruner. Optuna keeps it in the study object, not the database, so the sweep and each trial
    build the same one from these two settings."""
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials)


def trial_env() -> dict[str, Any] | None:
    raw = os.environ.get(ENV, "").strip()
    return json.loads(raw) if raw else None


@functools.lru_cache(maxsize=1)
def current_trial() -> Any:
    """This process's Optuna trial (main process only), or None outside a sweep."""
    env = trial_env()
    if env is None or not is_main():
        return None
    import optuna

    study = optuna.load_study(study_name=env["study"], storage=env["storage"],
                              pruner=make_pruner(*env.get("pruner", ["median", 5])))
    return optuna.trial.Trial(study, int(env["trial_id"]))


def link_run(run: Any) -> None:
    """Record the trial in run.json and the run folder in the trial (what the sweep's summary table joins on)."""
    env = trial_env()
    if env is None:
        return
    run.update(sweep={"study": env["study"], "trial": env["number"], "storage": env["storage"]})
    trial = current_trial()
    if trial is not None:
        trial.set_user_attr("run_dir", str(run.dir))


def stop_with_sweep() -> None:
    """In a trial, end this process (SIGTERM: the run records ``ended: "signal SIGTERM"``) when the sweep that
    started it is gone, killed or not, instead of training on unwatched."""
    if trial_env() is None:
        return
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lesionkit-sweep-watch", daemon=True).start()


_STEPS = {"n": 0}


def next_step() -> int:
    _STEPS["n"] += 1
    return _STEPS["n"] - 1
