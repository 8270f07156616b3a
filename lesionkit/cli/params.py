"""`python -m lesionkit params [--check]`: the notebooks' parameters cells, regenerated from (or checked against)
their Config classes."""
from __future__ import annotations

import argparse
from pathlib import Path

from lesionkit.notebook.cell import notebook_config, parameters_cell_differences, sync_parameters_cell
from lesionkit.utils.paths import repo_root


def main(argv: list[str] | None = None) -> int:
    """`python -m lesionkit params [--check] [NOTEBOOK ...]`: regenerate (or, with --check, compare) the notebooks'
    parameters cells from their Config classes."""
    from lesionkit.papers import notebook_configs  # lazy: every recipe (torch, fastai) loads only when the command runs

    ap = argparse.ArgumentParser(prog="python -m lesionkit params", description=main.__doc__)
    ap.add_argument("notebooks", nargs="*", help="notebook paths (default: every notebook under notebooks/)")
    ap.add_argument("--check", action="store_true", help="only list differences; exit status 1 if there are any")
    args = ap.parse_args(argv)
    if args.notebooks:
        paths = [Path(p) for p in args.notebooks]
    else:
        root = repo_root()
        if root is None:
            ap.error("no source checkout found: give the notebook paths")
        paths = [root / "notebooks" / f"{name}.ipynb" for name in notebook_configs()]
    status = 0
    for path in paths:
        cls = notebook_config(path.stem)
        if args.check:
            diffs = parameters_cell_differences(cls, path)
            status |= bool(diffs)
            print(f"{path}: " + ("in sync" if not diffs else f"{len(diffs)} differences\n  " + "\n  ".join(diffs)))
        else:
            print(f"{path}: {'rewritten from' if sync_parameters_cell(path, cls) else 'already matches'} "
                  f"{cls.__name__}")
    return status
