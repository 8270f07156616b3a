"""``python -m lesionkit predict RUN IMAGES --out preds.csv``: a saved run's model on new images.

IMAGES: a folder of images, a dataset folder, or a text file with one image path per line. The run's headline
model predicts every image with its test views (the mean over its saved fold models), batched; the CSV is the
official ISIC format (a probability per class, or ``image,MEL`` for a binary model), which ``python -m lesionkit
score`` reads. Unreadable or too small images are named and skipped. Record: ``runs/predict/<id>/``.
"""
from __future__ import annotations

from typing import Any

from lesionkit.cli.saved_runs import command_parser, open_record, run_command, saved_images


def _body(args: Any, record: list[Any]) -> int:
    from lesionkit.papers.generalisation import predict_images  # lazy: --help stays instant

    saved, ds, skipped = saved_images(args.run, args.images)
    record.append(open_record("predict", [saved], [args.images], {"out": args.out}))
    predict_images(saved, ds, args.out, record[0])
    record[0].complete(skipped=skipped)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("predict", __doc__, images=True)
    parser.add_argument("--out", required=True, help="the prediction CSV to write")
    return run_command(parser, argv, _body)
