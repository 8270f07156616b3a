"""lesionkit: skin-lesion classification papers on one small library.

Importing the package is cheap: heavy submodules (torch, fastai, timm) load on first use. Its one side effect is a
filter for dependency warnings that say nothing to a lesionkit user (``DEPENDENCY_NOISE``), installed here because
every lesionkit import passes through this module before any of those dependencies loads.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# (category, message regex, module regex) of warnings raised inside dependencies, about code the user never wrote:
# fastai decorates a few layers with torch.jit.script when it is imported, which torch >= 2.9 deprecates
DEPENDENCY_NOISE = ((FutureWarning, r"`torch\.jit\.script` is deprecated", r"torch\.jit"),)
for _category, _message, _module in DEPENDENCY_NOISE:
    warnings.filterwarnings("ignore", message=_message, category=_category, module=_module)
del _category, _message, _module

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
