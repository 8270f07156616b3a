"""The main job: run every notebook headless through papermill on the synthetic default and print a summary.

Each notebook's executed copy lands in its run record (runs/<notebook>/<run-id>/notebook.ipynb) beside the config,
metrics and figures; a notebook that fails keeps its record and the executed notebook up to the failing cell.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lesionkit.utils.kernel import local_kernel_config
from lesionkit.utils.paths import repo_root, runs_root

# Settings the demo uses per notebook (on top of each notebook's own defaults); `--smoke` uses smoke=True instead.
# Sized so that every model learns on the synthetic default in about 20 minutes on 2 CPU cores in all (1362 s measured
# with SE-LCN's standalone baseline, Going Smaller's plain B3 and all seven runs evaluated): small images, few epochs,
# fastai-style peak learning rates (the papers' own rates are tuned for hundreds of epochs on real data). The
# comparison's CAM entry: 4 segmenter epochs (3 left Dice 0.77, under its bar) and 60 cheap symmetry-net epochs.
# attention_b3's spatial convs start at zero here: with PyTorch's init (the notebook's default, the originals') the
# spatial gate saturates on Lite0's pretrained activations at 64 px and Spatial-B3 stays at chance in 7 epochs.
DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "00_quickstart": {},
    "arl": {"depth": 18, "pretrained": "false", "crops_per_image": 1, "image_size": 64, "epochs": 3, "max_images": 400, "optimizer": "adam", "lr": 2e-3,
            "schedule": "one_cycle", "batch_size": 32, "n_explain": 4, "attribution_methods": "gradcam,native"},
    "evaluate": {"n_boot": 100, "n_explain": 2},
    "compare": {"image_size": 48, "epochs": 3, "max_images": 300, "n_maps": 4, "cascade_epochs": 4, "sym_epochs": 60},
    "attention_b3": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "folds": 1, "image_size": 64,
                     "epochs": 7, "max_images": 400, "batch_size": 32, "lr": 2e-3, "loss": "ce", "augment": "fastai",
                     "n_bootstrap": 200, "n_explain": 3, "spatial_init": "zeros"},
    "multimodal": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "image_size": 64, "epochs": 5,
                   "batch_size": 32, "max_images": 400, "lr": 2e-3, "artefact_epochs": 5, "artefact_lr": 1e-3,
                   "n_attribution": 4},
    "patch_attention": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "image_size": 48, "epochs": 3,
                        "folds": 2, "max_images": 250, "batch_size": 8, "lr": 2e-3, "schedule": "one_cycle",
                        "attribution_methods": "integrated_gradients", "n_explain": 3},
    "se_lcn": {"seg_encoder": "tu-tf_efficientnet_lite0", "classifier_backbone": "tf_efficientnet_lite0",
               "pretrained": "true", "image_size": 64, "cam_size": 64, "max_images": 400, "seg_epochs": 2,
               "sym_epochs": 30, "sym_lr": 1e-4, "sym_patience": 0, "sym_augment": "dihedral", "epochs": 5,
               "lr": 1e-3, "folds": 1, "baseline_lr": 1e-3, "baseline_patience": 0,
               "patience": 0, "seg_batch_size": 16, "sym_batch_size": 16, "batch_size": 32, "n_attribution": 4},
}
# The figures worth a glance in the summary, in order of preference.
HEADLINE = ("bma", "balanced_accuracy", "auc_macro", "auc", "ap", "f1_macro", "dice")


def notebooks_dir() -> Path:
    root = repo_root()
    if root is None:
        raise FileNotFoundError("lesionkit's notebooks/ folder was not found: run the demo from a source checkout "
                                "(pip install -e .)")
    return root / "notebooks"


def run_notebook(path: Path, params: dict[str, Any], timeout: int = 3600) -> dict[str, Any]:
    """Execute one notebook with papermill; return status, wall time, run-record path and headline metrics."""
    import papermill as pm

    name = path.stem
    out_dir = runs_root() / name
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f".papermill-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.ipynb"
    os.environ["LESIONKIT_NOTEBOOK_OUTPUT"] = str(out)  # the kernel links it into its run record
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(path), str(out), parameters=params, kernel_name="python3", progress_bar=False,
                            execution_timeout=timeout, cwd=str(Path.cwd()), config=local_kernel_config())
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        os.environ.pop("LESIONKIT_NOTEBOOK_OUTPUT", None)
    wall = time.perf_counter() - t0
    run_dir = _run_dir_of(out_dir, out)
    if run_dir is not None:
        out.unlink(missing_ok=True)  # the hard link in the record keeps it
    status = "failed" if error else "completed"
    metrics = json.loads((run_dir / "metrics.json").read_text()) if run_dir and (run_dir / "metrics.json").exists() else {}
    return {"notebook": name, "status": status, "seconds": round(wall, 1), "metrics": headline(metrics),
            "run_dir": str(run_dir or out), "error": error}


def _run_dir_of(out_dir: Path, out: Path) -> Path | None:
    for run_json in sorted(out_dir.glob("*/run.json"), reverse=True):
        info = json.loads(run_json.read_text())
        if info.get("notebook_path") == str(out):
            return run_json.parent
    return None


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """A notebook's `summary` entry if it wrote one, else the first headline figures of its test scores."""
    if isinstance(metrics.get("summary"), dict):
        return {k: v for k, v in metrics["summary"].items() if isinstance(v, (int, float))}
    test = metrics.get("test", metrics)
    return {k: test[k] for k in HEADLINE if isinstance(test.get(k), (int, float))}


# The bars every model the demo trains must clear on the synthetic default (issue: "each idea learning").
BINARY_AUC_BAR, MULTICLASS_CHANCE_FACTOR, DICE_BAR, HEAD_BACC_BAR = 0.80, 2.5, 0.80, 0.75


def _bar_row(notebook: str, model: str, metrics: dict[str, float]) -> dict[str, Any] | None:
    """Which bar applies: balanced accuracy ≥ 2.5× chance for a multiclass report (chance 1/K, K from its per-class
    entries), AUC ≥ 0.80 for a binary one."""
    k = len({key.split("/")[1] for key in metrics if key.startswith("per_class/")})
    if "balanced_accuracy" in metrics and k > 2:
        return {"notebook": notebook, "model": model, "metric": "bma", "value": metrics["balanced_accuracy"],
                "bar": MULTICLASS_CHANCE_FACTOR / k}
    if "auc" in metrics:
        return {"notebook": notebook, "model": model, "metric": "auc", "value": metrics["auc"], "bar": BINARY_AUC_BAR}
    return None


def model_rows(notebook: str, run_dir: str | Path) -> list[dict[str, Any]]:
    """One row per trained model of a run, from its record: every per-fold table the engine wrote (fold mean on
    the test set), the quickstart's test report, SE-LCN's segmenter (Dice) and the artefact heads."""
    import pandas as pd

    from lesionkit.engine import flat_metrics  # lazy: torch/fastai load only when the summary is built

    run_dir = Path(run_dir)
    rows: list[dict[str, Any] | None] = []
    for path in sorted(run_dir.glob("*.csv")):
        df = pd.read_csv(path)
        if {"model", "fold"} <= set(df.columns):
            df = df[pd.to_numeric(df["fold"], errors="coerce").notna()]
            for model, part in df.groupby("model", sort=False):
                rows.append(_bar_row(notebook, str(model), part.mean(numeric_only=True).dropna().to_dict()))
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
    if not rows and isinstance(metrics.get("test"), dict) and "balanced_accuracy" in metrics["test"]:
        rows.append(_bar_row(notebook, "model", flat_metrics(metrics["test"])))
    if isinstance(metrics.get("segmentation_test"), dict):
        rows.append({"notebook": notebook, "model": "segmenter", "metric": "dice",
                     "value": metrics["segmentation_test"]["dice"], "bar": DICE_BAR})
    if (run_dir / "artefact_heads.csv").exists():
        heads = pd.read_csv(run_dir / "artefact_heads.csv")
        bacc = ((heads["recall_none"] + heads["recall_yes"]) / 2).mean()
        rows.append({"notebook": notebook, "model": "artefact heads", "metric": "mean head bacc", "value": bacc,
                     "bar": HEAD_BACC_BAR})
    return [{**r, "ok": bool(r["value"] >= r["bar"])} for r in rows if r is not None]


def format_models(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'notebook':<18} {'model':<26} {'metric':<15} {'value':>6} {'bar':>6}  above"]
    lines += [f"{r['notebook']:<18} {r['model']:<26} {r['metric']:<15} {r['value']:>6.3f} {r['bar']:>6.3f}  "
              f"{'yes' if r['ok'] else 'NO'}" for r in rows]
    below = [f"{r['notebook']}/{r['model']}" for r in rows if not r["ok"]]
    lines.append("every model is above its bar" if not below else f"below the bar: {', '.join(below)}")
    return "\n".join(lines)


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'notebook':<24} {'status':<10} {'seconds':>8}  {'metrics':<48} run record"]
    for r in rows:
        m = ", ".join(f"{k}={v:.3f}" for k, v in list(r["metrics"].items())[:4]) or (r["error"] or "")[:48]
        lines.append(f"{r['notebook']:<24} {r['status']:<10} {r['seconds']:>8.1f}  {m:<48} {r['run_dir']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesionkit demo", description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebook names to run (default: all in notebooks/)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings (what CI runs)")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="extra parameter for every notebook")
    a = ap.parse_args(argv)
    paths = sorted(notebooks_dir().glob("*.ipynb"), key=lambda p: (p.stem == "evaluate", p.stem))  # it scores the others' runs
    if a.notebooks:
        paths = [p for p in paths if p.stem in a.notebooks or p.name in a.notebooks]
    from lesionkit.data.synthetic import default_synthetic_dir  # lazy

    t0 = time.perf_counter()
    print(f"synthetic default: {default_synthetic_dir()} ({time.perf_counter() - t0:.1f} s)", flush=True)
    rows = []
    for path in paths:
        params = {"smoke": True} if a.smoke else dict(DEMO_PARAMS.get(path.stem, {}))
        params.update({k: v for k, v in a.p})
        print(f"running {path.name} {params or ''} ...", flush=True)
        rows.append(run_notebook(path, params))
        print(f"  {rows[-1]['status']} in {rows[-1]['seconds']} s: {rows[-1]['run_dir']}", flush=True)
    print("\n" + format_table(rows))
    models = [m for r in rows for m in model_rows(r["notebook"], r["run_dir"]) if Path(r["run_dir"]).is_dir()]
    print("\n" + format_models(models))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    (runs_root() / "demo-summary.json").write_text(json.dumps({"notebooks": rows, "models": models}, indent=2))
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
