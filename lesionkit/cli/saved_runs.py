"""What ``evaluate``, ``predict`` and ``explain`` share: runs named on the command line, the command's own record
under ``runs/<command>/<id>/`` linked to its source runs, and errors as one line (``--debug``: the traceback)."""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lesionkit.config import Config, param

EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class CommandConfig(Config):
    """A saved-run command's settings as its record keeps them (config.yaml)."""

    runs: str = param("", "the source run folders, comma-separated")
    inputs: str = param("", "the datasets or image sources, comma-separated")
    options: str = param("", "the command's other options")


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: LESIONKIT_DEBUG=1)")


def resolve_run(ref: str) -> Path:
    """A run folder, or ``NOTEBOOK:last`` (the newest completed run of that notebook)."""
    if ref.endswith(":last"):
        from lesionkit.records.runs import list_runs  # lazy

        notebook = ref[: -len(":last")]
        done = [r for r in list_runs(notebook) if r.get("status") == "completed"]
        if not done:
            raise FileNotFoundError(f"{ref}: no completed {notebook} run under the runs folder; run the notebook first")
        return Path(done[-1]["dir"])
    return Path(ref).expanduser()


def open_record(command: str, runs: list[Any], inputs: list[str], options: dict[str, Any]) -> Any:
    """The command's run record, with ``source_runs`` naming the runs it used."""
    from lesionkit.records.runs import start_run  # lazy

    params = {"runs": ",".join(str(r.dir) for r in runs), "inputs": ",".join(map(str, inputs)),
              "options": ", ".join(f"{k}={v}" for k, v in options.items())}
    record = start_run(command, CommandConfig, params, watch_notebook=False)
    record.update(source_runs=[str(r.dir.resolve()) for r in runs])
    return record


def guarded(body: Callable[[], int], debug: bool, record: list[Any]) -> int:
    """Run ``body``; an error becomes one line on stderr and exit 2 (the record, if opened, marked failed)."""
    try:
        return body()
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - every failure gets one readable line; --debug shows the rest
        for r in record:
            r.fail(err)
        if debug or os.environ.get("LESIONKIT_DEBUG"):
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


__all__ = ["CommandConfig", "EXIT_BAD_INPUT", "add_debug", "guarded", "open_record", "resolve_run"]
