"""Every notebook runs headless through papermill (smoke settings) and leaves a complete run record."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TRAINING = [p for p in NOTEBOOKS if p.stem != "evaluate"]  # evaluate.ipynb scores finished runs: its own test
PAPERMILL = str(Path(sys.executable).parent / "papermill")


@pytest.fixture()
def runs_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _execute(nb: Path, out: Path, params: dict, monkeypatch) -> None:
    import papermill as pm

    monkeypatch.setenv("LESIONKIT_NOTEBOOK_OUTPUT", str(out))  # what `lesionkit demo` does for its kernels
    pm.execute_notebook(str(nb), str(out), parameters=params, kernel_name="python3", progress_bar=False,
                        execution_timeout=900)


def _only_run(runs_dir: Path, name: str) -> Path:
    (run_dir,) = (runs_dir / name).iterdir()
    return run_dir


# cells that show a figure: a saved-and-shown plot, an explicit display of one, a figure or grid as the cell's value
FIGURE_CELL = re.compile(r"show_figure\(|display\(fig\)|Image\(filename|^(fig|grid|view)$", re.MULTILINE)


def _assert_figures_are_images(executed: dict, name: str) -> None:
    """Each figure cell holds an image/png output, and no output is a figure left as its text `<Figure ...>`."""
    for i, cell in enumerate(c for c in executed["cells"] if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        data = [o.get("data", {}) for o in cell.get("outputs", [])]
        bare = [d for d in data if "".join(d.get("text/plain", "")).startswith("<Figure") and "image/png" not in d]
        assert not bare, f"{name} code cell {i}: a figure shown as text, not an image: {source[-80:]!r}"
        if FIGURE_CELL.search(source):
            assert any("image/png" in d for d in data), f"{name} code cell {i} shows no image: {source[-80:]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("nb", TRAINING, ids=[p.stem for p in TRAINING])
def test_smoke_run_leaves_complete_record(nb: Path, runs_dir: Path, tmp_path, monkeypatch, synthetic_dir) -> None:
    from lesionkit.papers.saved import LOADABLE

    external = {"test_dir": str(synthetic_dir)} if nb.stem in LOADABLE else {}
    _execute(nb, tmp_path / "out.ipynb", {"smoke": True, **external}, monkeypatch)
    run_dir = _only_run(runs_dir, nb.stem)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed", info.get("error")
    for name in ("config.yaml", "env.json", "history.csv", "metrics.json", "notebook.ipynb", "splits.csv"):
        assert (run_dir / name).is_file(), f"{nb.stem}: {name} missing from the run record"
    weights = list(run_dir.glob("*.pth"))  # one file per trained model (several in multi-stage notebooks)
    assert weights, f"{nb.stem}: no model weights in the run record"
    for w in weights:
        assert w.with_suffix(".json").is_file(), f"{w.name} has no spec to rebuild its model"
        import torch

        assert isinstance(torch.load(w, weights_only=True), dict), f"{w.name} is not a plain state_dict"
    assert list((run_dir / "figures").glob("*.png")), "no figures saved"
    assert list((run_dir / "predictions").glob("*.csv")), "no predictions in the official format"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics, "empty metrics.json"
    executed = json.loads((run_dir / "notebook.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["smoke"] is True
    _assert_figures_are_images(executed, nb.stem)
    import yaml

    ran = yaml.safe_load((run_dir / "config.yaml").read_text())  # the settings that ran: the smoke sizes
    assert ran["smoke"] is True and ran["epochs"] == 1 and ran["image_size"] <= 64
    split = pd.read_csv(run_dir / "splits.csv")
    assert {"image_id", "fold", "part"} <= set(split.columns) and {"train", "test"} <= set(split["part"])
    if external:
        _evaluate_repeats_the_notebook(run_dir, synthetic_dir, metrics, runs_dir)


@pytest.mark.slow
def test_compare_cam_entry_scores_again_through_its_saved_cascade(runs_dir: Path, tmp_path, monkeypatch,
                                                                   synthetic_dir) -> None:
    """The comparison's se_lcn_cam entry (absent from the smoke entries): `evaluate` rebuilds its segmenter and
    symmetry net from the record, leaves out the images they trained on, and repeats the notebook's numbers."""
    nb = REPO / "notebooks" / "compare.ipynb"
    tiny = {"image_size": 48, "epochs": 1, "cascade_epochs": 1, "sym_epochs": 1, "max_images": 140,
            "pretrained": False, "n_maps": 2, "n_boot": 100, "attribution_methods": "gradcam", "map_steps": 4}
    params = {**tiny, "entries": "baseline,se_lcn_cam", "data_dir": str(synthetic_dir), "test_dir": str(synthetic_dir)}
    _execute(nb, tmp_path / "out.ipynb", params, monkeypatch)
    run_dir = _only_run(runs_dir, "compare")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"external_baseline", "external_se_lcn_cam"} <= set(metrics)
    assert len(pd.read_csv(run_dir / "cascade_trained_on.csv")) > 0
    scored = len(pd.read_csv(run_dir / "predictions" / "external_se_lcn_cam.csv"))
    assert 0 < scored < len(pd.read_csv(synthetic_dir / "labels.csv"))  # the cascade's training images left out
    _evaluate_repeats_the_notebook(run_dir, synthetic_dir, metrics, runs_dir)
    (record,) = (runs_dir / "evaluate").iterdir()
    table = pd.read_csv(record / "generalisation.csv")
    assert set(table.loc[table["dataset"] == str(synthetic_dir), "images"]) == {scored}  # the same rows again


@pytest.mark.slow
def test_evaluate_notebook_scores_a_finished_run(runs_dir: Path, tmp_path, monkeypatch, synthetic_dir) -> None:
    """notebooks/evaluate.ipynb on a finished quickstart run: its table, heat map, ROC grid and maps, and the
    quickstart's own test_dir numbers again."""
    env = {**os.environ, "LESIONKIT_RUNS": str(runs_dir)}
    subprocess.run([sys.executable, "-m", "lesionkit", "train", "00_quickstart", "-p", "smoke", "True", "-p",
                    "test_dir", str(synthetic_dir)], env=env, check=True, capture_output=True, timeout=900)
    trained = _only_run(runs_dir, "00_quickstart")
    _execute(REPO / "notebooks" / "evaluate.ipynb", tmp_path / "out.ipynb",
             {"smoke": True, "runs": str(trained), "datasets": str(synthetic_dir)}, monkeypatch)
    record = _only_run(runs_dir, "evaluate")
    assert json.loads((record / "run.json").read_text())["status"] == "completed"
    _assert_figures_are_images(json.loads((record / "notebook.ipynb").read_text()), "evaluate")
    assert (record / "figures" / "generalisation.png").is_file()
    assert (record / "attribution").is_dir(), "maps of the external images for the viewer"
    table = pd.read_csv(record / "generalisation.csv")
    assert set(table["dataset"]) == {str(synthetic_dir), "in-domain test (the run's own)"}
    ours = json.loads((trained / "metrics.json").read_text())["external"]
    again = json.loads((record / "metrics.json").read_text())[f"{trained.name}__{synthetic_dir.name}_model"]
    assert again["auc_macro"] == pytest.approx(ours["auc_macro"], abs=1e-6)
    assert again["balanced_accuracy"] == pytest.approx(ours["balanced_accuracy"], abs=1e-6)


def _evaluate_repeats_the_notebook(run_dir: Path, test_dir: Path, metrics: dict, runs_dir: Path) -> None:
    """`python -m lesionkit evaluate` on the finished run and the notebook's own test_dir gives the numbers the
    notebook's test_dir scoring gave, record for record, to 1e-6."""
    from lesionkit.cli.evaluate import main as evaluate

    assert evaluate([str(run_dir), str(test_dir), "--bootstrap", "0"]) == 0
    (record,) = (runs_dir / "evaluate").iterdir()
    again = json.loads((record / "metrics.json").read_text())
    scored = [p.stem for p in (run_dir / "predictions").glob("external*.csv")
              if not p.stem.endswith(("_truth", "_probs")) and p.stem in metrics]
    assert scored, f"{run_dir.name}: the notebook scored no external set"
    prefix = f"{run_dir.name}__{test_dir.name}"
    for name in scored:
        twin = again.get(prefix + name[len("external"):]) or again[prefix + "_model"]  # quickstart's: "external"
        for key, value in metrics[name].items():
            if isinstance(value, float):
                assert twin[key] == pytest.approx(value, abs=1e-6, nan_ok=True), f"{name}/{key}"
    table = pd.read_csv(record / "generalisation.csv")
    assert set(table["dataset"]) == {str(test_dir), "in-domain test (the run's own)"}
    if (run_dir / "attributions.json").is_file():
        _explain_repeats_the_notebook(run_dir, runs_dir)


def _explain_repeats_the_notebook(run_dir: Path, runs_dir: Path) -> None:
    """`python -m lesionkit explain` on the images the notebook explained gives the notebook's maps."""
    import numpy as np
    import yaml

    from lesionkit.attribution.precompute import load_attributions
    from lesionkit.cli.explain import main as explain
    from lesionkit.data import load_dataset
    from lesionkit.papers.common import resolve_data_dir

    ours = load_attributions(run_dir)
    method, ids = ours.methods[0], list(ours.index["image_ids"][:2])
    ds = load_dataset(resolve_data_dir(yaml.safe_load((run_dir / "config.yaml").read_text())["data_dir"]))
    paths = ds.df.set_index("image_id").loc[ids, "path"]
    listing = run_dir.parent / "explain_images.txt"
    listing.write_text("\n".join(str(Path(ds.root) / p) for p in paths))
    assert explain([str(run_dir), str(listing), "--method", method, "--limit", "2"]) == 0
    (record,) = (runs_dir / "explain").iterdir()
    again = load_attributions(record)
    assert list(again.index["image_ids"]) == ids
    assert np.allclose(again.maps[method], ours.maps[method][:2], atol=1e-5), f"{run_dir.parent.name}: {method} maps"


def test_unknown_parameter_stops_at_config_cell(runs_dir: Path, tmp_path, monkeypatch) -> None:
    import papermill as pm

    nb = REPO / "notebooks" / "00_quickstart.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        _execute(nb, tmp_path / "out.ipynb", {"epoch": 3, "smoke": True}, monkeypatch)
    assert "unknown parameter 'epoch'" in str(err.value) and "did you mean 'epochs'" in str(err.value)
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    config_cell = next(i for i, c in enumerate(code) if "run = start(" in "".join(c["source"]))
    assert failed == [config_cell], "the run must stop at the config cell"
    info = json.loads((_only_run(runs_dir, nb.stem) / "run.json").read_text())
    assert info["status"] == "failed" and "epoch" in info["error"]


def test_error_after_config_marks_the_run_failed(runs_dir: Path, tmp_path, monkeypatch) -> None:
    """A failure in a later cell (here: an unknown model) is caught by the run's IPython hook."""
    import papermill as pm

    nb = REPO / "notebooks" / "00_quickstart.ipynb"
    with pytest.raises(pm.PapermillExecutionError):
        _execute(nb, tmp_path / "out.ipynb", {"arch": "no_such_model", "smoke": True}, monkeypatch)
    run_dir = _only_run(runs_dir, nb.stem)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "no_such_model" in info["error"]
    assert (run_dir / "config.yaml").exists() and (run_dir / "notebook.ipynb").exists()


def test_help_notebook_lists_typed_documented_parameters() -> None:
    out = subprocess.run([PAPERMILL, "--help-notebook", str(REPO / "notebooks" / "00_quickstart.ipynb")],
                         capture_output=True, text=True, check=True).stdout
    from lesionkit.papers.quickstart.recipe import QuickstartConfig

    lines = out.splitlines()
    for name in QuickstartConfig.fields():
        i = next((i for i, ln in enumerate(lines) if ln.strip().startswith(f"{name}: ")), None)
        assert i is not None, f"{name} not listed by --help-notebook"
        assert re.match(rf"\s*{name}: (int|float|str|bool) \(default ", lines[i]), lines[i]
        help_text = lines[i].split(")", 1)[1].strip() or lines[i + 1].strip()  # papermill wraps long lines
        assert help_text and ":" not in help_text.split()[0], f"{name}: no help text"


@pytest.mark.slow
def test_papermill_cli_from_another_directory(runs_dir: Path, tmp_path) -> None:
    """The user's command, run elsewhere: the record (with the executed notebook) still lands in runs/."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "LESIONKIT_RUNS": str(runs_dir)}
    env.pop("LESIONKIT_NOTEBOOK_OUTPUT", None)
    subprocess.run([PAPERMILL, str(REPO / "notebooks" / "00_quickstart.ipynb"), "out.ipynb", "-p", "epochs", "1",
                    "-p", "smoke", "True", "-k", "python3"], cwd=work, env=env, check=True, capture_output=True)
    run_dir = _only_run(runs_dir, "00_quickstart")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    assert (run_dir / "notebook.ipynb").samefile(work / "out.ipynb")
