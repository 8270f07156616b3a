"""How the engine runs a fit on the hardware at hand. A recipe passes these explicitly (``cfg.engine_settings()``);
the engine never reads them from a notebook's config."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSettings:
    """speedups: precision/memory-format rule (``engine.speed``); torch_compile: compile the model on a GPU;
    sync_bn: SyncBatchNorm under DDP; num_processes: data-parallel workers launched from a notebook; deterministic:
    deterministic algorithms on a GPU instead of cuDNN benchmark (``engine.seed.use_deterministic``)."""

    speedups: str = "auto"
    torch_compile: bool = False
    sync_bn: bool = False
    num_processes: int = 1
    deterministic: bool = False
