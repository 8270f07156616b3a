"""``python -m lesionkit score TRUTH.csv PRED.csv [--json]``: score official-format ISIC prediction files.

Exit status: 0 scored, 2 bad arguments or a truth/prediction file that fails validation (the message names the file,
column and ids). The JSON keys are those of `binary_report` / `multiclass_report`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

from lesionkit.metrics.formats import ScoreFormatError, load_pair
from lesionkit.metrics.reports import binary_report, multiclass_report

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lesionkit score",
        description="Score ISIC-format predictions. Formats: 'image,MEL,NV,...' (ISIC 2018/2019 one-hot), "
                    "'image,MEL' or 'image_name,target' (binary). Validated like isic-challenge-scoring.")
    parser.add_argument("truth", help="ground-truth CSV")
    parser.add_argument("pred", help="prediction CSV (same categories, probabilities in [0, 1])")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="binary decision threshold, positive when score >= threshold (default 0.5)")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="binary: add the bootstrap mean of the sens>=0.95 operating point over N resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return parser


def _table(report: dict, kind: str, n: int, excluded: list[str]) -> str:
    lines = [f"{kind} task, {n} images" + (f" ({len(excluded)} excluded by weight: {', '.join(excluded)})"
                                            if excluded else "")]
    for key, value in report.items():
        if key == "per_class":
            lines.append(f"{'class':<12}{'auc':>8}{'sens':>8}{'spec':>8}")
            lines += [f"{c:<12}{v['auc']:>8.4f}{v['sensitivity']:>8.4f}{v['specificity']:>8.4f}"
                      for c, v in value.items()]
        elif key == "bootstrap":
            for name in ("sensitivity", "specificity"):
                b = value[name]
                lines.append(f"{'boot_' + name[:4] + '_at_sens95':<20}{b['mean']:.4f} ± {b['std']:.4f} "
                             f"(95% CI {b['ci_low']:.4f}-{b['ci_high']:.4f}; {b['n_used']} resamples, "
                             f"seed {value['seed']})")
        else:
            lines.append(f"{key:<20}{value:.4f}")
    if kind == "binary":
        lines.append("pauc80 = ISIC 2024 partial AUC above 80% TPR (range 0-0.2); thresholded rates use score >= "
                     "threshold")
    return "\n".join(lines)


def _json_safe(value: object) -> object:
    """NaN (an undefined rate, e.g. a class with no positives) becomes null, so the output is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _option_problem(args: argparse.Namespace) -> str | None:
    """Options that would print numbers without meaning: a threshold outside [0, 1] (NaN included), a negative
    bootstrap count."""
    if not 0 <= args.threshold <= 1:
        return f"--threshold {args.threshold}: must be a probability in [0, 1] (positive when score >= threshold)"
    if args.bootstrap < 0:
        return f"--bootstrap {args.bootstrap}: give 0 (none) or a positive number of resamples"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    problem = _option_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        pair = load_pair(args.truth, args.pred)
        if pair.kind == "binary":
            report = binary_report(pair.y_true, pair.scores, threshold=args.threshold,
                                   n_bootstrap=args.bootstrap, seed=args.seed)
        else:
            with warnings.catch_warnings():  # replaced by the note below, which names the classes
                warnings.simplefilter("ignore", RuntimeWarning)
                report = multiclass_report(pair.y_true, pair.scores, pair.categories)
            undefined = [c for c, v in report["per_class"].items() if math.isnan(v["auc"])]
            if undefined:
                print(f"note: no positive row in truth for {undefined}: their AUC is undefined (null) and left out "
                      "of auc_macro", file=sys.stderr)
    except (ScoreFormatError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as e:  # e.g. a multiclass category with no positive row
        print(f"error: cannot score {args.pred} against {args.truth}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(_json_safe(report), allow_nan=False))
    else:
        print(_table(report, pair.kind, len(pair.ids), pair.excluded))
    return 0
