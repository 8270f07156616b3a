"""Saved runs on other datasets: the cross-dataset table, predictions for new images, and their maps.

``evaluate_runs`` scores every model of every run on every dataset through the one evaluation path (each
notebook's own report, predictions in the official formats, ROC and confusion figures) and sets the numbers that
mean the same on any set (``engine.evaluation.comparable_report``) beside the run's in-domain test rows in
``generalisation.csv``. ``predict_images`` and ``explain_images`` take a folder, a file list or a dataset.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lesionkit.papers.saved import SavedRun

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
TABLE_METRICS = ("bma", "auc_macro", "mel_auc", "mel_ap", "mel_sensitivity", "mel_specificity")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "set"


def evaluate_runs(runs: Sequence[SavedRun], datasets: Sequence[str], record: Any, n_boot: int = 200,
                  seed: int = 0) -> pd.DataFrame:
    """Every run's models on every dataset (read as its notebook reads ``test_dir``; the class mapping printed and
    kept in metrics.json ``class_mapping``), plus each run's in-domain test rows; ``generalisation.csv`` has one row
    per (run, model, fold, dataset) with :data:`TABLE_METRICS`, a bootstrap 95 % interval of the melanoma AUC over
    images (``n_boot`` resamples) and which classes the set holds."""
    from lesionkit.data.external import mapping_line  # lazy
    from lesionkit.engine.evaluation import as_task, evaluate_models  # lazy

    rows: list[dict[str, Any]] = []
    mappings: dict[str, Any] = {}
    for saved in runs:
        rows += _in_domain_rows(saved, n_boot, seed)
        for path in datasets:
            ds = saved.test_set(path)
            print(f"{saved.name} on {mapping_line(ds)}", flush=True)
            mappings[f"{saved.name} | {path}"] = ds.info.get("class_mapping", {})
            ev = saved.evaluation(ds)
            scores = evaluate_models(record, ev, saved.learners(ev, ds), ds,
                                     name=f"{slug(saved.dir.name)}__{slug(Path(path).name)}", figures=True)
            for name, row in scores.table.iterrows():
                probs = as_task(scores.probs[name], ev.positive_column)
                rows.append(_row(saved, row["model"], row["fold"], str(path), scores.y, probs, list(ds.classes),
                                 _positive_of(ds.classes), n_boot, seed))
                if ds.info.get("scored_as"):
                    rows[-1]["note"] = ("scored as " + ds.info["scored_as"].split(" (")[0] + ": the set has classes "
                                        "the model never saw")
    table = pd.DataFrame(rows)
    record.save_table(table, "generalisation.csv")
    record.log_metrics({"class_mapping": mappings, "generalisation": table.to_dict(orient="records")})
    return table


def _positive_of(classes: Sequence[str]) -> str | None:
    """The class the melanoma columns read: a binary set's second, else the model's melanoma class (by name or
    synonym), else none."""
    from lesionkit.data.tasks import find_class  # lazy

    if len(classes) == 2:
        return str(classes[1])
    try:
        return find_class("mel", classes)
    except ValueError:
        return None


def _row(saved: SavedRun, model: str, fold: Any, dataset: str, y: np.ndarray, probs: np.ndarray,
         classes: list[str], positive: str | None, n_boot: int, seed: int) -> dict[str, Any]:
    from lesionkit.engine.evaluation import comparable_report  # lazy

    report = comparable_report(y, probs, classes, positive)
    low, high = _auc_interval(y, probs, classes, positive, n_boot, seed)
    partial = report["classes_present"].count(",") + 1 < len(classes)
    return {"run": saved.name, "model": model, "fold": fold, "dataset": dataset, "images": len(y),
            **{m: report[m] for m in TABLE_METRICS}, "mel_auc_low": low, "mel_auc_high": high,
            "classes_present": report["classes_present"],
            "note": (f"only {report['classes_present']} of {len(classes)} classes: balanced accuracy over those, "
                     "macro AUC over the classes with both sides") if partial else ""}


def _auc_interval(y: np.ndarray, probs: np.ndarray, classes: list[str], positive: str | None, n_boot: int,
                  seed: int) -> tuple[float, float]:
    """Percentile 95 % interval of the positive class's AUC over images resampled with replacement."""
    from lesionkit.metrics.paired import midrank_auc  # lazy

    if positive not in classes or n_boot <= 0:
        return float("nan"), float("nan")
    k = classes.index(positive)
    t, s = np.asarray(y) == k, np.asarray(probs)[:, k]
    if not 0 < t.sum() < len(t):
        return float("nan"), float("nan")
    rng, aucs = np.random.default_rng(seed), []
    for _ in range(n_boot):
        i = rng.integers(0, len(t), len(t))
        if 0 < t[i].sum() < len(i):
            aucs.append(midrank_auc(t[i], s[i]))
    return (float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))) if aucs else (np.nan, np.nan)


def _in_domain_rows(saved: SavedRun, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """The run's own held-out test predictions (fold 0, as written in its predictions/), scored the same way."""
    from lesionkit.metrics.formats import load_pair  # lazy

    rows = []
    for v in saved.variants():
        for stem in (f"test_{v.key}_fold0", f"test_{v.key}", "test"):
            pred, truth = saved.dir / "predictions" / f"{stem}.csv", saved.dir / "predictions" / f"{stem}_truth.csv"
            if pred.is_file() and truth.is_file():
                pair = load_pair(truth, pred)
                probs = pair.scores if pair.scores.ndim == 2 else np.stack([1 - pair.scores, pair.scores], 1)
                classes = saved.classes if probs.shape[1] == len(saved.classes) else ["rest", str(saved.positive)]
                rows.append(_row(saved, v.label, 0, "in-domain test (the run's own)", np.asarray(pair.y_true), probs,
                                 classes, _positive_of(classes), n_boot, seed))
                break
    return rows


# --- new images -------------------------------------------------------------------------------------------------------
def image_set(saved: SavedRun, source: str | Path) -> tuple[Any, list[str]]:
    """Images to predict as a dataset in the model's classes, and the files skipped with the reason: a dataset
    folder (read as ``test_dir`` is), a folder of images, or a text file listing one path per line. Unreadable or
    too small images are reported by name and left out."""
    from lesionkit.data.readers import resolve_format  # lazy
    from lesionkit.data.table import CANONICAL_COLUMNS, LesionDataset  # lazy

    source = Path(source).expanduser()
    if source.is_dir():
        try:
            resolve_format(source)
            ds = saved.test_set(source, model_inputs=False)
            return _inputs(saved, *_readable(ds))
        except Exception:  # noqa: BLE001 - not a dataset layout: a plain folder of images
            files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif source.is_file():
        files = [Path(line.strip()).expanduser() for line in source.read_text().splitlines() if line.strip()]
        files = [f if f.is_absolute() else source.parent / f for f in files]
    else:
        raise FileNotFoundError(f"{source}: no such folder or file list; give a folder of images, a dataset "
                                "folder or a text file with one image path per line")
    if not files:
        raise FileNotFoundError(f"{source}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    df = pd.DataFrame({"image_id": [f.stem for f in files], "path": [str(f.resolve()) for f in files],
                       "label": saved.classes[0], "label_idx": 0})
    dup = df["image_id"].duplicated(keep=False)
    df.loc[dup, "image_id"] = [str(Path(p).relative_to(Path(p).anchor)) for p in df.loc[dup, "path"]]
    df = df.reindex(columns=[*CANONICAL_COLUMNS]).assign(label=saved.classes[0], label_idx=0)
    ds = LesionDataset(source.name, source if source.is_dir() else source.parent, df, saved.classes, saved.task)
    return _inputs(saved, *_readable(ds))


def _inputs(saved: SavedRun, ds: Any, skipped: list[str]) -> tuple[Any, list[str]]:
    """The readable images as the run's models read them (SE-LCN: through its cascade)."""
    return saved.model_inputs(ds), skipped


def _readable(ds: Any, min_side: int = 16) -> tuple[Any, list[str]]:
    """``ds`` without the images that cannot be decoded or are smaller than ``min_side`` pixels, and why each went."""
    from PIL import Image, UnidentifiedImageError

    keep, skipped = [], []
    for i, path in enumerate(ds.df["path"]):
        try:
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                side = min(im.size)
                im.convert("RGB").load()
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            skipped.append(f"{path}: unreadable ({type(err).__name__}: {err})")
            continue
        if side < min_side:
            skipped.append(f"{path}: {side} px on its short side, below {min_side}")
            continue
        keep.append(i)
    return ds.subset(np.asarray(keep, dtype=int)), skipped


def predict_images(saved: SavedRun, ds: Any, out: str | Path, record: Any) -> pd.DataFrame:
    """The run's headline model (every saved fold, averaged) on every image of ``ds`` with its test views: the
    official ISIC CSV at ``out`` (one probability column per class, or ``image,MEL`` for a binary model)."""
    from lesionkit.engine.evaluation import as_task  # lazy
    from lesionkit.engine.runner import test_predictions  # lazy
    from lesionkit.metrics.formats import write_predictions  # lazy

    ev, v, learners = _headline(saved, ds)
    rows = np.arange(len(ds))
    probs = np.mean([test_predictions(learn, v, ds, rows)[0] for learn in learners], axis=0)
    classes = list(saved.classes)
    if ev.positive_column is not None:
        probs, classes = as_task(probs, ev.positive_column), ["rest", str(saved.positive)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_predictions(out.parent, ds.df["image_id"].tolist(), probs, classes, stem=out.stem,
                      positive_column=str(classes[1]).upper() if len(classes) == 2 else "MEL")
    table = pd.read_csv(out)
    record.save_table(table, "predictions.csv")
    print(f"{len(ds)} images, model {v.label} ({len(learners)} fold model(s)), views {v.views}: {out}", flush=True)
    return table


def _headline(saved: SavedRun, ds: Any) -> tuple[Any, Any, list[Any]]:
    """(the run's evaluation on ``ds``, its headline variant, that variant's fold models)."""
    from dataclasses import replace

    ev = saved.evaluation(ds)
    headline = getattr(saved.cfg, "headline", "")
    v = next((v for v in ev.variants if v.key == headline), ev.variants[-1])
    return ev, v, saved.learners(replace(ev, variants=[v]), ds)[v.key]


def explain_images(saved: SavedRun, ds: Any, methods: Sequence[str], record: Any, limit: int = 16) -> Any:
    """Attribution maps of the headline model (fold 0) for up to ``limit`` images of ``ds``, made as its notebook
    makes them (``SavedRun.explain``), in the store layout the viewer reads (under ``record.dir``), and a PNG grid
    (figures/attribution_grid.png)."""
    from lesionkit.attribution.figures import plot_store_grid  # lazy
    from lesionkit.papers.saved import in_model_classes  # lazy

    ds = in_model_classes(saved, ds)  # maps are of the model's own classes
    _, v, learners = _headline(saved, ds)
    store = saved.explain(learners[0], ds, np.arange(min(limit, len(ds))), list(methods), record)
    record.save_figure(plot_store_grid(store), "attribution_grid")
    return store


__all__ = ["IMAGE_SUFFIXES", "TABLE_METRICS", "evaluate_runs", "explain_images", "image_set", "predict_images"]
