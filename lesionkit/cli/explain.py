"""``python -m lesionkit explain RUN IMAGES --method gradcam,gradcam++,ig,native``: attribution maps of a saved
run's model for new images.

The maps are made as the run's notebook makes them and stored in the layout the viewer reads
(``lesionkit.viewer(<record>)`` in JupyterLab), with a PNG grid in ``figures/``. Record: ``runs/explain/<id>/``.
"""
from __future__ import annotations

import argparse
import sys

from lesionkit.cli.saved_runs import add_debug, guarded, open_record, resolve_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lesionkit explain", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a completed run folder (or NOTEBOOK:last)")
    parser.add_argument("images", help="folder of images, dataset folder, or file list")
    parser.add_argument("--method", default="gradcam", help="comma-separated methods (default gradcam)")
    parser.add_argument("--limit", type=int, default=16, help="at most this many images (default 16)")
    add_debug(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    record: list = []

    def body() -> int:
        from lesionkit.attribution import canonical_method  # lazy
        from lesionkit.papers.generalisation import explain_images, image_set  # lazy
        from lesionkit.papers.saved import load_run  # lazy

        methods = [canonical_method(m.strip()) for m in args.method.split(",") if m.strip()]
        if args.limit < 1:
            raise ValueError(f"--limit {args.limit}: give at least 1")
        saved = load_run(resolve_run(args.run))
        ds, skipped = image_set(saved, args.images)
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        if len(ds) == 0:
            raise ValueError(f"{args.images}: no readable image to explain")
        record.append(open_record("explain", [saved], [args.images], {"method": ",".join(methods)}))
        explain_images(saved, ds, methods, record[0], limit=args.limit)
        record[0].complete(skipped=skipped)
        print(f"maps: {record[0].dir} (open with lesionkit.viewer); grid: {record[0].figures / 'attribution_grid.png'}")
        return 0

    return guarded(body, args.debug, record)
