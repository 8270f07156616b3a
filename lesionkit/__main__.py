"""`python -m lesionkit <command>`: one entry point, each command a module of lesionkit.cli."""
from __future__ import annotations

import importlib
import os
import sys

# command -> module whose `main(argv) -> int` runs it (imported only when used, so `--help` is instant)
COMMANDS = {
    "score": ("lesionkit.cli.score", "score official-format prediction CSVs against ground truth"),
    "data": ("lesionkit.cli.data", "data check DIR: list every problem in a dataset (data presize DIR: "
                                   "a pre-resized cache of its large images)"),
    "synth": ("lesionkit.cli.synth", "write the synthetic dermoscopy dataset"),
    "demo": ("lesionkit.cli.demo", "run every notebook headless on the synthetic default and print a summary"),
    "train": ("lesionkit.cli.train", "train NOTEBOOK -p name value: run a notebook's recipe without a kernel "
                                     "(what accelerate launch / torchrun start)"),
    "sweep": ("lesionkit.cli.sweep", "sweep NOTEBOOK --space name=kind:args --trials N: an Optuna study of runs"),
    "evaluate": ("lesionkit.cli.evaluate", "evaluate RUN [RUN ...] DATA [DATA ...]: saved runs on other datasets, "
                                           "one cross-dataset table"),
    "predict": ("lesionkit.cli.predict", "predict RUN IMAGES --out preds.csv: a saved run's model on new images"),
    "explain": ("lesionkit.cli.explain", "explain RUN IMAGES --method gradcam,ig: maps of a saved run's model"),
    "params": ("lesionkit.cli.params", "regenerate the notebooks' parameters cells from their Config classes (--check)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        lines = [f"  {name:<6} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m lesionkit <command> [args]\n\ncommands:\n" + "\n".join(lines))
        return 0 if not argv or argv[0] in {"-h", "--help"} else 2
    debug = "--debug" in argv or os.environ.get("LESIONKIT_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    module = importlib.import_module(COMMANDS[argv[0]][0])
    try:
        return int(module.main(argv[1:]) or 0)
    except Exception as err:  # one clear line, not a traceback (--debug shows it)
        if debug:
            raise
        print(f"python -m lesionkit {argv[0]}: error: {one_line(err)} (--debug or LESIONKIT_DEBUG=1 shows the "
              "traceback)", file=sys.stderr)
        return 1


def one_line(err: BaseException) -> str:
    """An exception as the line a user reads: a file-system error as "path: reason", a bad-input error (ValueError,
    OSError, LookupError: ours name the file or parameter) as its message, anything else with its type."""
    if isinstance(err, OSError) and err.strerror:
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f)
        return f"{where}: {err.strerror}" if where else err.strerror
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, (ValueError, OSError, LookupError)) else f"{type(err).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
