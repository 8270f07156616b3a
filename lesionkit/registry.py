"""A timm-style model registry: ``register_model`` / ``create_model`` / ``list_models``.

Paper models live in ``lesionkit/models/<paper>.py`` and end with ``@register_model`` entrypoints. Any name that is
not registered here but is a timm architecture is built by timm, with lesionkit's offline ``pretrained`` handling
(``lesionkit.pretrained``) instead of timm's hub download, which would fail on machines without internet.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import sys
import warnings
from typing import Any, Callable

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
    _import_models()
    if name not in _model_entrypoints:
        raise UnknownModelError(_unknown_message(name))
    return _model_entrypoints[name]


def _unknown_message(name: str) -> str:
    import timm

    close = difflib.get_close_matches(name, list(_model_entrypoints) + timm.list_models(), n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"Unknown model {name!r}: not a lesionkit model (see lesionkit.list_models()) nor a timm architecture "
            f"(see timm.list_models()).{hint}")


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a lesionkit model, or a plain timm model, by name.

    Args:
        name: a registered lesionkit name (``list_models()``) or any timm architecture (``timm.list_models()``).
        pretrained: True/False, "true"/"false", or a local weight file (see ``lesionkit.pretrained``).
        **kwargs: passed to the entrypoint. Keys whose value is None are dropped, like timm, so callers can forward
            optional settings without overriding a model's defaults.
    """
    from lesionkit.pretrained import parse_pretrained

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    pretrained = parse_pretrained(pretrained)
    _import_models()
    if name in _model_entrypoints:
        return _model_entrypoints[name](pretrained=pretrained, **kwargs)
    return create_timm_model(name, pretrained=pretrained, **kwargs)


def create_timm_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """A timm model built without timm's hub download; weights come from ``lesionkit.pretrained`` instead."""
    import timm

    from lesionkit.pretrained import load_pretrained, parse_pretrained, require_local_weights

    if not timm.is_model(name.split(".")[0]):
        raise UnknownModelError(_unknown_message(name))
    pretrained = parse_pretrained(pretrained)
    if pretrained is True:
        require_local_weights(name)  # fail before building anything
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = timm.create_model(name, pretrained=False, **kwargs)
    if pretrained:
        model.pretrained_report = load_pretrained(model, pretrained, arch=name)
    return model
