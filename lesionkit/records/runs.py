"""Run records: every notebook run leaves `runs/<notebook>/<run-id>/` with what it was, what it did and what it made.

Layout: run.json (status, times, error + traceback), config.yaml, env.json, history.csv, metrics.json, figures/,
predictions/, model.pth + model.json (state_dict + how to rebuild it, never a pickle) and notebook.ipynb (the executed
notebook when run by papermill). Every file is written atomically (temp file + rename), so a run killed at any
moment keeps a readable record; a run that raises is marked failed with its traceback and keeps what it had written.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

from lesionkit.config import Config, ConfigError, notebook_params
from lesionkit.parallel import distributed
from lesionkit.parallel import trial as sweep_trial
from lesionkit.records import endings as run_endings
from lesionkit.utils.files import atomic_write, jsonable
from lesionkit.utils.kernel import _papermill_output_path
from lesionkit.utils.paths import repo_root, runs_root
from lesionkit.utils.processes import pid_alive

PACKAGES = ("lesionkit", "torch", "torchvision", "fastai", "timm", "captum", "numpy", "pandas", "scikit-learn",
            "seaborn", "matplotlib", "papermill", "ipywidgets", "segmentation-models-pytorch", "albumentations")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    root = repo_root()
    if root is None:
        return None
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def env_report() -> dict[str, Any]:
    """Package versions, device and git state: enough to tell why two runs differ."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    device: dict[str, Any] = {"cpu_count": os.cpu_count()}
    if "torch" in sys.modules or versions["torch"]:
        import torch

        device.update(torch_threads=torch.get_num_threads(), cuda=torch.cuda.is_available(), gpu=_gpu_name(torch))
    status = _git("status", "--porcelain")
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "device": device, "git_commit": _git("rev-parse", "HEAD"),
            "git_dirty": bool(status) if status is not None else None, "time": _now()}


def _gpu_name(torch: Any) -> str | None:
    """The first GPU's name, read without initialising CUDA in this process (a kernel that initialised it could
    fork no workers for ``num_processes``): from CUDA when it is up already, else from nvidia-smi."""
    if not torch.cuda.is_available():
        return None
    if torch.cuda.is_initialized():
        return torch.cuda.get_device_name(0)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        out = []
    return out[0].strip() if out else "unknown (nvidia-smi did not answer)"


@dataclass
class Run:
    """One run's record folder; methods write into it atomically."""

    dir: Path
    notebook: str
    cfg: Config | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def figures(self) -> Path:
        return self.dir / "figures"

    def update(self, **fields: Any) -> None:
        """Add or change fields of run.json (written atomically): how a library step records what it decided."""
        self.info.update(fields)
        atomic_write(self.dir / "run.json", json.dumps(self.info, indent=2, default=str))

    def log_metrics(self, metrics: dict[str, Any], name: str = "metrics.json") -> Path:
        """Merge `metrics` into metrics.json (numbers, strings, nested dicts)."""
        path = self.dir / name
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(jsonable(metrics))
        return atomic_write(path, json.dumps(current, indent=2))

    def metrics(self) -> dict[str, Any]:
        path = self.dir / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def history(self) -> Any:
        """history.csv as a DataFrame (empty before the first epoch ends)."""
        import pandas as pd

        path = self.dir / "history.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    def save_figure(self, fig: Any, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib Figure as figures/<name>.png and return the path."""
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return atomic_write(self.figures / f"{Path(name).stem}.png", buf.getvalue())

    def show_figure(self, fig: Any, name: str) -> Any:
        """Save ``fig`` as figures/<name>.png and return it: a notebook cell ending with this call both keeps the
        figure in the run record and displays it (lesionkit's Figures draw themselves as PNGs)."""
        self.save_figure(fig, name)
        return fig

    def save_table(self, df: Any, name: str) -> Path:
        """Save a DataFrame as CSV (predictions, per-fold tables)."""
        return atomic_write(self.dir / name, df.to_csv(index=False))

    def save_model(self, model: Any, name: str = "model", spec: dict[str, Any] | None = None) -> Path:
        """state_dict + a JSON spec of how to rebuild it (registry name, kwargs, classes): never a pickle."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
        atomic_write(self.dir / f"{name}.json", json.dumps(jsonable(spec or {}), indent=2))
        return atomic_write(self.dir / f"{name}.pth", buf.getvalue())

    def complete(self, **fields: Any) -> None:
        """Mark completed; the per-epoch checkpoints (kept until now so the run could resume) are removed, each
        finished stage's final weights (``checkpoints/<stage>_final.pth``, every fold's) stay for ``load_run``."""
        self._adopt_notebook()
        folder = self.dir / "checkpoints"
        for path in folder.glob("*.pth") if folder.is_dir() else ():
            if not path.name.endswith("_final.pth"):
                path.unlink(missing_ok=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        self.update(status="completed", finished=_now(), ended="completed", **fields)

    def save_split(self, ds: Any, splits: Any) -> Path:
        """splits.csv: which image ids were in train / valid / test of each fold (see data.splits.Splits)."""
        return self.save_table(splits.to_frame(ds.df), "splits.csv")

    def fail(self, exc: BaseException, ended: str | None = None) -> None:
        """Mark failed with the traceback and how it ended (`run_endings`); everything already written stays."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._adopt_notebook()
        self.update(status="failed", finished=_now(), ended=ended or run_endings.ending_of(exc),
                     error=f"{type(exc).__name__}: {exc}", traceback=tb)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self.fail(exc)

    def _adopt_notebook(self) -> None:
        """Link papermill's output notebook into the record. A hard link follows papermill's later in-place
        rewrites (it saves after every cell, and once more at the end) and survives deletion of the original."""
        recorded = self.info.get("notebook_path")  # read at start: once papermill is gone its command line is too
        out = Path(recorded) if recorded else _papermill_output_path()
        target = self.dir / "notebook.ipynb"
        if out is None or not out.exists() or target.exists():
            return
        try:
            os.link(out, target)
        except OSError:
            import shutil

            shutil.copyfile(out, target)


def _notebook_path() -> str | None:
    out = _papermill_output_path()
    return str(out) if out else None


MAX_SLUG = 80  # run_name's share of a run folder's name (file systems allow 255 bytes a name)


def make_runs_folder(folder: Path) -> Path:
    """``folder`` (runs/<notebook>/) created if needed, or a ConfigError naming the runs folder and how to fix it:
    a path through a file, a place this user cannot write."""
    where = (f"LESIONKIT_RUNS={os.environ['LESIONKIT_RUNS']!r}" if os.environ.get("LESIONKIT_RUNS")
             else f"the runs folder {runs_root()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{where}: {folder} cannot be a folder (a file is in the way); point LESIONKIT_RUNS at a "
                          "folder") from None
    except OSError as err:
        raise ConfigError(f"{where}: cannot create {folder} ({err.strerror}); point LESIONKIT_RUNS at a folder you "
                          "can write") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: {folder} is not writable by this user; point LESIONKIT_RUNS at a folder you "
                          "can write")
    return folder


def _new_run_dir(notebook: str, run_name: str = "") -> Path:
    """A new, empty run folder. mkdir itself is the claim (atomic), so two runs started in the same second with the
    same run_name get two folders: the loser retries with a random suffix."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_name).strip("-")[:MAX_SLUG].strip("-")
    run_dir = runs_root() / notebook / f"{stamp}-{slug or secrets.token_hex(3)}"
    make_runs_folder(run_dir.parent)
    for _ in range(100):
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            run_dir = run_dir.with_name(f"{stamp}-{slug or secrets.token_hex(3)}-{secrets.token_hex(2)}")
    raise FileExistsError(f"could not create a new run folder under {run_dir.parent} after 100 tries")


def start_run(notebook: str, config_cls: type[Config], params: dict[str, Any], run_name: str = "",
              watch_notebook: bool = True, check_machine: bool = False) -> Run:
    """Validate `params` into `config_cls` and open the run record; with ``check_machine`` (a notebook's config
    cell) also refuse what this machine cannot run (`Config.check_machine`).

    A config error still creates a record (status failed, the raw parameters and the message) before re-raising,
    so a bad papermill call is never silent. In a notebook, exceptions in later cells mark the run failed too.
    """
    run_dir = distributed.on_main(lambda: _new_run_dir(notebook, run_name))
    run = Run(distributed.record_dir(run_dir), notebook)
    run.update(notebook=notebook, run_id=run_dir.name, status="running", started=_now(), pid=os.getpid(),
                cwd=str(Path.cwd()), notebook_path=_notebook_path(), **_launch_info())
    if watch_notebook:  # from the moment the record says "running", any ending is recorded
        run_endings.guard(run)
    atomic_write(run.dir / "env.json", json.dumps(env_report(), indent=2))
    try:
        run.cfg = _effective(config_cls.from_params(params))
        if check_machine:
            run.cfg.check_machine()
    except ConfigError as err:
        atomic_write(run.dir / "params.json", json.dumps(jsonable(params), indent=2, default=repr))
        run.fail(err)
        raise
    run.cfg.save(run.dir / "config.yaml")
    sweep_trial.link_run(run)
    return run


def _launch_info() -> dict[str, Any]:
    """How the run was started: ``processes`` (> 1 under a distributed launch), and the command line when it was
    not a kernel's (``python -m lesionkit train``)."""
    info: dict[str, Any] = {"processes": distributed.world_size()}
    if "ipykernel" not in sys.modules:
        info["command"] = sys.argv
    return info


def _effective(cfg: Config) -> Config:
    """The settings that actually run (a smoke run's small sizes): what config.yaml records."""
    return cfg.effective() if hasattr(cfg, "effective") else cfg


def start_notebook_run(notebook: str, config_cls: type[Config], namespace: dict[str, Any]) -> Run:
    """The config cell of a notebook: the globals its parameters cells assign are the parameters (see
    `lesionkit.config.notebook_params`), so Run All can be repeated in one kernel.

    With a non-empty ``resume`` parameter the run continues in the named record instead (see :func:`resume_run`).
    """
    params = notebook_params(namespace)
    if str(params.get("resume") or "").strip():
        return resume_run(notebook, config_cls, str(params["resume"]).strip())
    return start_run(notebook, config_cls, params, run_name=str(params.get("run_name", "")), check_machine=True)


def find_run(notebook: str, ref: str) -> Path:
    """A run folder from ``ref``: "last" (this notebook's newest run), a path, or a run id under runs/<notebook>/."""
    if ref == "last":
        return _last_resumable(notebook)
    for cand in (Path(ref).expanduser(), runs_root() / notebook / ref):
        if (cand / "run.json").is_file():
            return cand.resolve()
    raise ConfigError(f"resume={ref!r}: no run record there (a folder with run.json); give a run folder, its id "
                      f"under {runs_root() / notebook}, or 'last'")


def _last_resumable(notebook: str) -> Path:
    """The newest run of ``notebook`` that can be resumed: one that got as far as its config.yaml and ended failed
    or interrupted. Records of runs that never started (a config error), completed or still running are skipped,
    and the choice is printed."""
    folder = runs_root() / notebook
    runs = sorted((p.parent for p in folder.glob("*/run.json")), key=lambda p: p.name)
    for skipped, run_dir in enumerate(reversed(runs)):
        try:
            status = run_status(json.loads((run_dir / "run.json").read_text()))
        except (OSError, ValueError):
            status = "unreadable"
        if (run_dir / "config.yaml").is_file() and status in ("failed", "interrupted"):
            note = f" (skipped {skipped} newer record(s) that cannot be resumed)" if skipped else ""
            print(f"resume='last': {run_dir.name} ({status}){note}", flush=True)
            return run_dir
    if not runs:
        raise ConfigError(f"resume='last': no earlier run of {notebook} under {folder}")
    raise ConfigError(f"resume='last': none of the {len(runs)} run(s) of {notebook} under {folder} can be resumed "
                      "(each completed, is still running, or stopped before its config was recorded); start a new "
                      "run, or give resume a run folder")


def resume_run(notebook: str, config_cls: type[Config], ref: str) -> Run:
    """Reopen an interrupted or failed run with the settings it recorded (config.yaml); its finished stages are
    loaded, the interrupted one continues from its last epoch checkpoint. A completed run is refused.
    Under a distributed launch the main process reopens it; the others continue from a copy."""
    run = distributed.on_main(lambda: _reopen_run(notebook, config_cls, ref))
    if not distributed.is_main():
        run = Run(distributed.record_dir(run.dir, copy=True), notebook, run.cfg, run.info)
    run_endings.guard(run)
    sweep_trial.link_run(run)
    return run


def _reopen_run(notebook: str, config_cls: type[Config], ref: str) -> Run:
    run_dir = find_run(notebook, ref)
    info = json.loads((run_dir / "run.json").read_text())
    if info.get("notebook") not in (None, notebook):
        raise ConfigError(f"resume={ref!r}: {run_dir} is a run of {info['notebook']}, not of {notebook}")
    status = run_status(info)
    if status == "completed":
        raise ConfigError(f"run {run_dir} completed; nothing to resume (start a new run, or reuse its split with "
                          f"split_from)")
    if status == "running":
        raise ConfigError(f"run {run_dir} is still running (pid {info.get('pid')}); stop it before resuming")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"resume={ref!r}: {run_dir} stopped before its config was recorded (see its run.json "
                          f"error); nothing to resume, start a new run")
    cfg = config_cls.load(run_dir / "config.yaml")
    run = Run(run_dir, notebook, _effective(cfg), info)
    resumed = [*info.get("resumed", []), {"time": _now(), "after": status, "error": info.get("error")}]
    for key in ("error", "traceback", "finished"):
        run.info.pop(key, None)
    old_nb = run_dir / "notebook.ipynb"
    if old_nb.exists():  # the interrupted attempt's executed notebook stays, under its own name
        old_nb.rename(run_dir / f"notebook-attempt{len(resumed)}.ipynb")
    run.info.pop("ended", None)
    run.update(status="running", pid=os.getpid(), resumed=resumed, notebook_path=_notebook_path(),
                **_launch_info())
    print(f"resuming {run_dir} (was {status}) with its recorded config", flush=True)
    return run


def run_status(info: dict[str, Any]) -> str:
    """run.json's status, with "interrupted" for a run still marked running whose process is gone (hard kill)."""
    status = info.get("status", "unknown")
    if status == "running" and info.get("pid") and not pid_alive(int(info["pid"])):
        return "interrupted"
    return status


def list_runs(notebook: str | None = None) -> Iterator[dict[str, Any]]:
    """run.json of every run (newest last), optionally of one notebook."""
    pattern = f"{notebook or '*'}/*/run.json"
    for path in sorted(runs_root().glob(pattern), key=lambda p: p.parent.name):
        info = json.loads(path.read_text())
        yield {**info, "status": run_status(info), "dir": str(path.parent)}


def load_config(run_dir: str | Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
