"""Typed run configs built from a notebook's flat parameters.

papermill hands parameters over as Python literals or strings (`-p pretrained false` arrives as the string "false",
which is truthy), and only *warns* about unknown names. `Config.from_params` therefore coerces strings to the declared
types, rejects unknown or misspelled keys with the list of valid ones, and checks ranges and choices, so a bad
parameter stops a run at its config cell instead of an hour into training.

A notebook's `parameters` cell is generated from its Config class (`Config.parameters_cell`, `sync_parameters_cell`,
`python -m lesionkit params`), so the class is the one source of names, types, defaults and help texts;
`lesionkit.notebook.cell.parameters_cell_differences` lists where a notebook's cell has drifted from its class.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml


class ConfigError(ValueError):
    """A notebook parameter is unknown, has the wrong type, is out of range, or asks for what this machine lacks.

    In a notebook it shows as its message alone: the traceback would only point into lesionkit, and the message
    names the parameter and the fix."""

    def _render_traceback_(self) -> list[str]:  # IPython shows these lines instead of the traceback
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines())]


def param(default: Any, help: str, *, ge: float | None = None, le: float | None = None,
          choices: tuple[Any, ...] | None = None) -> Any:
    """A config field with its help text and the values it accepts."""
    return field(default=default, metadata={"help": help, "ge": ge, "le": le, "choices": choices})


def param_like(base: type, name: str, help: str) -> Any:
    """`base`'s field `name` (same default and accepted values) with a help text worded for a subclass's notebook.

    The subclass redeclares the field with its type, e.g. `smoke: bool = param_like(TrainConfig, "smoke", "...")`;
    the default stays declared once, in `base`."""
    f = {f.name: f for f in dataclasses.fields(base)}[name]
    return param(f.default, help, ge=f.metadata.get("ge"), le=f.metadata.get("le"),
                 choices=f.metadata.get("choices"))


_TRUE, _FALSE = {"true", "yes", "y", "1", "on"}, {"false", "no", "n", "0", "off"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError(f"expected true/false, got {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return _to_int(float(value)) if any(c in value for c in ".eE") else int(value.strip())
        except ValueError:
            pass
    raise TypeError(f"expected an integer, got {value!r}")


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"expected a number, got {value!r}") from None


def _to_str(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or isinstance(value, Path):
        return str(value)
    raise TypeError(f"expected a string, got {value!r}")


def _bool_or_path(value: Any) -> bool | str:
    """`pretrained`-style values: true/false, or a path to a local file (checked when used)."""
    try:
        return _to_bool(value)
    except TypeError:
        if isinstance(value, (str, Path)) and str(value).strip():
            return str(value)
        raise TypeError(f"expected true, false or a file path, got {value!r}") from None


_COERCE = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def is_bool_or_str(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and set(typing.get_args(tp)) == {bool, str}


def coerce(tp: Any, value: Any) -> Any:
    if tp in _COERCE:
        return _COERCE[tp](value)
    if is_bool_or_str(tp):
        return _bool_or_path(value)
    raise TypeError(f"unsupported config type {tp!r}")


# Names a notebook namespace holds besides its parameters (IPython's own, papermill's optional injection).
_NOTEBOOK_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open", "PAPERMILL_INPUT_PATH",
                   "PAPERMILL_OUTPUT_PATH"}


@dataclass(frozen=True)
class Config:
    """Base class: subclasses declare flat, typed fields with `param(...)`; `from_params` builds a validated one."""

    notebook: ClassVar[str] = "config"
    # fields the parameters cell lists first (what a newcomer changes first), then last (run controls after the
    # experiment's own parameters), in these orders
    cell_first: ClassVar[tuple[str, ...]] = ()
    cell_last: ClassVar[tuple[str, ...]] = ()
    # old parameter name -> its new name: refused with a message naming the new one (one meaning per name)
    renamed: ClassVar[dict[str, str]] = {}

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Config":
        """Coerce, check and freeze `params`; every problem is reported at once."""
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        problems: list[str] = []
        moved = {old for old in cls.renamed if old in params and _moved(known, old, cls.renamed[old], params[old])}
        for key in params:
            if key in moved:
                problems.append(f"parameter {key!r} = {params[key]!r} is now called {cls.renamed[key]!r} (the same "
                                f"values): use -p {cls.renamed[key]} {params[key]}")
            elif key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown parameter {key!r}{hint}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            if name not in params or name in moved:
                continue
            try:
                value = coerce(hints[name], params[name])
            except TypeError as err:
                problems.append(f"parameter {name!r}: {err}")
                continue
            problem = _check_range(name, value, f.metadata)
            if problem:
                problems.append(problem)
            values[name] = value
        if not problems:
            try:
                cfg = cls(**values)
                cfg.validate()
                return cfg
            except ConfigError as err:
                problems.append(str(err))
        valid = ", ".join(f"{n} ({type_name(hints[n])})" for n in known)
        raise ConfigError(f"{cls.__name__}: " + "; ".join(problems) + f".\nValid parameters: {valid}.")

    @classmethod
    def from_notebook(cls, namespace: dict[str, Any]) -> "Config":
        """Build from a notebook's globals: every name its parameters cells assign counts as a parameter (see
        `notebook_params`), so a misspelled papermill `-p` name (papermill only warns) is caught here."""
        return cls.from_params(notebook_params(namespace))

    def validate(self) -> None:
        """Cross-field checks; subclasses extend and raise ConfigError."""

    def check_machine(self) -> None:
        """What this machine cannot run with these settings (the ones that run, after `smoke`), refused by the
        config cell before anything is trained; subclasses raise ConfigError. Not part of `validate`, so a config
        can be built and read anywhere."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_params(yaml.safe_load(Path(path).read_text()))

    @classmethod
    def describe(cls) -> str:
        """One line per parameter: name, type, default, help (what `papermill --help-notebook` shows too)."""
        hints = typing.get_type_hints(cls)
        return "\n".join(f"{f.name}: {type_name(hints[f.name])} = {f.default!r}  # {f.metadata.get('help', '')}"
                         for f in dataclasses.fields(cls))

    @classmethod
    def cell_fields(cls) -> list[dataclasses.Field]:
        """The fields in parameters-cell order: declaration order, with `cell_first` moved to the start and
        `cell_last` to the end."""
        fields = dataclasses.fields(cls)
        first = [f for name in cls.cell_first for f in fields if f.name == name]
        last = [f for name in cls.cell_last for f in fields if f.name == name]
        return first + [f for f in fields if f.name not in cls.cell_first + cls.cell_last] + last

    def __str__(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)


# What a parameters cell (or papermill) can assign: literals
_PLAIN_VALUES = (str, int, float, bool, type(None), list, tuple, dict, Path)
# The first line of a notebook's tagged parameters cell and of the cell papermill injects after it.
PARAMETERS_MARK = "# Parameters"


def notebook_params(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's parameters with their current values: the names that its parameters cells last assigned (the
    tagged cell and papermill's injected one, read from IPython's input history ``In``), so that the globals a
    previous Run All left behind (``run``, ``learn`` ...) are not taken for parameters. Without such a history
    (plain Python, a dict), every plain global counts: not modules, functions, classes or IPython names."""
    names = _parameter_cell_names(namespace.get("In"))
    if names is not None:
        params = {k: namespace[k] for k in names if k in namespace}
        reused = [k for k, v in params.items() if not isinstance(v, _PLAIN_VALUES)]
        if reused:
            raise ConfigError(f"parameters {reused} hold a {', a '.join(type(params[k]).__name__ for k in reused)} "
                              "now, not the parameters cell's values: a later cell reused the names. Run the "
                              "parameters cell again before this one (Run All does), or rename what reuses them.")
        return params
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _NOTEBOOK_NAMES
            and not isinstance(v, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type))}


def _parameter_cell_names(history: Any) -> list[str] | None:
    """Names assigned by the last run of parameters cells in ``history`` (IPython's ``In``: each cell's source, in
    execution order): the newest cell starting with PARAMETERS_MARK and those run just before it that do too
    (papermill's injected cell follows the tagged one). None when the history holds no parameters cell."""
    if not isinstance(history, list):
        return None
    cells = [src for src in history if isinstance(src, str)]
    marked = [i for i, src in enumerate(cells) if src.lstrip().startswith(PARAMETERS_MARK)]
    if not marked:
        return None
    first = last = marked[-1]
    while first - 1 in marked:
        first -= 1
    return list(dict.fromkeys(name for src in cells[first:last + 1] for name in _assigned_names(src)))


def _assigned_names(source: str) -> list[str]:
    """The plain names a cell assigns at its top level (`name = ...`, `name: type = ...`)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    targets = [t for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]
    targets += [node.target for node in tree.body if isinstance(node, ast.AnnAssign)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _moved(known: dict[str, Any], old: str, new: str, value: Any) -> bool:
    """Whether ``old = value`` is the renamed parameter: the old name is gone, or it now means something else and
    ``value`` is one of the new name's choices, not its own."""
    if old not in known:
        return True
    old_choices, new_choices = (known[n].metadata.get("choices") if n in known else None for n in (old, new))
    return bool(old_choices and new_choices and value not in old_choices and value in new_choices)


def _check_range(name: str, value: Any, meta: Any) -> str | None:
    if meta.get("choices") is not None and value not in meta["choices"]:
        return f"parameter {name!r} = {value!r} is not one of {list(meta['choices'])}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):  # every comparison with NaN is false: the range checks below would pass it
        return f"parameter {name!r} = {value!r} is not a finite number; give a {_range_text(meta)}"
    if meta.get("ge") is not None and value < meta["ge"]:
        return f"parameter {name!r} = {value!r} must be >= {meta['ge']}"
    if meta.get("le") is not None and value > meta["le"]:
        return f"parameter {name!r} = {value!r} must be <= {meta['le']}"
    return None


def _range_text(meta: Any) -> str:
    lo, hi = meta.get("ge"), meta.get("le")
    if lo is not None and hi is not None:
        return f"number from {lo} to {hi}"
    return f"number >= {lo}" if lo is not None else f"number <= {hi}" if hi is not None else "finite number"


def type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")

