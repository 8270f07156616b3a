"""``python -m lesionkit explain RUN IMAGES --method gradcam,gradcam++,ig,native``: maps of a saved run's model.

The maps are made as the run's notebook makes them and stored in the layout the viewer reads
(``lesionkit.viewer(<record>)`` in JupyterLab), with a PNG grid in ``figures/``. Record: ``runs/explain/<id>/``.
"""
from __future__ import annotations

from typing import Any

from lesionkit.cli.saved_runs import command_parser, open_record, run_command, saved_images


def _body(args: Any, record: list[Any]) -> int:
    from lesionkit.attribution import canonical_method  # lazy: --help stays instant
    from lesionkit.papers.generalisation import explain_images  # lazy

    methods = [canonical_method(m.strip()) for m in args.method.split(",") if m.strip()]
    if args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give at least 1")
    saved, ds, skipped = saved_images(args.run, args.images)
    record.append(open_record("explain", [saved], [args.images], {"method": ",".join(methods)}))
    explain_images(saved, ds, methods, record[0], limit=args.limit)
    record[0].complete(skipped=skipped)
    print(f"maps: {record[0].dir} (open with lesionkit.viewer); grid: {record[0].figures / 'attribution_grid.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("explain", __doc__, images=True)
    parser.add_argument("--method", default="gradcam", help="comma-separated methods (default gradcam)")
    parser.add_argument("--limit", type=int, default=16, help="at most this many images (default 16)")
    return run_command(parser, argv, _body)
