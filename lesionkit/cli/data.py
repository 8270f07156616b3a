"""`python -m lesionkit data check DIR` (every problem in a dataset, at once) and `data presize DIR` (a pre-resized
cache of a folder's large images)."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lesionkit.data.check import check_dataset
from lesionkit.data.images import DEFAULT_MAX_PIXELS


def _parse_value(v: str) -> Any:
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesionkit data", description="dataset tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="list every problem in a dataset")
    c.add_argument("source", help="dataset folder, CSV, or a shared-data name")
    c.add_argument("--format", default="auto", help="reader (default: detected from the files)")
    c.add_argument("--quick", action="store_true", help="header + end-of-file checks only (no full decode)")
    c.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")
    c.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    c.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, repeatable (e.g. --opt target=diagnosis9 --opt parts=test)")
    p = sub.add_parser("presize", help="write the pre-resized cache of a folder's large images (read by presize=)")
    p.add_argument("folder", help="folder walked recursively for images")
    p.add_argument("--size", type=int, default=512, help="shorter side of the cached copies (default 512)")
    p.add_argument("--cache", default=None, help="cache root (default: $LESIONKIT_CACHE, else ~/.cache/lesionkit)")
    p.add_argument("--workers", type=int, default=None, help="threads (default: up to 4)")
    a = ap.parse_args(argv)
    if a.cmd == "presize":
        return _presize_main(a)
    if a.max_pixels < 1:
        ap.error(f"--max-pixels {a.max_pixels}: must be a positive number of pixels (default {DEFAULT_MAX_PIXELS})")
    if a.json_out and not Path(a.json_out).expanduser().absolute().parent.is_dir():
        ap.error(f"--json {a.json_out}: its folder {Path(a.json_out).expanduser().absolute().parent} does not exist")
    opts = {}
    for kv in a.opt:
        key, sep, value = kv.partition("=")
        if not sep:
            ap.error(f"--opt {kv!r}: expected KEY=VALUE")
        opts[key] = tuple(value.split(",")) if key == "parts" else _parse_value(value)
    report = check_dataset(a.source, a.format, full=not a.quick, max_pixels=a.max_pixels, **opts)
    print(report.render())
    if a.json_out:
        Path(a.json_out).write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


def _presize_main(a: argparse.Namespace) -> int:
    """Exit 0 when done, 1 when some images could not be read (listed), 2 for a missing folder or a bad size."""
    import sys

    from lesionkit.data.presize import presize_dir  # lazy: the presize subcommand's own imports

    if not Path(a.folder).is_dir():
        print(f"lesionkit data presize: {a.folder}: no such folder", file=sys.stderr)
        return 2
    if a.size < 1:
        print(f"lesionkit data presize: --size {a.size}: must be a positive number of pixels", file=sys.stderr)
        return 2
    cache = Path(a.cache).expanduser() if a.cache else None
    blocker = next((p for p in (cache, *(cache.parents if cache else ())) if p is not None and p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        print(f"lesionkit data presize: --cache {a.cache}: {blocker} is a file, not a folder; give a folder for "
              "the cache", file=sys.stderr)
        return 2
    summary = presize_dir(a.folder, a.size, root=a.cache, workers=a.workers)
    print(summary.render())
    return 1 if summary.failed else 0
