"""A finished run as a model: `load_run`, and `evaluate` / `predict` / `explain` on new data.

One quickstart smoke run (trained once for the module, in a subprocess) is the model under test; the per-notebook
equality of `evaluate` with each notebook's own test_dir scoring is in tests/notebook/test_papermill_runs.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.cli import evaluate as evaluate_cli
from lesionkit.cli import explain as explain_cli
from lesionkit.cli import predict as predict_cli
from lesionkit.cli import score as score_cli
from lesionkit.papers.saved import RunLoadError, load_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_dir) -> Path:
    """A completed 00_quickstart smoke run (its runs folder: the module's), scored on ``synthetic_dir``."""
    runs = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "LESIONKIT_RUNS": str(runs)}
    subprocess.run([sys.executable, "-m", "lesionkit", "train", "00_quickstart", "-p", "smoke", "True", "-p",
                    "test_dir", str(synthetic_dir)], env=env, check=True, capture_output=True, timeout=900)
    (run_dir,) = (runs / "00_quickstart").iterdir()
    return run_dir


@pytest.fixture()
def runs_here(tmp_path, monkeypatch) -> Path:
    """Where this test's command writes its record."""
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "records"))
    return tmp_path / "records"


def _copy_run(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "runs" / "00_quickstart" / trained.name))


def test_load_run_gives_back_classes_preprocessing_and_fold_weights(trained) -> None:
    saved = load_run(trained)
    assert saved.notebook == "00_quickstart" and saved.classes == json.loads((trained / "model.json").read_text())[
        "classes"]
    pre = saved.preprocessing()
    assert pre["image_size"] == saved.cfg.image_size == 64 and pre["views"] == {"model": "flips4"}
    assert (trained / "checkpoints" / "model_final.pth").is_file(), "a completed run keeps each stage's final weights"
    assert not list((trained / "checkpoints").glob("*_last.pth")), "and drops the per-epoch resumable state"


def test_load_run_refuses_what_it_cannot_use(trained, tmp_path) -> None:
    with pytest.raises(RunLoadError, match="no such run folder"):
        load_run(tmp_path / "nowhere")
    running = _copy_run(trained, tmp_path)
    info = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**info, "status": "failed"}))
    with pytest.raises(RunLoadError, match=r"run\.json: status 'failed', not completed.*resume"):
        load_run(running)
    (running / "run.json").write_text(json.dumps(info))
    (running / "config.yaml").write_text((running / "config.yaml").read_text() + "old_setting: 3\n")
    with pytest.raises(RunLoadError, match=r"config\.yaml: settings \['old_setting'\].*another layout"):
        load_run(running)


def test_weights_that_do_not_fit_their_spec_are_named(trained, tmp_path, synthetic_dir) -> None:
    run_dir = _copy_run(trained, tmp_path)
    weights = run_dir / "checkpoints" / "model_final.pth"
    state = torch.load(weights, weights_only=True)
    torch.save({k: v[..., :1] if v.ndim > 1 else v for k, v in state.items()}, weights)
    saved = load_run(run_dir)
    ds = saved.test_set(synthetic_dir)
    with pytest.raises(RunLoadError, match=r"model_final\.pth: the weights do not fit"):
        saved.learners(saved.evaluation(ds), ds)


def test_evaluate_writes_the_cross_dataset_table(trained, runs_here, synthetic_dir, capsys) -> None:
    assert evaluate_cli.main([str(trained), str(synthetic_dir), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "classes akiec" in out, "the class mapping is printed before the numbers"
    (record,) = (runs_here / "evaluate").iterdir()
    info = json.loads((record / "run.json").read_text())
    assert info["status"] == "completed" and info["source_runs"] == [str(trained.resolve())]
    table = pd.read_csv(record / "generalisation.csv")
    assert list(table["dataset"]) == ["in-domain test (the run's own)", str(synthetic_dir)]
    assert table["mel_auc"].between(0, 1).all() and (table["mel_auc_low"] <= table["mel_auc_high"]).all()
    ours = json.loads((trained / "metrics.json").read_text())["external"]
    again = json.loads((record / "metrics.json").read_text())[f"{trained.name}__{synthetic_dir.name}_model"]
    assert again["auc_macro"] == pytest.approx(ours["auc_macro"], abs=1e-6)
    assert list((record / "figures").glob("*_roc.png")) and list((record / "figures").glob("*_confusion.png"))


def test_evaluate_on_a_set_with_some_of_the_classes_says_so(trained, runs_here, synthetic_dir, tmp_path) -> None:
    labels = pd.read_csv(synthetic_dir / "labels.csv")
    root = tmp_path / "nv_vs_mel"
    for dx in ("nv", "mel"):  # a nevus-vs-melanoma archive export: class folders
        (root / dx).mkdir(parents=True)
        for f in labels.loc[labels["dx"] == dx, "filename"].head(8):
            shutil.copy(synthetic_dir / f, root / dx / Path(f).name)
    assert evaluate_cli.main([str(trained), str(root), "--bootstrap", "0"]) == 0
    (record,) = (runs_here / "evaluate").iterdir()
    row = pd.read_csv(record / "generalisation.csv").iloc[-1]
    assert row["classes_present"] == "mel, nv" and "only mel, nv of 7 classes" in row["note"]
    assert 0 <= row["mel_auc"] <= 1 and 0 <= row["bma"] <= 1


def test_a_set_with_classes_the_model_never_saw_is_scored_melanoma_vs_rest(trained, runs_here, synthetic_dir,
                                                                           tmp_path) -> None:
    labels = pd.read_csv(synthetic_dir / "labels.csv")
    root = tmp_path / "archive"
    for dx, folder in (("mel", "melanoma"), ("nv", "other"), ("bkl", "other")):  # ISIC 2020's "other" / unknown
        (root / folder).mkdir(parents=True, exist_ok=True)
        for f in labels.loc[labels["dx"] == dx, "filename"].head(6):
            shutil.copy(synthetic_dir / f, root / folder / Path(f).name)
    assert evaluate_cli.main([str(trained), str(root), "--bootstrap", "0"]) == 0
    (record,) = (runs_here / "evaluate").iterdir()
    row = pd.read_csv(record / "generalisation.csv").iloc[-1]
    assert row["classes_present"] == "rest, mel" and row["note"].startswith("scored as mel vs rest")
    saved = load_run(trained)
    ds = saved.test_set(root)
    scores = json.loads((record / "metrics.json").read_text())[f"{trained.name}__archive_model"]
    probs = pd.read_csv(record / "predictions" / f"{trained.name}__archive_model.csv")
    assert list(probs.columns) == ["image", "MEL"] and len(probs) == len(ds) == 18
    assert 0 <= scores["auc"] <= 1, "a binary report of the model's melanoma column"


def test_evaluate_refuses_a_run_that_did_not_complete(trained, runs_here, tmp_path, synthetic_dir, capsys) -> None:
    run_dir = _copy_run(trained, tmp_path)
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "running"}))
    assert evaluate_cli.main([str(run_dir), str(synthetic_dir)]) == 2
    err = capsys.readouterr().err
    assert "run.json: status 'running', not completed" in err and "Traceback" not in err


def test_predict_real_images_scores_and_skips_a_corrupt_one(trained, runs_here, shared_data, tmp_path,
                                                             capsys) -> None:
    sample = shared_data / "testsuite_sample"
    labels = pd.read_csv(sample / "labels.csv")
    labels = labels[labels["dx"].isin(load_run(trained).classes)].head(12)
    folder = tmp_path / "new_images"
    folder.mkdir()
    for f in labels["filename"]:
        shutil.copy(sample / f, folder / Path(f).name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "preds.csv"
    assert predict_cli.main([str(trained), str(folder), "--out", str(out)]) == 0
    capsys.readouterr()
    preds = pd.read_csv(out)
    assert len(preds) == len(labels) and "broken" not in set(preds["image"])
    assert np.allclose(preds.drop(columns="image").sum(1), 1, atol=1e-5)
    classes = [c.upper() for c in load_run(trained).classes]
    truth = pd.DataFrame({"image": [Path(f).stem for f in labels["filename"]],
                          **{c: (labels["dx"].str.upper() == c).astype(float).to_numpy() for c in classes}})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    assert score_cli.main([str(tmp_path / "truth.csv"), str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 <= report["balanced_accuracy"] <= 1


def test_predict_names_the_corrupt_file(trained, runs_here, synthetic_dir, tmp_path, capsys) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in sorted((synthetic_dir / "images").iterdir())[:3]:
        shutil.copy(f, folder / f.name)
    (folder / "broken.jpg").write_text("garbage")
    assert predict_cli.main([str(trained), str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert "broken.jpg: unreadable" in err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3


def test_explain_stores_maps_the_viewer_reads(trained, runs_here, synthetic_dir, tmp_path) -> None:
    from lesionkit.attribution.precompute import load_attributions

    folder = tmp_path / "imgs"
    folder.mkdir()
    for f in sorted((synthetic_dir / "images").iterdir())[:2]:
        shutil.copy(f, folder / f.name)
    assert explain_cli.main([str(trained), str(folder), "--method", "gradcam", "--limit", "2"]) == 0
    (record,) = (runs_here / "explain").iterdir()
    store = load_attributions(record)
    assert store.methods == ["gradcam"] and store.maps["gradcam"].shape[0] == 2 and len(store.index["image_ids"]) == 2
    assert (record / "figures" / "attribution_grid.png").is_file()
