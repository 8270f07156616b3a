"""`python -m lesionkit <command>`: one entry point, each command a module of lesionkit.cli."""
from __future__ import annotations

import importlib
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
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
