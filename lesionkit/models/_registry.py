"""The model registry, timm-style: ``register_model`` / ``list_models`` / ``is_model`` / ``model_entrypoint``.

Paper files (``lesionkit/models/<paper>.py``) end with ``@register_model`` entrypoints; importing ``lesionkit.models``
imports them all. This module imports nothing from ``lesionkit`` at import time (the paper files import it), so there
is no import circle: ``lesionkit.models`` is imported lazily, inside the functions that need every entrypoint.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import sys
import warnings
from typing import Callable

import torch.nn as nn

_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_to_module: dict[str, str] = {}


class UnknownModelError(ValueError):
    """Raised for a name that is neither a lesionkit model nor a timm architecture."""


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under ``fn.__name__`` (timm's convention) and add it to its module's ``__all__``."""
    name = fn.__name__
    if name in _model_entrypoints and _model_to_module[name] != fn.__module__:
        warnings.warn(f"Overwriting {name} in the lesionkit registry (was {_model_to_module[name]})", stacklevel=2)
    _model_entrypoints[name] = fn
    _model_to_module[name] = fn.__module__
    module = sys.modules.get(fn.__module__)
    if module is not None:
        exported = getattr(module, "__all__", None)
        if isinstance(exported, list) and name not in exported:
            exported.append(name)
    return fn


def _import_models() -> None:
    """Importing ``lesionkit.models`` imports every paper file, which registers its entrypoints."""
    importlib.import_module("lesionkit.models")


def list_models(pattern: str = "*", module: str | None = None) -> list[str]:
    """Registered lesionkit model names matching the fnmatch ``pattern`` (optionally only those of one paper file)."""
    _import_models()
    names = [n for n in _model_entrypoints if fnmatch.fnmatch(n, pattern)]
    if module is not None:
        names = [n for n in names if _model_to_module[n].rsplit(".", 1)[-1] == module]
    return sorted(names)


def is_model(name: str) -> bool:
    """True for a registered lesionkit model (timm names are not included)."""
    _import_models()
    return name in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The registered entrypoint of ``name``; ``UnknownModelError`` (with close matches) otherwise."""
    _import_models()
    if name not in _model_entrypoints:
        raise UnknownModelError(unknown_message(name))
    return _model_entrypoints[name]


def unknown_message(name: str) -> str:
    import timm

    close = difflib.get_close_matches(name, list(_model_entrypoints) + timm.list_models(), n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"Unknown model {name!r}: not a lesionkit model (see lesionkit.list_models()) nor a timm architecture "
            f"(see timm.list_models()).{hint}")
