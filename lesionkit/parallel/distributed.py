"""Data-parallel training over processes, started by Accelerate (``accelerate launch``), ``torchrun`` or the
notebook parameter ``num_processes``: who the main process is, one run record, and fastai's own DDP integration
made to work on CPU (gloo) as well as GPU (NCCL).

Every process runs the whole notebook. The main process writes the run record; each other process writes into a
private scratch copy of it (:func:`record_dir`), deleted when it exits, so no code path needs to ask "am I the
main process?" before writing, and a resumed run gives every process the same checkpoints to continue from.
``batch_size`` stays the *global* batch of the paper's recipe: each of N processes takes ``batch_size / N``.
"""
from __future__ import annotations

import atexit
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lesionkit.utils.processes import pid_alive

# torch.cuda.is_available() asks the CUDA runtime, which initialises the driver in this process, and then a forked
# worker cannot use CUDA; NVML answers the same question without that (Accelerate checks the same way).
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


def world_size() -> int:
    """Processes in the job (1 when not launched distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group the launcher described (gloo on CPU, NCCL on GPUs) through Accelerate's state, which
    also pins each process to its own GPU. A no-op outside a distributed launch."""
    if world_size() > 1 and not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())  # torchrun on a CPU machine: gloo, Accelerate's MULTI_CPU


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every process (picklable objects)."""
    if world_size() == 1:
        return obj
    init()
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` run by the main process only, its result (or its exception, re-raised) on every process."""
    if world_size() == 1:
        return fn()
    result: tuple[Any, BaseException | None] = (None, None)
    if is_main():
        try:
            result = (fn(), None)
        except Exception as err:  # the others must not wait forever for a value that will not come
            result = (None, err)
    value, err = broadcast(result)
    if err is not None:
        raise err
    return value


def launch(fn: Callable[[], None], num_processes: int) -> None:
    """Run ``fn`` in ``num_processes`` forked processes joined in one group, with Accelerate's launchers: the
    notebook launcher on GPUs (NCCL), its CPU twin (gloo) elsewhere. Returns when all have finished; a worker's
    exception is raised here."""
    import accelerate

    if torch.cuda.is_available():
        accelerate.notebook_launcher(fn, num_processes=num_processes)
    else:
        accelerate.debug_launcher(fn, num_processes=num_processes)


_kernel_use_cuda: bool | None = None  # fastai's setting before keep_parent_off_gpu (None: its default)


def keep_parent_off_gpu() -> None:
    """A forked worker cannot use CUDA once its parent has: the launching kernel builds its loaders (and any preview
    batch) on the CPU until the launched stages are done (:func:`lesionkit.engine.runner.train_stage` calls this
    before it launches, :func:`lesionkit.papers.common.start` when a notebook asks for ``num_processes`` > 1)."""
    from fastai.torch_core import defaults

    global _kernel_use_cuda
    if not getattr(defaults, "lesionkit_off_gpu", False):
        _kernel_use_cuda = defaults.use_cuda
    defaults.use_cuda, defaults.lesionkit_off_gpu = False, True


def use_gpu_again() -> None:
    """Undo :func:`keep_parent_off_gpu`: fastai's choice of device as it was before (by default the GPU when there
    is one). Touches no CUDA itself, so a later launch can still fork."""
    from fastai.torch_core import defaults

    defaults.use_cuda, defaults.lesionkit_off_gpu = _kernel_use_cuda, False


def kernel_device() -> torch.device:
    """The device fastai would put this process's loaders on, found without initialising CUDA (fastai's own
    ``default_device`` asks CUDA for the current device, after which no worker can be forked)."""
    from fastai.torch_core import defaults

    if defaults.use_cuda is not False and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def can_fork_gpu_workers() -> bool:
    """Whether forked workers could still use CUDA: not once this process has initialised it."""
    return not (torch.cuda.is_available() and torch.cuda.is_initialized())


def record_dir(run_dir: Path, copy: bool = False) -> Path:
    """Where this process writes the run record: ``run_dir`` on the main process, else a scratch folder (a copy of
    ``run_dir`` when ``copy``: a resumed run's checkpoints and finished stages) removed at exit."""
    if is_main():
        return run_dir
    _remove_orphaned_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"lesionkit-rank{rank()}-{os.getpid()}-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    if copy:
        shutil.copytree(run_dir, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.ipynb"))
    return scratch


def _remove_orphaned_scratch() -> None:
    """Scratch records of processes that died without cleaning up (SIGKILL, a lost node)."""
    for path in Path(tempfile.gettempdir()).glob("lesionkit-rank*-*-*"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DistributedDataParallel (its state_dict keys without the ``module.`` prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def inner_loader(dl: Any) -> Any:
    """The loader a DistributedDL shards (its random stream is the one that shuffles)."""
    from fastai.distributed import DistributedDL

    return dl.dl if isinstance(dl, DistributedDL) else dl


def ddp_callback(sync_bn: bool = False) -> Any:
    """fastai's DistributedTrainer (Accelerate's DDP wrap + sharded loaders), with the loaders' index broadcast
    done on the backend's own device (fastai's assumes CUDA) and the global batch split over the processes."""
    from fastai.distributed import DistributedDL, DistributedTrainer

    class ShardedDL(DistributedDL):
        def _broadcast(self, t: list[int], src: int) -> list[int]:
            device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            tensor = torch.tensor(t, dtype=torch.long, device=device)
            dist.broadcast(tensor, src)
            return tensor.cpu().tolist()

    class Trainer(DistributedTrainer):
        def before_fit(self) -> None:
            self.global_bs = {id(dl): dl.bs for dl in self.dls.loaders}
            for dl in self.dls.loaders:  # each process takes its share of the recipe's batch
                dl.bs = max(1, math.ceil(dl.bs / world_size()))
            super().before_fit()

        def _wrap_dl(self, dl: Any) -> Any:
            return dl if isinstance(dl, DistributedDL) else ShardedDL(dl, device=dl.device)

        def after_fit(self) -> None:
            super().after_fit()
            for dl in self.dls.loaders:
                dl.bs = self.global_bs.get(id(dl), dl.bs)

    return Trainer(sync_bn=sync_bn)
