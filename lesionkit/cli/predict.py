"""``python -m lesionkit predict RUN IMAGES --out preds.csv``: a saved run's model on new images.

IMAGES: a folder of images, a dataset folder, or a text file with one image path per line. The run's headline
model predicts every image with its test views (the mean over its saved fold models), batched; the CSV is the
official ISIC format (a probability per class, or ``image,MEL`` for a binary model), which ``python -m lesionkit
score`` reads. Unreadable or too small images are named and skipped. Record: ``runs/predict/<id>/``.
"""
from __future__ import annotations

import argparse
import sys

from lesionkit.cli.saved_runs import add_debug, guarded, open_record, resolve_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lesionkit predict", description=__doc__.split("\n\n")[1])
    parser.add_argument("run", help="a completed run folder (or NOTEBOOK:last)")
    parser.add_argument("images", help="folder of images, dataset folder, or file list")
    parser.add_argument("--out", required=True, help="the prediction CSV to write")
    add_debug(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    record: list = []

    def body() -> int:
        from lesionkit.papers.generalisation import image_set, predict_images  # lazy
        from lesionkit.papers.saved import load_run  # lazy

        saved = load_run(resolve_run(args.run))
        ds, skipped = image_set(saved, args.images)
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
        if len(ds) == 0:
            raise ValueError(f"{args.images}: no readable image to predict")
        record.append(open_record("predict", [saved], [args.images], {"out": args.out}))
        predict_images(saved, ds, args.out, record[0])
        record[0].complete(skipped=skipped)
        return 0

    return guarded(body, args.debug, record)
