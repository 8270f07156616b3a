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

from .runs import repo_root, runs_root

# Settings the demo uses per notebook (on top of each notebook's own defaults); `--smoke` uses smoke=True instead.
DEMO_PARAMS: dict[str, dict[str, Any]] = {
    "00_quickstart": {},
    "arl": {"depth": 18, "image_size": 64, "epochs": 3, "max_images": 400, "optimizer": "adam", "lr": 2e-3,
            "schedule": "one_cycle", "batch_size": 32, "n_explain": 4, "attribution_methods": "gradcam,native"},
    "attention_b3": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "image_size": 64, "epochs": 2,
                     "max_images": 300, "batch_size": 32, "lr": 1e-3, "augment": "fastai", "n_bootstrap": 200,
                     "n_explain": 3},
    "multimodal": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "image_size": 64, "epochs": 3,
                   "batch_size": 32, "max_images": 400, "artefact_epochs": 2, "n_attribution": 4},
    "patch_attention": {"backbone": "tf_efficientnet_lite0", "pretrained": "true", "image_size": 48, "epochs": 2,
                        "folds": 2, "max_images": 200, "batch_size": 8, "lr": 1e-3, "schedule": "one_cycle",
                        "attribution_methods": "integrated_gradients", "n_explain": 3},
    "se_lcn": {"seg_encoder": "tu-tf_efficientnet_lite0", "classifier_backbone": "tf_efficientnet_lite0",
               "pretrained": "true", "image_size": 64, "cam_size": 64, "max_images": 400, "seg_epochs": 2,
               "sym_epochs": 3, "epochs": 3, "folds": 1, "patience": 0, "seg_batch_size": 16, "sym_batch_size": 16,
               "batch_size": 32, "n_attribution": 4},
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
                            execution_timeout=timeout, cwd=str(Path.cwd()))
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
    paths = sorted(notebooks_dir().glob("*.ipynb"))
    if a.notebooks:
        paths = [p for p in paths if p.stem in a.notebooks or p.name in a.notebooks]
    from .data.synthetic import default_synthetic_dir

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
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    (runs_root() / "demo-summary.json").write_text(json.dumps(rows, indent=2))
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
