"""Seeding and RNG snapshots: the same seed gives the same run, and a resumed run continues the same random stream.

RNG states are stored as tensors and plain lists so a checkpoint loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import random
import zlib
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, reproducible: bool = True) -> None:
    """Seed Python, NumPy and torch (fastai's ``set_seed``; cuDNN deterministic when ``reproducible``)."""
    from fastai.torch_core import set_seed

    set_seed(int(seed) % 2**32, reproducible=reproducible)


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
    """Every RNG a fastai epoch draws from: Python's, NumPy's, torch's (CPU and CUDA) and the loaders' own."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"python": _py_state(random.getstate()), "torch": torch.get_rng_state(),
                             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                                       float(cached)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if dls is not None:
        state["loaders"] = [_py_state(dl.rng.getstate()) for dl in getattr(dls, "loaders", []) if hasattr(dl, "rng")]
    return state


def set_rng_state(state: dict[str, Any], dls: Any = None) -> None:
    random.setstate(_py_restore(state["python"]))
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if dls is not None and state.get("loaders"):
        loaders = [dl for dl in getattr(dls, "loaders", []) if hasattr(dl, "rng")]
        for dl, s in zip(loaders, state["loaders"]):
            dl.rng.setstate(_py_restore(s))
