"""``python -m lesionkit evaluate RUN [RUN ...] DATA [DATA ...]``: saved runs scored on other datasets.

Each argument that holds a run.json is a run (``NOTEBOOK:last``: that notebook's newest completed run); every
other one is a dataset, read as the notebooks read ``test_dir`` (an official download's test part, classes mapped
onto the model's). Writes ``runs/evaluate/<id>/``: ``generalisation.csv`` (each model on each set beside its
in-domain test rows), predictions in the official formats, ROC and confusion figures per set, metrics.json.
Exit status: 0 scored, 2 a bad argument, run or dataset (one line naming it; ``--debug`` for the traceback).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from lesionkit.cli.saved_runs import add_debug, guarded, open_record, resolve_run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lesionkit evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("items", nargs="+", metavar="RUN_OR_DATA", help="run folders, then dataset folders")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="resamples for the melanoma AUC's 95%% interval (default 200; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_debug(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    record: list = []

    def body() -> int:
        from lesionkit.papers.generalisation import evaluate_runs  # lazy: --help stays instant
        from lesionkit.papers.saved import load_run  # lazy

        if args.bootstrap < 0:
            raise ValueError(f"--bootstrap {args.bootstrap}: give 0 (no interval) or a positive count")
        refs = [resolve_run(a) if a.endswith(":last") else Path(a).expanduser() for a in args.items]
        runs = [load_run(p) for p in refs if (p / "run.json").is_file()]
        data = [str(p) for p in refs if not (p / "run.json").is_file()]
        if not runs or not data:
            raise ValueError("give at least one run folder (with run.json) and one dataset folder; got "
                             f"{len(runs)} run(s) and {len(data)} dataset(s)")
        record.append(open_record("evaluate", runs, data, {"bootstrap": args.bootstrap, "seed": args.seed}))
        table = evaluate_runs(runs, data, record[0], n_boot=args.bootstrap, seed=args.seed)
        record[0].complete()
        cols = ["run", "model", "fold", "dataset", "images", "bma", "auc_macro", "mel_auc", "mel_auc_low",
                "mel_auc_high", "note"]
        with __import__("pandas").option_context("display.width", 200, "display.max_colwidth", 60):
            print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(f"record: {record[0].dir}")
        return 0

    return guarded(body, args.debug, record)
