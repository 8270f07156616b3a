"""lesionkit: skin-lesion classification papers on one small library.

Importing the package is cheap and side-effect free: heavy submodules (torch, fastai, timm) load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it, or "submodule:name" when it is defined there under another name
# (resolved lazily, PEP 562)
_LAZY = {
    "RunConfig": "lesionkit.papers.common:TrainConfig",
    "TrainConfig": "lesionkit.papers.common",
    "ConfigError": "lesionkit.config",
    "start_run": "lesionkit.records.runs",
    "env_report": "lesionkit.records.runs",
    "create_model": "lesionkit.models",
    "list_models": "lesionkit.models",
    "load_model": "lesionkit.models",
    "make_synthetic": "lesionkit.data.synthetic",
    "viewer": "lesionkit.attribution.viewer",
    "load_run": "lesionkit.papers.saved",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, _, attr = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'lesionkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
