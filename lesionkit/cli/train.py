"""``python -m lesionkit train <notebook> -p name value ...``: a notebook's recipe run in this process, no kernel.

The notebook's code cells execute in order in one namespace, with papermill's parameter semantics (the values are
assigned right after the ``parameters`` cell, typed as ``papermill -p`` types them), so the run validates and
records exactly as the papermill run does — minus the executed notebook. Being a plain process, it is what
``accelerate launch`` and ``torchrun`` start N times for data-parallel training::

    accelerate launch --multi_gpu --num_processes 8 -m lesionkit train arl -p epochs 100
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from lesionkit.utils.paths import repo_root


def notebook_path(name: str) -> Path:
    """A notebook file, or a name in the checkout's notebooks/ ("arl", "arl.ipynb", "quickstart" = 00_quickstart)."""
    path = Path(name).expanduser()
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    root = repo_root()
    folder = root / "notebooks" if root else Path.cwd() / "notebooks"
    stem = Path(name).stem
    for cand in (folder / f"{stem}.ipynb", *sorted(folder.glob(f"*_{stem}.ipynb"))):
        if cand.is_file():
            return cand
    known = sorted(p.stem for p in folder.glob("*.ipynb")) if folder.is_dir() else []
    raise FileNotFoundError(f"no notebook {name!r}: give a .ipynb file or one of {known} (in {folder})")


def parse_params(pairs: list[list[str]]) -> dict[str, Any]:
    """``-p name value`` pairs typed as papermill types them (int, float, True/False/None, else the string)."""
    from papermill.cli import _resolve_type

    return {name: _resolve_type(value) for name, value in pairs}


def _literal(value: Any) -> str:
    """Python source for a parameter value, as papermill writes it: inf and nan as float('inf') / float('nan')
    (their repr is no Python name), so the config cell, not a NameError, answers them."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


def code_cells(path: Path, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, source) of every code cell, the parameter assignments inserted after the ``parameters`` cell."""
    from lesionkit.notebook.cell import _read_notebook, _source  # lazy: nbformat only when a notebook is read

    nb = _read_notebook(path)
    cells: list[tuple[str, str]] = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        cells.append((f"{path.name} cell {i}", _source(cell)))
        if "parameters" in cell.get("metadata", {}).get("tags", []) and params:
            cells.append((f"{path.name} injected parameters",
                          "\n".join(f"{k} = {_literal(v)}" for k, v in params.items())))
    return cells


def execute(path: Path, params: dict[str, Any], namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the notebook's code cells in ``namespace`` (default: a fresh one; figures go to the Agg backend) and
    return it. A cell that raises marks the run it opened failed (``ended`` says how) and re-raises, the cell
    named in the traceback."""
    import matplotlib

    matplotlib.use("Agg")
    from IPython.display import display

    namespace = {} if namespace is None else namespace
    namespace.update(__name__="__main__", display=display)
    try:
        for label, source in code_cells(path, params):
            exec(compile(source, f"<{label}>", "exec"), namespace)  # noqa: S102  (the notebook is the program)
    except BaseException as exc:
        run = namespace.get("run")
        if run is not None and getattr(run, "info", {}).get("status") == "running":
            run.fail(exc)
        raise
    return namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lesionkit train", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="notebook name (arl, quickstart, ...) or .ipynb path")
    parser.add_argument("-p", "--parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a notebook parameter, as for papermill")
    args = parser.parse_args(argv)
    from lesionkit.parallel import distributed  # lazy: torch.distributed only when training starts
    from lesionkit.parallel.trial import stop_with_sweep  # lazy: torch.distributed only when training starts

    stop_with_sweep()
    distributed.init()  # before anything touches a GPU: each process takes its own
    if not distributed.is_main():  # one log: the main process's (errors still reach stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    try:
        path = notebook_path(args.notebook)
    except FileNotFoundError as err:
        print(f"python -m lesionkit train: {err}", file=sys.stderr)
        return 2
    execute(path, parse_params(args.parameters))
    return 0
