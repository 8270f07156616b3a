"""The one evaluation path: trained models on held-out or external rows, with their own test views.

Every notebook's external scoring, the fold ensembles and ``python -m lesionkit evaluate`` / ``predict`` go through
:func:`evaluate_models`: each variant's fold models predict with the variant's test loader, views and averaging
(:func:`lesionkit.engine.runner.test_predictions`), a multiclass model scored as one class against the rest reads
that class's column, and each prediction is scored by the paper's report, written in the official format and
logged, the same way whether the learners come from a training run or a saved one (``lesionkit.load_run``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from lesionkit.engine.report import flat_metrics, record_evaluation, save_evaluation_figures, score
from lesionkit.engine.runner import Variant, test_predictions

FOLD_RULES = ("first", "ensemble")


@dataclass(frozen=True)
class Evaluation:
    """What scoring a paper's models means.

    variants: the models (each with its test loader, views and averaging); report(y, probs): the paper's metrics;
    folds: "first" scores the fold-0 model (recorded as ``<name>_<key>``), "ensemble" every fold model and, with
    several, their mean probabilities (``<name>_<key>_fold<k>``, ``<name>_<key>_ensemble``); positive_column: a
    multiclass model scored as that class against the rest (its probabilities become (1 − p, p)).
    """

    variants: Sequence[Variant]
    report: Callable[[np.ndarray, np.ndarray], dict[str, Any]]
    folds: str = "first"
    positive_column: int | None = None

    def __post_init__(self) -> None:
        if self.folds not in FOLD_RULES:
            raise ValueError(f"folds={self.folds!r}: choose one of {FOLD_RULES}")


@dataclass
class Scores:
    """What :func:`evaluate_models` returns: one table row per scored prediction, the reports and the model's own
    probabilities (every class it has) by record name, and the truth."""

    table: pd.DataFrame
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    y: np.ndarray | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def by_label(self) -> dict[str, dict[str, Any]]:
        """{model label: report} of each model's final prediction (its ensemble where there is one)."""
        last = self.table.drop_duplicates("model", keep="last")
        return {row.model: self.reports[row.Index] for row in last.itertuples()}


def comparable_report(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], positive: str | None) -> dict[str, Any]:
    """Metrics that mean the same on any set, whichever classes it holds: balanced accuracy (ISIC's: classes
    absent from the set left out; two classes: mean of sensitivity and specificity), macro AUC (over the classes
    with positives and negatives when some are absent), and ``positive`` vs the rest (AUC, AP, sensitivity /
    specificity at P >= 0.5, specificity at 95 % sensitivity; NaN where the set lacks either side). The
    comparison's table and the cross-dataset table use it."""
    from lesionkit.metrics.paired import macro_auc_present  # lazy

    classes, y, probs = list(classes), np.asarray(y), np.asarray(probs)
    present = [c for i, c in enumerate(classes) if np.any(y == i)]
    full = score(y, probs, classes) if len(present) > 1 else {}
    k = classes.index(positive) if positive in classes else None
    mel = score(y, probs, classes, positive=positive) if k is not None and 0 < np.sum(y == k) < len(y) else {}
    bma = full.get("balanced_accuracy", (full.get("sensitivity", np.nan) + full.get("specificity", np.nan)) / 2)
    auc = full.get("auc_macro", full.get("auc")) if len(present) == len(classes) else macro_auc_present(y, probs)
    return {"bma": bma, "auc_macro": auc, "mel_auc": mel.get("auc", np.nan), "mel_ap": mel.get("ap", np.nan),
            "mel_sensitivity": mel.get("sensitivity", np.nan), "mel_specificity": mel.get("specificity", np.nan),
            "mel_spec_at_sens95": mel.get("spec_at_sens95", np.nan), "classes_present": ", ".join(present)}


def as_task(probs: np.ndarray, positive_column: int | None) -> np.ndarray:
    """A model's probabilities in the evaluated task: all columns, or (1 − p, p) of ``positive_column``."""
    if positive_column is None:
        return probs
    p = probs[:, positive_column]
    return np.stack([1 - p, p], 1)


def evaluate_models(run: Any, ev: Evaluation, learners: Mapping[str, Sequence[Any]], ds: Any,
                    rows: np.ndarray | None = None, name: str = "external", figures: bool = False,
                    log: bool = True, key_in_name: bool = True) -> Scores:
    """Score every variant of ``ev`` that has learners (``learners[key]``: its fold models, fold 0 first) on
    dataset ``rows`` (default: all). Each prediction is written as ``predictions/<record>.csv`` (official format,
    with truth), its report logged under ``<record>`` in metrics.json (``log``) and, with ``figures``, its confusion
    matrix and ROC saved (``Scores.figures``). ``key_in_name=False``: one model's records are named ``<name>`` /
    ``<name>_fold<k>`` alone. The truth is the dataset's labels, so unlabelled loaders predict the same way."""
    rows = np.arange(len(ds)) if rows is None else np.asarray(rows)
    y = ds.df["label_idx"].to_numpy()[rows]
    out = Scores(table=pd.DataFrame(), y=y)
    table: list[dict[str, Any]] = []

    def record(record_name: str, v: Variant, fold: Any, model_probs: np.ndarray) -> None:
        probs = as_task(model_probs, ev.positive_column)
        report = ev.report(y, probs)
        record_evaluation(run, record_name, ds, rows, probs, y, figures=False, log=log, report=report)
        if figures:
            out.figures.update(save_evaluation_figures(run, record_name, y, probs, ds.classes))
        out.reports[record_name], out.probs[record_name] = report, model_probs
        table.append({"record": record_name, "model": v.label, "key": v.key, "fold": fold, **flat_metrics(report),
                      "images": len(rows)})

    for v in ev.variants:
        fold_learners = list(learners.get(v.key, ()))
        if not fold_learners:
            continue
        base = f"{name}_{v.key}" if key_in_name else name
        if ev.folds == "first":
            record(base, v, 0, test_predictions(fold_learners[0], v, ds, rows)[0])
            continue
        fold_probs = [test_predictions(learn, v, ds, rows)[0] for learn in fold_learners]
        for k, probs in enumerate(fold_probs):
            record(f"{base}_fold{k}", v, k, probs)
        if len(fold_probs) > 1:
            record(f"{base}_ensemble", v, "ensemble", np.mean(fold_probs, axis=0))
    out.table = pd.DataFrame(table).set_index("record", drop=False) if table else pd.DataFrame()
    return out


__all__ = ["Evaluation", "FOLD_RULES", "Scores", "as_task", "comparable_report", "evaluate_models"]
