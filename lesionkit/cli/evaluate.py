"""``python -m lesionkit evaluate RUN [RUN ...] DATA [DATA ...]``: saved runs scored on other datasets.

Each argument that holds a run.json is a run (``NOTEBOOK:last``: that notebook's newest completed run); every
other one is a dataset, read as the notebooks read ``test_dir`` (an official download's test part, classes mapped
onto the model's). Writes ``runs/evaluate/<id>/``: ``generalisation.csv`` (each model on each set beside its
in-domain test rows), predictions in the official formats, ROC and confusion figures per set, metrics.json.
Exit status: 0 scored, 2 a bad argument, run or dataset (one line naming it; ``--debug`` for the traceback).
"""
from __future__ import annotations

from pathlib import Path

from typing import Any

from lesionkit.cli.saved_runs import command_parser, open_record, resolve_run, run_command

COLUMNS = ["run", "model", "fold", "dataset", "images", "bma", "auc_macro", "mel_auc", "mel_auc_low", "mel_auc_high",
           "note"]


def _body(args: Any, record: list[Any]) -> int:
    import pandas as pd

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
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table[COLUMNS].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"record: {record[0].dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("evaluate", __doc__)
    parser.add_argument("items", nargs="+", metavar="RUN_OR_DATA", help="run folders, then dataset folders")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="resamples for the melanoma AUC's 95%% interval (default 200; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return run_command(parser, argv, _body)
