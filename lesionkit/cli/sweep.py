"""``python -m lesionkit sweep <notebook>``: hyper-parameter search as an Optuna study on a real database.

Each trial is a normal run (``python -m lesionkit train``, its own record under ``runs/<notebook>/``, run name
``<study>-trial<N>``) with the trial's values as parameters. It reports every epoch's validation value to the
study, so the pruner (median by default) stops bad trials early, and its objective is a *validation* figure — the
best selection-metric value of its stages, never the test set. The study lives in ``--storage`` (any SQLAlchemy URL:
SQLite by default, PostgreSQL for workers on several machines sharing one study); a killed sweep started again
with the same command marks the trial it left running as failed, re-queues that trial's values and runs only the
trials still missing. Its folder ``runs/sweeps/<study>/`` gets ``trials.csv``, Optuna's figures and one log per trial.

    python -m lesionkit sweep arl --space 'lr=loguniform:1e-5:1e-3' --space 'batch_size=choice:16,32' --trials 20
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lesionkit.engine.callbacks import lower_is_better
from lesionkit.parallel.trial import ENV, make_pruner
from lesionkit.utils.files import atomic_write
from lesionkit.utils.paths import runs_root
from lesionkit.utils.processes import pid_alive

KINDS = ("loguniform", "uniform", "int", "intlog", "choice")


class SweepError(ValueError):
    """A sweep that cannot run as asked (bad space, wrong direction): stops the sweep, not just a trial."""


class TrialFailed(RuntimeError):
    """One trial's run failed: the study marks it FAIL and the sweep goes on."""


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: str
    args: tuple[Any, ...]

    def suggest(self, trial: Any) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.args))
        low, high = self.args
        if self.kind in ("int", "intlog"):
            return trial.suggest_int(self.name, int(low), int(high), log=self.kind == "intlog")
        return trial.suggest_float(self.name, float(low), float(high), log=self.kind == "loguniform")


def parse_space(spec: str) -> Dimension:
    """``name=kind:args``: loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH, intlog:LOW:HIGH, choice:A,B,..."""
    from papermill.cli import _resolve_type

    name, eq, rest = spec.partition("=")
    kind, _, args = rest.partition(":")
    if not eq or not name.strip() or kind not in KINDS or not args:
        raise SweepError(f"--space {spec!r}: write name=kind:args with kind one of {list(KINDS)}, e.g. "
                         f"lr=loguniform:1e-5:1e-3 or batch_size=choice:16,32")
    if kind == "choice":
        return Dimension(name.strip(), kind, tuple(_resolve_type(v.strip()) for v in args.split(",")))
    bounds = args.split(":")
    try:
        low, high = (float(b) for b in bounds)
    except ValueError:
        raise SweepError(f"--space {spec!r}: {kind} takes two numbers LOW:HIGH") from None
    if not low < high or (kind in ("loguniform", "intlog") and low <= 0):
        raise SweepError(f"--space {spec!r}: need LOW < HIGH (and LOW > 0 for a log scale)")
    return Dimension(name.strip(), kind, (low, high))


def sweep_dir(name: str) -> Path:
    return runs_root() / "sweeps" / name


def _sqlite_parent(storage: str) -> None:
    if storage.startswith("sqlite:///"):
        Path(storage[len("sqlite:///"):]).expanduser().parent.mkdir(parents=True, exist_ok=True)


def requeue_abandoned(study: Any) -> list[int]:
    """Trials left RUNNING by a sweep process of this host that no longer exists: FAIL them and queue their values
    again, so the restarted sweep runs them first. Returns their numbers."""
    from optuna.trial import TrialState

    host, numbers = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("sweep_pid")
        if t.user_attrs.get("host") == host and pid and not pid_alive(int(pid)):
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            numbers.append(t.number)
    return numbers


def objective_value(run_dir: Path, objective: str) -> tuple[float, str]:
    """(value, metric name) of a finished run: ``objective="valid"``: the mean best validation value over the
    stages selected by the last stage's monitor (folds and variants of a paper's comparison); else a dotted path
    into metrics.json (e.g. ``valid.bma``)."""
    if objective == "valid":
        stages = json.loads((run_dir / "stages.json").read_text())
        monitor = list(stages.values())[-1]["monitor"]
        values = [s["best"] for s in stages.values() if s.get("monitor") == monitor]
        return float(sum(values) / len(values)), monitor
    value: Any = json.loads((run_dir / "metrics.json").read_text())
    for part in objective.split("."):
        if not isinstance(value, dict) or part not in value:
            raise SweepError(f"--objective {objective!r}: {run_dir / 'metrics.json'} has no {part!r}")
        value = value[part]
    return float(value), objective


@dataclass
class Sweep:
    notebook: str
    name: str
    storage: str
    space: list[Dimension]
    fixed: dict[str, Any]
    direction: str = "maximize"
    objective: str = "valid"
    pruner: tuple[str, int] = ("median", 5)  # name, trials finished before it prunes

    def study(self) -> Any:
        import optuna

        _sqlite_parent(self.storage)
        return optuna.create_study(study_name=self.name, storage=self.storage, direction=self.direction,
                                   pruner=make_pruner(*self.pruner), load_if_exists=True)

    def command(self, params: dict[str, Any]) -> list[str]:
        args = [str(a) for k, v in params.items() for a in ("-p", k, v)]
        return [sys.executable, "-m", "lesionkit", "train", self.notebook, *args]

    def run_trial(self, trial: Any, threads: int) -> float:
        import optuna

        params = {**self.fixed, **{d.name: d.suggest(trial) for d in self.space},
                  "run_name": f"{self.name}-trial{trial.number}"}
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("sweep_pid", os.getpid())
        env = {**os.environ, ENV: json.dumps({"storage": self.storage, "study": self.name,
                                              "trial_id": trial._trial_id, "number": trial.number,
                                              "pruner": list(self.pruner)})}
        env.setdefault("OMP_NUM_THREADS", str(threads))
        log = sweep_dir(self.name) / "trials" / f"trial{trial.number}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            code = subprocess.run(self.command(params), env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
        run_dir = self._run_dir(params["run_name"])
        trial.set_user_attr("log", str(log))
        if run_dir is None:
            raise TrialFailed(f"trial {trial.number} left no run record (exit code {code}); see {log}")
        trial.set_user_attr("run_dir", str(run_dir))
        info = json.loads((run_dir / "run.json").read_text())
        if info.get("ended") == "pruned":
            raise optuna.TrialPruned(info.get("error", "pruned"))
        if info.get("status") != "completed":
            raise TrialFailed(f"trial {trial.number}: run {run_dir} {info.get('status')}: {info.get('error')}")
        value, metric = objective_value(run_dir, self.objective)
        lower = lower_is_better(metric)
        if self.objective == "valid" and lower != (self.direction == "minimize"):
            raise SweepError(f"the runs select on {metric!r}, where {'lower' if lower else 'higher'} is better, but "
                             f"the study is to {self.direction}: pass --direction "
                             f"{'minimize' if lower else 'maximize'} with a new --name")
        trial.set_user_attr("metric", metric)
        return value

    def _run_dir(self, run_name: str) -> Path | None:
        from lesionkit.cli.train import notebook_path  # lazy: nbformat/papermill only when a trial's run is looked up

        found = sorted((runs_root() / notebook_path(self.notebook).stem).glob(f"*-{run_name}/run.json"))
        return found[-1].parent if found else None


def summarize(study: Any, folder: Path) -> tuple[Any, list[str]]:
    """trials.csv and Optuna's matplotlib figures (history, parameter importances, slice) in ``folder``; returns
    the table and the figures that could not be drawn yet (with why)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import matplotlib as oplt

    rows = [{"trial": t.number, "state": t.state.name, "value": t.value, **t.params,
             "metric": t.user_attrs.get("metric"), "seconds": t.user_attrs.get("seconds"),
             "run_dir": t.user_attrs.get("run_dir")} for t in study.get_trials(deepcopy=False)]
    table = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)

    atomic_write(folder / "trials.csv", table.to_csv(index=False))
    skipped = []
    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # Optuna marks its matplotlib plots so
    for name, plot in (("history", oplt.plot_optimization_history), ("importances", oplt.plot_param_importances),
                       ("slice", oplt.plot_slice)):
        try:
            ax = plot(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            (folder / "figures").mkdir(exist_ok=True)
            fig.savefig(folder / "figures" / f"{name}.png", dpi=110, bbox_inches="tight")
            plt.close(fig)
        except Exception as err:  # e.g. importances need two finished trials
            skipped.append(f"{name}: {err}")
    return table, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lesionkit sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="notebook name (arl, quickstart, ...) or .ipynb path")
    parser.add_argument("--space", action="append", default=[], required=True, metavar="NAME=KIND:ARGS",
                        help=f"a searched parameter; KIND one of {', '.join(KINDS)}")
    parser.add_argument("--trials", type=int, required=True, help="finished (completed or pruned) trials wanted")
    parser.add_argument("--name", default="", help="study name (default: the notebook's name + '-sweep')")
    parser.add_argument("--storage", default="", help="SQLAlchemy URL (default sqlite:///runs/sweeps/<name>/study.db)")
    parser.add_argument("--workers", type=int, default=1, help="trials run in parallel on this machine")
    parser.add_argument("--direction", choices=("maximize", "minimize"), default="maximize")
    parser.add_argument("--objective", default="valid", help="'valid' (the runs' selection metric) or a dotted "
                                                             "metrics.json path")
    parser.add_argument("--pruner", choices=("median", "none"), default="median",
                        help="median: stop a trial whose epoch value is worse than the median of earlier trials' "
                             "at the same epoch")
    parser.add_argument("--pruner-startup", type=int, default=5, help="finished trials before pruning starts")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter fixed for every trial, as for papermill")
    args = parser.parse_args(argv)
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from lesionkit.cli.train import notebook_path, parse_params  # lazy: nbformat/papermill only when the sweep runs

    try:
        stem = notebook_path(args.notebook).stem
        space = [parse_space(s) for s in args.space]
    except (FileNotFoundError, SweepError) as err:
        print(f"python -m lesionkit sweep: {err}", file=sys.stderr)
        return 2
    name = args.name or f"{stem}-sweep"
    storage = args.storage or f"sqlite:///{sweep_dir(name) / 'study.db'}"
    sweep = Sweep(args.notebook, name, storage, space, parse_params(args.parameters),
                  args.direction, args.objective, (args.pruner, args.pruner_startup))
    study = sweep.study()
    retried = requeue_abandoned(study)
    if retried:
        print(f"trials {retried} were left running by a sweep that is gone: marked failed, their values queued again")
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    remaining = max(0, args.trials - done)
    print(f"study {name!r} in {storage}: {done} finished, {remaining} to run", flush=True)
    threads = max(1, (os.cpu_count() or 1) // max(1, args.workers))
    if remaining:
        study.optimize(lambda t: sweep.run_trial(t, threads), n_trials=remaining, n_jobs=args.workers,
                       catch=(TrialFailed,), callbacks=[MaxTrialsCallback(args.trials,
                                                                          states=(TrialState.COMPLETE,
                                                                                  TrialState.PRUNED))])
    table, skipped = summarize(study, sweep_dir(name))
    print(table.to_string(index=False))
    for line in skipped:
        print(f"figure not drawn: {line}")
    if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        print(f"best: trial {study.best_trial.number}, value {study.best_value:.4g}, {study.best_params}")
    print(f"sweep folder: {sweep_dir(name)}")
    return 0
