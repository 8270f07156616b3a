"""The notebooks' parameters cells, generated from their Config classes and checked against them, so a notebook's
defaults and its Config cannot disagree (`python -m lesionkit params [--check]`)."""
from __future__ import annotations

import ast
import dataclasses
import io
import json
import textwrap
import tokenize
import typing
from pathlib import Path
from typing import Any

from lesionkit.config import (
    PARAMETERS_MARK,
    Config,
    ConfigError,
    coerce,
    is_bool_or_str,
    type_name,
)

CELL_WIDTH = 110  # characters per parameters-cell line: what JupyterLab shows beside its file browser, unscrolled
PARAMETERS_HEADER = f"{PARAMETERS_MARK}: papermill overrides these with `-p name value`; the next cell validates them."


def _cell_type_name(tp: Any) -> str:
    """The annotation a parameters cell writes: one of papermill's plain names (int, float, str, bool)."""
    if tp in (bool, int, float, str):
        return tp.__name__
    if is_bool_or_str(tp):
        return "str"
    raise TypeError(f"no parameters-cell annotation for config type {tp!r}")


def _float_literal(x: float) -> str:
    """Shortest exact literal; small values in scientific notation as people write them (2e-3, 1.2009e-4)."""
    if x != 0 and abs(x) < 1e-2 and x == x and abs(x) != float("inf"):
        s = next(s for d in range(17) if float(s := f"{x:.{d}e}") == x)
        mantissa, exp = s.split("e")
        return f"{mantissa}e{int(exp)}"
    return repr(x)


def _str_literal(s: str) -> str:
    """A double-quoted Python literal (the cells' style); repr() where JSON escaping would not read back."""
    lit = json.dumps(s, ensure_ascii=False)
    return lit if ast.literal_eval(lit) == s else repr(s)


def _cell_literal(tp: Any, value: Any) -> str:
    if is_bool_or_str(tp):
        return _str_literal(str(value).lower() if isinstance(value, bool) else str(value))
    if tp is float:
        return _float_literal(float(value))
    if tp is str:
        return _str_literal(str(value))
    return repr(value)


def parameters_cell(cls: type[Config], header: str | None = None) -> str:
    """The notebook's `parameters` cell, generated from the fields: a comment line (`header`, default
    PARAMETERS_HEADER), then one `name: type = literal  # help` line per field, in `cell_fields` order.

    papermill's `--help-notebook` reads only plain annotations, so `bool | str` fields (true/false or a path /
    "auto") are written `name: str = "true"`: a string that `from_params` coerces back to the bool."""
    hints = typing.get_type_hints(cls)
    lines = [PARAMETERS_HEADER if header is None else header]
    for f in cls.cell_fields():
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has no default: a parameters cell needs one")
        tp = hints[f.name]
        lines += _with_comment(f"{f.name}: {_cell_type_name(tp)} = {_cell_literal(tp, f.default)}",
                               f.metadata.get("help", ""))
    return "\n".join(lines)


def _with_comment(code: str, text: str) -> list[str]:
    """``code  # text``, the text wrapped at CELL_WIDTH onto comment lines below (aligned under the first where
    that leaves room), so that no line runs off the right edge of a notebook."""
    if not text:
        return [code]
    pad = len(code) + 2 if len(code) + 2 <= CELL_WIDTH // 2 else 4
    first = textwrap.wrap(text, max(CELL_WIDTH - len(code) - 4, 24), break_long_words=False,
                          break_on_hyphens=False)[0]
    rest = text[len(first):].strip()
    more = textwrap.wrap(rest, CELL_WIDTH - pad - 2, break_long_words=False, break_on_hyphens=False) if rest else []
    return [f"{code}  # {first}", *(f"{' ' * pad}# {line}" for line in more)]

def parameters_cell_differences(cls: type[Config], notebook: str | Path | Any) -> list[str]:
    """Where `notebook`'s parameters cell disagrees with this class (empty: they agree).

    Compared: the names and their order, each annotation (the one `parameters_cell` writes), each default after
    coercion by `from_params`, and each help comment."""
    cell = parameters_cell_values(notebook)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in cls.cell_fields()}
    out = [f"{n}: in the cell, not a field of {cls.__name__}" for n in cell if n not in fields]
    out += [f"{n}: a field of {cls.__name__}, missing from the cell" for n in fields if n not in cell]
    common = [n for n in cell if n in fields]
    if common != [n for n in fields if n in cell]:
        out.append(f"order: the cell has {common}, {cls.__name__} {[n for n in fields if n in cell]}")
    known = {n: cell[n][0] for n in common}
    try:
        coerced = cls.from_params(known).to_dict()
    except ConfigError as err:
        out.append(f"the cell's values are rejected by {cls.__name__}.from_params: {err}")
        coerced = {}
        for n, v in known.items():
            try:
                coerced[n] = coerce(hints[n], v)
            except TypeError as e:
                out.append(f"{n}: cell value {v!r}: {e}")
    for n in common:
        value, cell_type, comment = cell[n]
        f, tp = fields[n], hints[n]
        if cell_type != _cell_type_name(tp):
            out.append(f"{n}: type {cell_type or '(none)'} in the cell, {_cell_type_name(tp)} "
                       f"({type_name(tp)}) in {cls.__name__}")
        if n in coerced and coerced[n] != f.default:
            out.append(f"{n}: default {value!r} in the cell, {f.default!r} in {cls.__name__}")
        if comment != f.metadata.get("help", ""):
            out.append(f"{n}: help {comment!r} in the cell, {f.metadata.get('help', '')!r} in {cls.__name__}")
    return out


def _read_notebook(notebook: str | Path | Any) -> Any:
    import nbformat

    if isinstance(notebook, (str, Path)):
        return nbformat.read(str(notebook), as_version=nbformat.NO_CONVERT)
    return notebook


def _parameters_cell(nb: Any) -> Any:
    cells = [c for c in nb["cells"] if c.get("cell_type") == "code"
             and "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one code cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def _source(cell: Any) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def parameters_cell_values(notebook: str | Path | Any) -> dict[str, tuple[Any, str, str]]:
    """The `parameters`-tagged cell of a notebook (a path, or a notebook already read) as
    {name: (value, type name, comment)}, in the cell's order.

    Every statement must be `name: type = literal  # comment` (or `name = literal`, type name ""); anything else,
    a non-literal value or a name given twice raises ValueError naming the line."""
    src = _source(_parameters_cell(_read_notebook(notebook)))
    try:
        tree = ast.parse(src)
    except SyntaxError as err:
        raise ValueError(f"parameters cell line {err.lineno}: {err.msg}") from None
    lines = src.splitlines()
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(src).readline) if tok.type == tokenize.COMMENT}
    out: dict[str, tuple[Any, str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, type_name = node.target.id, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, type_name = node.targets[0].id, ""
        else:
            raise ValueError(f"parameters cell line {node.lineno}: not a `name: type = literal` assignment: "
                             f"{ast.get_source_segment(src, node)!r}")
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"parameters cell line {node.lineno}: {name} is not given a literal value") from None
        if name in out:
            raise ValueError(f"parameters cell line {node.lineno}: {name} is assigned twice")
        out[name] = (value, type_name, _comment_after(comments, lines, node.end_lineno))
    return out


def _comment_after(comments: dict[int, str], lines: list[str], lineno: int) -> str:
    """The comment on line ``lineno`` (1-based) and the comment-only lines that continue it."""
    parts = [comments.get(lineno, "")]
    while lineno < len(lines) and lines[lineno].lstrip().startswith("#"):
        lineno += 1
        parts.append(comments.get(lineno, ""))
    return " ".join(p for p in parts if p)


def sync_parameters_cell(notebook_path: str | Path, config_cls: type[Config]) -> bool:
    """Rewrite the notebook's parameters cell from `config_cls` (its first comment line kept, PARAMETERS_HEADER if it
    has none); cell id, tags, other cells and the nbformat version are kept, the cell's outputs cleared.
    Returns whether the file changed."""
    import nbformat

    nb = _read_notebook(notebook_path)
    cell = _parameters_cell(nb)
    first = _source(cell).split("\n", 1)[0]
    new = parameters_cell(config_cls, header=first if first.lstrip().startswith("#") else None)
    if _source(cell) == new and not cell.get("outputs") and cell.get("execution_count") is None:
        return False
    cell["source"], cell["outputs"], cell["execution_count"] = new, [], None
    nbformat.write(nb, str(notebook_path))
    return True


def notebook_config(notebook: str) -> type[Config]:
    """The Config class of notebooks/<notebook>.ipynb (its ``notebook`` class attribute names it)."""
    from lesionkit.papers import notebook_configs  # lazy

    configs = notebook_configs()
    if notebook not in configs:
        raise KeyError(f"no Config class for notebook {notebook!r}: known {sorted(configs)}")
    return configs[notebook]
