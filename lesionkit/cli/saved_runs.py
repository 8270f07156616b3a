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


def command_parser(command: str, doc: str, images: bool = False) -> argparse.ArgumentParser:
    """The parser of a saved-run command: its help from the module docstring, ``--debug``, and for commands on new
    images the run and the images."""
    parser = argparse.ArgumentParser(prog=f"python -m lesionkit {command}", description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also: LESIONKIT_DEBUG=1)")
    if images:
        parser.add_argument("run", help="a completed run folder (or NOTEBOOK:last)")
        parser.add_argument("images", help="folder of images, dataset folder, or file list")
    return parser


def saved_images(run_ref: str, images: str) -> tuple[Any, Any, list[str]]:
    """(the loaded run, the readable images as a dataset in its classes, the skipped files with why), the skipped
    ones printed to stderr; ValueError when none is readable."""
    from lesionkit.papers.generalisation import image_set  # lazy
    from lesionkit.papers.saved import load_run  # lazy

    saved = load_run(resolve_run(run_ref))
    ds, skipped = image_set(saved, images)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if len(ds) == 0:
        raise ValueError(f"{images}: no readable image")
    return saved, ds, skipped


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


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None,
                body: Callable[[argparse.Namespace, list[Any]], int]) -> int:
    """Parse ``argv`` and run ``body(args, record)`` (``record``: a list the body appends its opened record to);
    an error becomes one line on stderr and exit 2, the record marked failed (``--debug``: the traceback too)."""
    args = parser.parse_args(argv)
    record: list[Any] = []
    try:
        return body(args, record)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - every failure gets one readable line; --debug shows the rest
        for r in record:
            r.fail(err)
        if args.debug or os.environ.get("LESIONKIT_DEBUG"):
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


__all__ = ["CommandConfig", "EXIT_BAD_INPUT", "command_parser", "open_record", "resolve_run", "run_command",
           "saved_images"]
