"""Build models by name and rebuild saved ones: ``create_model``, ``model_spec``, ``load_model``.

``create_model`` builds a registered lesionkit model or, for any other name, a timm architecture with lesionkit's
offline ``pretrained`` handling (``lesionkit.models.pretrained``) instead of timm's hub download. It records on the
returned module how to rebuild it, ``model.lesionkit_spec = {"name": ..., "kwargs": {...}}`` (``pretrained`` left
out: the saved state_dict holds the weights), much as timm records ``pretrained_cfg``. A run saves that spec as
``<name>.json`` next to the plain state_dict ``<name>.pth``; ``load_model(run_dir)`` rebuilds the model from the two.
"""
from __future__ import annotations

import copy
import inspect
import json
import typing
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lesionkit.models._registry import (
    UnknownModelError,
    _import_models,
    _model_entrypoints,
    is_model,
    model_entrypoint,
    unknown_message,
)
from lesionkit.models.pretrained import (
    initialisation_record,
    load_pretrained,
    load_tensors,
    parse_pretrained,
    require_local_weights,
)

SPEC_ATTR = "lesionkit_spec"
# keys of an old flat spec ({"name": ..., "num_classes": ..., "classes": [...]}) that a plain timm model takes
_TIMM_SPEC_KEYS = ("num_classes", "in_chans")


def create_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """Build a lesionkit model, or a plain timm model, by name, and record how to rebuild it.

    Args:
        name: a registered lesionkit name (``list_models()``) or any timm architecture (``timm.list_models()``).
        pretrained: True/False, "true"/"false", or a local weight file (see ``lesionkit.models.pretrained``).
        **kwargs: passed to the entrypoint. Keys whose value is None are dropped, like timm, so callers can forward
            optional settings without overriding a model's defaults.

    The returned module carries ``lesionkit_spec`` = ``{"name": name, "kwargs": kwargs}`` (JSON values; tuples become
    lists); ``model_spec(model)`` returns it for ``Run.save_model`` and ``load_model`` rebuilds from it.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    pretrained = parse_pretrained(pretrained)
    _import_models()
    if name in _model_entrypoints:
        model = _model_entrypoints[name](pretrained=pretrained, **kwargs)
    else:
        model = create_timm_model(name, pretrained=pretrained, **kwargs)
    setattr(model, SPEC_ATTR, _make_spec(name, kwargs))
    return model


def create_timm_model(name: str, pretrained: bool | str = False, **kwargs: Any) -> nn.Module:
    """A timm model built without timm's hub download; weights come from ``lesionkit.models.pretrained`` instead."""
    import timm

    if not timm.is_model(name.split(".")[0]):
        raise UnknownModelError(unknown_message(name))
    pretrained = parse_pretrained(pretrained)
    if pretrained is True:
        require_local_weights(name)  # fail before building anything
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = timm.create_model(name, pretrained=False, **kwargs)
    if pretrained:
        model.pretrained_report = load_pretrained(model, pretrained, arch=name)
    return model


def _jsonable(value: Any) -> Any:
    """``value`` as JSON types (tuples → lists, numpy scalars → Python numbers); TypeError for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _jsonable(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _make_spec(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "kwargs": {}}
    bad = []
    for key, value in kwargs.items():
        try:
            spec["kwargs"][key] = _jsonable(value)
        except TypeError:
            bad.append(key)
    if bad:  # the model still builds; only saving its spec is refused (by model_spec)
        spec["unserializable"] = bad
    return spec


def model_spec(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """How to rebuild ``model``: ``{"name", "kwargs"}`` as recorded by ``create_model``, plus ``extra`` keys
    (``classes``, notes...) for the run record. Pass it to ``Run.save_model(model, name, spec=model_spec(model))``.

    A ``num_classes`` changed after creation (``reset_classifier``) is written into ``kwargs``. Raises ValueError for a
    module that ``create_model`` did not build (a wrapper loses the spec: pass the inner model) or one built with
    arguments JSON cannot hold.
    """
    spec = getattr(model, SPEC_ATTR, None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"{type(model).__name__} has no {SPEC_ATTR}: only a model built by lesionkit.create_model "
                         f"records how to rebuild it (a wrapper module loses it: pass the model it wraps)")
    if spec.get("unserializable"):
        raise ValueError(f"{spec['name']} was built with arguments that JSON cannot hold "
                         f"({', '.join(spec['unserializable'])}), so it cannot be rebuilt from a saved spec")
    clash = {"name", "kwargs"} & set(extra)
    if clash:
        raise ValueError(f"model_spec: extra keys {sorted(clash)} would overwrite the spec itself")
    out = {"name": spec["name"], "kwargs": copy.deepcopy(spec["kwargs"])}
    num_classes = getattr(model, "num_classes", None)
    if isinstance(num_classes, int) and not isinstance(num_classes, bool) \
            and out["kwargs"].get("num_classes") != num_classes:
        out["kwargs"]["num_classes"] = num_classes

    out["initialised_from"] = initialisation_record(model)  # None: random initialisation
    out.update(extra)  # Run.save_model makes numpy/torch values JSON
    return out


def _flat_spec_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs from an older flat spec (``{"name", "num_classes", "backbone", "classes", ...}``): the keys
    that name a parameter of the model's class; ``num_classes`` from ``len(classes)`` when it is not given."""
    name = spec["name"]
    keys: tuple[str, ...] = _TIMM_SPEC_KEYS
    if is_model(name):
        try:
            cls = typing.get_type_hints(model_entrypoint(name)).get("return")
            params = inspect.signature(cls.__init__).parameters.values()
            keys = tuple(p.name for p in params if p.name != "self"
                         and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        except Exception:  # noqa: BLE001 - an entrypoint without a class annotation: keep the common keys
            pass
    kwargs = {k: spec[k] for k in keys if k in spec and k != "pretrained"}
    if "num_classes" in keys and "num_classes" not in kwargs and isinstance(spec.get("classes"), list):
        kwargs["num_classes"] = len(spec["classes"])
    return kwargs


def load_model(run_dir: str | Path, name: str = "model", map_location: str | torch.device = "cpu",
               **overrides: Any) -> nn.Module:
    """Rebuild a saved model from ``<run_dir>/<name>.json`` (its spec) and ``<run_dir>/<name>.pth`` (a state_dict).

    The model is built with ``create_model(spec["name"], pretrained=False, **spec["kwargs"], **overrides)``, its
    weights load strictly (``weights_only=True``: no pickled code), and it is returned on ``map_location`` in eval
    mode. Older flat specs without ``"kwargs"`` use their keys that name a constructor parameter.
    """
    run_dir = Path(run_dir)
    spec_path, weights_path = run_dir / f"{name}.json", run_dir / f"{name}.pth"
    for path, what in ((spec_path, "model spec"), (weights_path, "state_dict")):
        if not path.is_file():
            raise FileNotFoundError(f"load_model: no {what} {str(path)!r} (Run.save_model(model, {name!r}, "
                                    f"spec=model_spec(model)) writes {name}.json and {name}.pth)")
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"load_model: {str(spec_path)!r} is not JSON ({err})") from err
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"load_model: {str(spec_path)!r} names no model (expected {{\"name\": ..., \"kwargs\": "
                         f"{{...}}}}, as model_spec(model) returns)")
    kwargs = dict(spec["kwargs"]) if isinstance(spec.get("kwargs"), dict) else _flat_spec_kwargs(spec)
    kwargs.pop("pretrained", None)
    kwargs.update(overrides)
    n = kwargs.get("num_classes")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"load_model: {str(spec_path)!r}: num_classes={n!r} must be a positive whole number")
    try:
        model = create_model(spec["name"], pretrained=False, **kwargs)
    except UnknownModelError as err:
        raise UnknownModelError(f"load_model: {str(spec_path)!r}: {err}") from err
    except TypeError as err:  # an unknown keyword, or a value of the wrong kind
        raise ValueError(f"load_model: {str(spec_path)!r}: its kwargs {kwargs} do not build {spec['name']} "
                         f"({err}); fix the file or save the model again with model_spec(model)") from None

    state = load_tensors(weights_path, map_location)
    if not isinstance(state, dict):  # a bad file: a ValueError, as every other message here
        raise ValueError(  # noqa: TRY004
            f"load_model: {str(weights_path)!r} holds a {type(state).__name__}, not a state_dict (a dict of "
            "tensors); save torch.save(model.state_dict(), path)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"load_model: {str(weights_path)!r} does not fit {spec['name']}({kwargs}) from "
                           f"{str(spec_path)!r}: {err}") from err
    return model.to(map_location).eval()
