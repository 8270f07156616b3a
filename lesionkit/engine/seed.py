"""Seeding and RNG snapshots: the same seed gives the same run, and a resumed run continues the same random stream.

RNG states are stored as tensors and plain lists so a checkpoint loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import random
import zlib
from typing import Any

import numpy as np
import torch

from lesionkit.data.augment import album_nodes
from lesionkit.parallel.distributed import inner_loader


def seed_everything(seed: int, deterministic: bool = True) -> dict[str, bool]:
    """Seed Python, NumPy and torch (fastai's ``set_seed``) and choose the GPU's algorithms (:func:`use_deterministic`).
    Returns that choice, as the run records it."""
    from fastai.torch_core import set_seed

    set_seed(int(seed) % 2**32, reproducible=not torch.cuda.is_available())  # CPU: as it always was
    return use_deterministic(deterministic)


def use_deterministic(deterministic: bool) -> dict[str, bool]:
    """On a GPU, ``deterministic``: deterministic algorithms (cuDNN deterministic, benchmark off, torch's
    deterministic mode, cuBLAS's fixed workspace), so a seed repeats a run exactly; otherwise cuDNN benchmark picks
    the fastest convolution for each shape (timm's and torchvision's training default). On a CPU nothing changes:
    its kernels repeat anyway."""
    if not torch.cuda.is_available():
        return {"deterministic": True, "cudnn_benchmark": False}
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses determinism without it
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic, not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)  # an op without such a kernel warns, not fails
    return {"deterministic": bool(deterministic), "cudnn_benchmark": not deterministic}


def stage_seed(seed: int, key: str) -> int:
    """A seed per stage (variant × fold × network), so a stage starts from the same state whether the stages
    before it were trained in this process or loaded from an earlier, interrupted one."""
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode())) % 2**31


def _py_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_restore(state: list) -> tuple:
    return (int(state[0]), tuple(int(v) for v in state[1]), state[2])


def rng_state(dls: Any = None) -> dict[str, Any]:
    """Every RNG a fastai epoch draws from: Python's, NumPy's, torch's (CPU and CUDA), the loaders' own and the
    augmentations' own (:func:`_augmenters`)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": _py_state(random.getstate()), "torch": torch.get_rng_state(),
                             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                       float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if dls is not None:
        state["loaders"] = [_py_state(dl.rng.getstate()) for dl in _loaders(dls) if hasattr(dl, "rng")]
        state["augment"] = [_aug_state(t) for t in _augmenters(dls)]
    return state


def _loaders(dls: Any) -> list[Any]:
    """The loaders whose random streams shuffle (under DDP: the ones each DistributedDL shards)."""
    return [inner_loader(dl) for dl in getattr(dls, "loaders", [])]


def _augmenters(dls: Any) -> list[Any]:
    """The training loader's item transforms that own a random stream: lesionkit's WorkerRNG (ARL crops, patch
    grids, the reseeding of albumentations pipelines) and the albumentations pipelines themselves (the 1st
    place's), none of which fastai's seeding reaches."""
    train = _loaders(dls)[0] if _loaders(dls) else None
    tfms = list(getattr(getattr(train, "after_item", None), "fs", []) or [])
    out = []
    for t in tfms:
        for obj in (getattr(t, "rng", None), getattr(t, "train", None)):
            if hasattr(obj, "_rng") or hasattr(obj, "py_random"):
                out.append(obj)
    return out


def _aug_state(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "_rng"):  # WorkerRNG
        return {"worker": obj._worker, "python": _py_state(obj._rng.getstate())}
    return {"nodes": [[_py_state(n.py_random.getstate()), n.random_generator.bit_generator.state]
                      for n in album_nodes(obj)]}


def _aug_restore(obj: Any, state: dict[str, Any]) -> None:
    if hasattr(obj, "_rng"):
        obj._worker = state["worker"]
        obj._rng.setstate(_py_restore(state["python"]))
        return
    for node, (py, np_state) in zip(album_nodes(obj), state["nodes"]):
        node.py_random.setstate(_py_restore(py))
        node.random_generator.bit_generator.state = np_state


def set_rng_state(state: dict[str, Any], dls: Any = None) -> None:
    random.setstate(_py_restore(state["python"]))
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if dls is not None and state.get("loaders"):
        loaders = [dl for dl in _loaders(dls) if hasattr(dl, "rng")]
        for dl, s in zip(loaders, state["loaders"]):
            dl.rng.setstate(_py_restore(s))
    if dls is not None:
        for obj, s in zip(_augmenters(dls), state.get("augment", [])):
            _aug_restore(obj, s)
