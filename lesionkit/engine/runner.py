"""The engine: resumable stages and the variants × folds loop every paper notebook runs.

A *stage* is one trained network (a variant on a fold, SE-LCN's segmenter, ...). It is seeded from the run's seed
and its key, trained by :func:`lesionkit.engine.fit.fit` with a checkpoint per epoch, and marked done in the run
record's ``stages.json`` with its final weights. Resuming a run re-executes the notebook: done stages load their
weights, the interrupted one continues from its last epoch, the rest train as usual — so the results match a run
that never stopped. A :class:`Variant` is the recipe of one model: how to build it, its loaders, loss, optimiser,
schedule, selection metric and test-time views.
Imports marked `# lazy` (fastai.vision loaders, scikit-learn splits) load when first used: the engine stays quick
to import.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from lesionkit.engine.callbacks import save_state_dict
from lesionkit.engine.fit import checkpoint_paths, fit
from lesionkit.engine.learner import make_learner
from lesionkit.engine.optim import OptimizerSpec
from lesionkit.engine.predict import predict_learner
from lesionkit.engine.report import count_params, flat_metrics, record_evaluation
from lesionkit.engine.schedules import Schedule
from lesionkit.engine.seed import seed_everything, stage_seed
from lesionkit.engine.settings import EngineSettings
from lesionkit.engine.speed import keep_speed, recorded_speed, speed_of
from lesionkit.parallel import distributed
from lesionkit.utils.files import atomic_write


@dataclass(frozen=True)
class Variant:
    """One model of a paper's comparison, declared: the engine builds, fits, predicts and records it.

    model(): the network; dls(train_idx, valid_idx): its loaders; loss(train_idx): its loss (class weights need
    the training labels; None: cross-entropy); cbs(): extra fastai callbacks; views/average: test-time views and
    whether to average their probabilities or logits; test_dl(learn, rows): the test loader (default: the
    learner's own ``test_dl`` over the dataset rows); keep: the weights it ends with, the best epoch's by
    ``monitor`` or the last epoch's.
    """

    key: str
    label: str
    model: Callable[[], torch.nn.Module]
    dls: Callable[[np.ndarray, np.ndarray], Any]
    optimizer: OptimizerSpec
    schedule: Schedule
    epochs: int
    lr: float
    monitor: str = "valid_loss"
    loss: Callable[[np.ndarray], Any] | None = None
    metrics: Sequence[Any] = ()
    cbs: Callable[[], list] | None = None
    patience: int = 0
    views: str = "none"
    average: str = "probs"
    test_dl: Callable[[Any, np.ndarray], Any] | None = None
    keep: str = "best"

    def learner(self, train_idx: np.ndarray, valid_idx: np.ndarray) -> Any:
        return make_learner(self.dls(train_idx, valid_idx), self.model(),
                            loss_func=self.loss(train_idx) if self.loss else None, metrics=self.metrics,
                            optimizer=self.optimizer, cbs=self.cbs() if self.cbs else ())

    def describe(self) -> dict[str, Any]:
        """The recipe as one table row (what the notebook prints and the run records)."""
        return {"variant": self.label, "optimizer": self.optimizer.describe(), "schedule": self.schedule.describe(),
                "epochs": self.epochs, "lr": self.lr, "monitor": self.monitor, "keep": self.keep,
                "patience": self.patience,
                "views": self.views, "average": self.average}


def recipe_table(variants: Sequence[Variant]) -> pd.DataFrame:
    """One row per variant: optimiser class and hyperparameters, schedule, selection, views (what a notebook shows)."""
    rows = []
    for v in variants:
        d = v.describe()
        opt, sched = d.pop("optimizer"), d.pop("schedule")
        rows.append({"variant": d.pop("variant"), "optimizer": opt.pop("class"), **opt,
                     "schedule": sched.pop("name"), "schedule_args": sched, **d})
    return pd.DataFrame(rows)


# --- stages -----------------------------------------------------------------------------------------------------
def _stages_path(run: Any) -> Path:
    return Path(run.dir) / "stages.json"


def stage_states(run: Any) -> dict[str, Any]:
    path = _stages_path(run)
    return json.loads(path.read_text()) if path.exists() else {}


def stage_title(key: str, label: str = "") -> str:
    """How progress names a stage: ``"ARL-CNN18 (arl), fold 0"`` from stage key ``"arl_fold0"`` and the model's
    label, so that a notebook training several models and folds says which one each progress bar is."""
    base, _, fold = key.rpartition("_fold")
    if not base or not fold.isdigit():
        base, fold = key, ""
    name = f"{label} ({base})" if label and label != base else base
    return name + (f", fold {fold}" if fold else "")


def train_stage(run: Any, key: str, build: Callable[[], Any], epochs: int, lr: float,
                schedule: Schedule | str = "one_cycle", monitor: str = "valid_loss", patience: int = 0,
                seed: int = 0, headless: bool | None = None, keep: str = "best",
                settings: EngineSettings | None = None, label: str = "") -> Any:
    """Build (seeded by ``seed`` and ``key``), train and mark done one stage; a done stage only loads its weights.
    Returns the fastai Learner with the selected weights (``keep``: the best epoch's or the last's); ``settings``:
    speed rule, compile, SyncBatchNorm and the processes to launch (default: one, auto speed rule). A line naming
    the stage (:func:`stage_title`, ``label``: the model's name) comes before its progress bar or epoch lines."""
    settings = settings or EngineSettings()
    if distributed.is_main() and not _done(run, key):
        print(f"training {stage_title(key, label)}: {epochs} epoch{'s' if epochs != 1 else ''}", flush=True)
    launcher = launches(settings)
    launching = launcher and not _done(run, key) and _can_launch(key, settings.num_processes)
    if launching:
        distributed.keep_parent_off_gpu()
    algorithms = seed_everything(stage_seed(seed, key), deterministic=settings.deterministic)
    if hasattr(run, "update"):
        run.update(**algorithms)  # run.json: whether a seed repeats this run exactly
    learn = build()
    if launching:  # the notebook parameter num_processes: workers train the stage, this process loads it
        distributed.launch(lambda: _train_stage_worker(run, key, build, epochs, lr, schedule, monitor, patience,
                                                       seed, keep=keep, settings=settings), settings.num_processes)
    if _done(run, key):
        return _load_done(run, key, learn, back_from_launch=launcher)
    t0 = time.perf_counter()
    result = fit(learn, epochs, lr, schedule, monitor=monitor, patience=patience, run=run, stage=key,
                 headless=headless, keep=keep, settings=settings)
    weights = Path("checkpoints") / f"{key}_final.pth"
    save_state_dict(learn.model, Path(run.dir) / weights)
    states = stage_states(run)
    states[key] = {"status": "done", "weights": str(weights), "best_epoch": result.best_epoch, "best": result.best,
                   "monitor": monitor, "kept": keep, "resumed_at": result.resumed_at,
                   "processes": distributed.world_size(), **_speedups_used(learn),
                   "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write(_stages_path(run), json.dumps(states, indent=2))
    for path in checkpoint_paths(Path(run.dir) / "checkpoints", key):  # the final weights replace both
        path.unlink(missing_ok=True)
    return learn


def launches(settings: EngineSettings) -> bool:
    """Whether this process launches workers for its stages (``num_processes`` > 1, not already one of a group)."""
    return settings.num_processes > 1 and distributed.world_size() == 1


def _can_launch(key: str, processes: int) -> bool:
    """Forked workers cannot use CUDA once this kernel has: such a stage trains here, on one GPU, with a warning."""
    if distributed.can_fork_gpu_workers():
        return True
    distributed.use_gpu_again()
    warnings.warn(f"num_processes={processes}: this kernel has already used its GPU (a cell before stage {key!r} "
                  f"ran on CUDA), and forked workers cannot use CUDA after that, so {key!r} trains in this process "
                  "on one GPU. To train every stage on all GPUs, restart the kernel and run the notebook from the "
                  "top, or start it with `accelerate launch`/`torchrun` (python -m lesionkit train).", stacklevel=3)
    return False


def _load_done(run: Any, key: str, learn: Any, back_from_launch: bool) -> Any:
    """A finished stage's weights, in the precision and memory format it trained in. Back from launched workers,
    this kernel returns to the device it would have used without the launch (touching no CUDA yet, so a later
    stage can still launch; the model follows its loaders when it first predicts)."""
    done = stage_states(run)[key]
    learn.model.load_state_dict(torch.load(Path(run.dir) / done["weights"], map_location="cpu", weights_only=True))
    speed = recorded_speed(done.get("speedups"), done.get("precision"))
    if speed is not None:
        keep_speed(learn.model, speed)
    if back_from_launch:
        distributed.use_gpu_again()
        learn.dls.to(distributed.kernel_device())
    else:
        learn.model.to(learn.dls.device)  # where fastai's fit would have put it
    return learn


def _speedups_used(learn: Any) -> dict[str, str]:
    """The setting the fit trained in (measured or told on a CPU; fastai's callbacks on a GPU)."""
    speed = speed_of(learn.model)
    return {"speedups": speed.name, "precision": speed.precision}


def _done(run: Any, key: str) -> bool:
    return stage_states(run).get(key, {}).get("status") == "done"


def _train_stage_worker(run: Any, key: str, *args: Any, keep: str = "best",
                        settings: EngineSettings | None = None) -> None:
    """One launched process: join the group, then train the stage under DDP; the main one writes the record and
    prints one line per epoch (a forked process cannot draw the kernel's progress bar)."""
    os.environ["OMP_NUM_THREADS"] = "1"  # OpenMP's pool does not survive fork: a parallel region would hang (and
    torch.set_num_threads(1)  # Accelerate resets the thread count unless this variable is set)
    distributed.use_gpu_again()
    distributed.init()
    if distributed.is_main():
        train_stage(run, key, *args, headless=True, keep=keep, settings=settings)
        return
    scratch = distributed.record_dir(Path(run.dir), copy=True)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (one log: the main process's)
    try:
        train_stage(dataclasses.replace(run, dir=scratch), key, *args, headless=True, keep=keep, settings=settings)
    finally:  # a forked process ends without running atexit
        shutil.rmtree(scratch, ignore_errors=True)


def train_variant(run: Any, v: Variant, train_idx: np.ndarray, valid_idx: np.ndarray, seed: int = 0,
                  key: str | None = None, settings: EngineSettings | None = None) -> Any:
    """:func:`train_stage` of a recipe on (train, valid) rows, under stage ``key`` (default: the variant's key)."""
    return train_stage(run, key or v.key, lambda: v.learner(train_idx, valid_idx), v.epochs, v.lr, v.schedule,
                       v.monitor, v.patience, seed, keep=v.keep, settings=settings, label=v.label)


# --- variants × folds ---------------------------------------------------------------------------------------------
@dataclass
class FoldResults:
    """Per-fold rows (one per variant × fold, plus "ensemble" rows), fold-0 learners and test probabilities."""

    table: pd.DataFrame
    learners: dict[str, Any] = field(default_factory=dict)
    probs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    y: np.ndarray | None = None


def test_predictions(learn: Any, variant: Variant, ds: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of a variant's model on dataset ``rows`` with its test-time views."""
    from lesionkit.data.loaders import test_dl  # lazy: loaders (fastai.vision) and splits (scikit-learn) load when used

    dl = variant.test_dl(learn, rows) if variant.test_dl else test_dl(learn.dls, ds, rows, with_labels=True)
    return predict_learner(learn, dl, views=variant.views, average=variant.average)


def run_folds(run: Any, ds: Any, splits: Any, variants: Sequence[Variant],
              report: Callable[[np.ndarray, np.ndarray], dict[str, Any]], seed: int = 0,
              ensemble: bool = False, table: str = "folds.csv", figures: bool = True,
              settings: EngineSettings | None = None) -> FoldResults:
    """Train every variant on every fold, score each fold model on the fixed test set, and (``ensemble``) the
    fold models' mean probabilities too. Rows go to ``table`` after every fold, predictions to
    ``predictions/test_<key>_fold<k>.csv`` (and ``_ensemble``). When the stages are launched on workers
    (``num_processes``), all of them train before the first prediction: a kernel that has used its GPU can fork no
    more workers that use it."""
    out = FoldResults(table=pd.DataFrame())
    rows: list[dict[str, Any]] = []
    recipes = {**run.metrics().get("recipe", {}), **{v.key: v.describe() for v in variants}} \
        if hasattr(run, "metrics") else {}
    if recipes:
        run.log_metrics({"recipe": recipes})
    trained = {(v.key, k): train_variant(run, v, tr, va, seed, key=f"{v.key}_fold{k}", settings=settings)
               for v in variants for k, (tr, va) in enumerate(splits.folds)} \
        if settings is not None and launches(settings) else {}
    for v in variants:
        for k, (tr, va) in enumerate(splits.folds):
            t0 = time.perf_counter()
            key = f"{v.key}_fold{k}"
            learn = trained.pop((v.key, k)) if (v.key, k) in trained else \
                train_variant(run, v, tr, va, seed, key=key, settings=settings)
            probs, y = test_predictions(learn, v, ds, splits.test)
            scores = report(y, probs)
            record_evaluation(run, f"test_{key}", ds, splits.test, probs, y, figures=figures and k == 0, log=False,
                              report=scores)
            rows.append({"model": v.label, "fold": k, **flat_metrics(scores),
                         "params": count_params(learn.model), "seconds": round(time.perf_counter() - t0, 1)})
            run.save_table(pd.DataFrame(rows), table)
            print(f"{v.label} fold {k}: " + ", ".join(f"{m}={val:.3f}" for m, val in list(rows[-1].items())[2:5]),
                  flush=True)
            out.probs.setdefault(v.key, []).append(probs)
            out.y = y
            if k == 0:
                out.learners[v.key] = learn
        if ensemble and len(splits.folds) > 1:
            probs = np.mean(out.probs[v.key], axis=0)
            scores = report(out.y, probs)
            record_evaluation(run, f"test_{v.key}_ensemble", ds, splits.test, probs, out.y, figures=False,
                              log=False, report=scores)
            rows.append({"model": v.label, "fold": "ensemble", **flat_metrics(scores),
                         "params": rows[-1]["params"]})
            run.save_table(pd.DataFrame(rows), table)
    out.table = pd.DataFrame(rows)
    return out


def run_splits(run: Any, ds: Any, folds: int = 1, test_frac: float = 0.2, valid_frac: float = 0.2, seed: int = 0,
               split_from: str = "", test: np.ndarray | None = None, rule: str = "grouped") -> Any:
    """The run's split, recorded as ``splits.csv``: the split of an earlier run (``split_from``: its folder; also
    what a resumed run reads back), else with ``rule="official"`` the dataset's official parts or folds where it has
    them (:func:`lesionkit.data.splits.official_or_grouped`), else :func:`lesionkit.data.splits.make_splits`
    grouped by lesion and patient. run.json's ``split`` says which."""
    from lesionkit.data.splits import Splits, make_splits, official_or_grouped  # lazy

    source = Path(split_from).expanduser() / "splits.csv" if split_from else Path(run.dir) / "splits.csv"
    if split_from and not source.is_file():
        raise FileNotFoundError(f"split_from={split_from!r}: {source} does not exist; give the folder of a run that "
                                f"recorded its split")
    if source.is_file():  # an earlier run's, or this run's own when it resumes
        splits = Splits.from_frame(pd.read_csv(source, dtype={"image_id": str}), ds.df, source=str(source))
        if len(splits) != folds:
            raise ValueError(f"{source} holds {len(splits)} fold(s), this run asks for folds={folds}: give the "
                             f"same folds as the run whose split it reuses")
        said = run.info.get("split") or f"read from {source}"
    elif rule == "official" and test is None:
        splits, said = official_or_grouped(ds.df, folds=folds, test_frac=test_frac, valid_frac=valid_frac, seed=seed)
        if "grouped" in said and "generator" not in ds.info:  # the embedded synthetic set has no parts
            warnings.warn(f"split='official': {said} (grouped parts: by lesion and patient, test_frac "
                          f"{test_frac:g})", stacklevel=3)
    elif rule in ("official", "grouped"):
        splits = make_splits(ds.df, folds=folds, test_frac=test_frac, valid_frac=valid_frac, seed=seed, test=test)
        said = "grouped" + (" (given test rows)" if test is not None else "")
    else:
        raise ValueError(f"split rule {rule!r}: 'official' or 'grouped'")
    run.save_split(ds, splits)
    run.update(split=said)
    return splits
