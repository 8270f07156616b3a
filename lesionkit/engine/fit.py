"""The one fit: every schedule, best-epoch selection, early stopping, a checkpoint per epoch and resume from it.

A fit of stage ``s`` in a run keeps ``checkpoints/<s>_last.pth`` (the resumable state) and ``<s>_best.pth``. When
``_last.pth`` exists, the fit continues from the epoch after it with the same schedule position, optimiser state
and random streams (Python, NumPy, torch, the loaders' and the augmentations' own), so on CPU an interrupted run that
resumes ends with the same weights as one that never stopped (tested); on a GPU the GradScaler state is restored too,
but cuDNN/atomics make GPU runs close rather than bit-identical.
"""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fastai.callback.schedule import ParamScheduler
from fastai.learner import Learner

from lesionkit.engine.callbacks import BestModel, EpochCheckpoint, EpochLog, RunHistory
from lesionkit.engine.schedules import Schedule, resumed
from lesionkit.engine.settings import EngineSettings
from lesionkit.engine.speed import speed_callbacks
from lesionkit.engine.trial_report import trial_reporter
from lesionkit.metrics.fastai_wrappers import forget_nan_notes
from lesionkit.parallel.distributed import ddp_callback, world_size
from lesionkit.utils.kernel import in_live_kernel

KEEP = ("best", "last")  # which weights a fit leaves in the model


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    best: float
    resumed_at: int


def checkpoint_paths(ckpt_dir: Path, stage: str) -> tuple[Path, Path]:
    """(last, best) checkpoint files of a stage."""
    prefix = f"{stage}_" if stage else ""
    return ckpt_dir / f"{prefix}last.pth", ckpt_dir / f"{prefix}best.pth"


def fit(learn: Learner, epochs: int, lr: float, schedule: Schedule | str = "one_cycle", monitor: str = "valid_loss",
        patience: int = 0, run: Any = None, stage: str = "", headless: bool | None = None,
        keep: str = "best", settings: EngineSettings | None = None) -> FitResult:
    """Train ``epochs`` epochs under ``schedule`` and leave the best epoch's weights (by ``monitor``) in the model,
    or with ``keep="last"`` the final epoch's (the best epoch is still tracked and recorded).

    run: the run record (history.csv, checkpoints/); None trains with checkpoints in a temporary folder.
    headless: one printed line per epoch instead of fastai's progress bar; None asks the kernel
    (``lesionkit.utils.kernel.in_live_kernel``). settings: speed rule, compile, SyncBatchNorm (default: auto, off, off).
    """
    if keep not in KEEP:
        raise ValueError(f"keep={keep!r}: choose one of {KEEP}")
    schedule = Schedule(schedule) if isinstance(schedule, str) else schedule
    headless = not in_live_kernel() if headless is None else headless
    forget_nan_notes()  # a validation set with one class is explained once in each fit
    with contextlib.ExitStack() as stack:
        ckpt_dir = (Path(run.dir) / "checkpoints" if run is not None
                    else Path(stack.enter_context(tempfile.TemporaryDirectory())))
        last, best_path = checkpoint_paths(ckpt_dir, stage)
        state = _resume_state(last, stage, epochs)
        start = state["epoch"] + 1 if state else 0
        if state:
            learn.model.load_state_dict(state["model"])
            print(f"{stage or 'fit'}: resuming after epoch {start}/{epochs} from {last}", flush=True)
        best = BestModel(monitor, best_path, patience, start, state["best"] if state else None,
                         reload=keep == "best")
        cbs = [best, EpochCheckpoint(last, epochs, stage, best, start, state)]
        if run is not None:
            cbs.append(RunHistory(Path(run.dir) / "history.csv", stage, start))
        if headless:
            cbs.append(EpochLog(stage, epochs, start))
            stack.enter_context(learn.no_bar())
            stack.enter_context(_quiet_recorder(learn))
        settings = settings or EngineSettings()
        speed_cbs = speed_callbacks(settings.speedups, resumed=(state or {}).get("speed"))
        for cb in speed_cbs:  # a batch that raises skips fastai's after_* events: close autocast and threads anyway
            stack.callback(getattr(cb, "close", lambda: None))
        cbs.extend(speed_cbs)
        if settings.torch_compile and torch.cuda.is_available():
            learn.model.compile()  # in place: the state_dict keys (and so checkpoints) stay those of the model
        if world_size() > 1:  # launched over several processes: DDP, sharded loaders, gathered metrics
            cbs.append(ddp_callback(sync_bn=settings.sync_bn))
        cbs.extend(trial_reporter(monitor, stage))  # a sweep's trial: per-epoch values to its pruner
        scheds = {k: resumed(f, start, epochs) for k, f in schedule.scheds(lr, epochs).items()}
        if start < epochs and not _stopped_early(state, patience):
            learn.fit(epochs - start, lr, cbs=[ParamScheduler(scheds), *cbs])
        elif best_path.exists() and keep == "best":  # else the resumed last epoch's weights stay
            learn.model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True))
            learn.model.to(learn.dls.device)
        return FitResult(best_epoch=best.best_epoch, best=float(best.best), resumed_at=start)


@contextlib.contextmanager
def _quiet_recorder(learn: Learner) -> Any:
    """fastai's Recorder prints each epoch's raw value list when there is no progress bar: EpochLog says it once."""
    logger = learn.logger
    learn.logger = lambda *_: None
    try:
        yield
    finally:
        learn.logger = logger


def _stopped_early(state: dict | None, patience: int) -> bool:
    return bool(state and patience and state["epoch"] - state["best"]["best_epoch"] >= patience)


def _resume_state(path: Path, stage: str, epochs: int) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a checkpoint is written atomically: an unreadable one is not ours
        raise RuntimeError(f"checkpoint {path} cannot be read ({err}); delete it to train this stage again") from None
    if state.get("stage") != stage or state.get("epochs") != epochs:
        raise RuntimeError(f"checkpoint {path} is of stage {state.get('stage')!r} with {state.get('epochs')} epochs, "
                           f"not {stage!r} with {epochs}: resume with the run's own settings")
    return state
