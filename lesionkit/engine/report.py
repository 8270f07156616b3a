"""Scoring and fold summaries: one report per prediction, written in the official formats, one mean ± std rule.

Gessert et al. and SE-LCN report *mean ± std over fold models evaluated on one fixed test set* (numpy's ddof=0);
every paper table here is built by :func:`fold_table` / :func:`fold_means` from the engine's per-fold rows.
Imports marked `# lazy` (metrics, matplotlib/seaborn plots) load when a run is first scored: the engine stays
quick to import.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd


def score(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], positive: str | None = None,
          threshold: float | None = None) -> dict[str, Any]:
    """The score command's report: binary (two classes, or ``positive`` given: that class vs the rest, scored on
    its probability column) or multiclass."""
    from lesionkit.metrics import binary_report, multiclass_report  # lazy

    classes = list(classes)
    kw = {} if threshold is None else {"threshold": threshold}
    if positive is not None:
        if positive not in classes:
            raise ValueError(f"positive class {positive!r} is not among the classes {classes}")
        k = classes.index(positive)
        return binary_report((np.asarray(y) == k).astype(int), np.asarray(probs)[:, k], **kw)
    if len(classes) == 2:
        return binary_report(np.asarray(y).astype(int), np.asarray(probs)[:, 1], **kw)
    return multiclass_report(y, probs, classes)


def flat_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalars of a metrics report, nested dicts flattened with "/" (per_class/mel/auc); non-numbers dropped."""
    out: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metrics(value, prefix=f"{name}/"))
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def record_evaluation(run: Any, name: str, ds: Any, idx: np.ndarray, probs: np.ndarray, y: np.ndarray,
                      positive: str | None = None, figures: bool = True, log: bool = True,
                      report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score (unless ``report`` is given), write predictions (+ truth) in the official format as
    ``predictions/<name>.csv``, log the report under ``name`` in metrics.json and save confusion/ROC figures."""
    from lesionkit.metrics import write_predictions  # lazy

    report = report if report is not None else score(y, probs, ds.classes, positive)
    write_predictions(run.dir / "predictions", ds.df["image_id"].iloc[idx].tolist(), probs, ds.classes,
                      y_true=y, stem=name)
    if log:
        run.log_metrics({name: report})
    if figures:
        save_evaluation_figures(run, name, y, probs, ds.classes)
    return report


def save_evaluation_figures(run: Any, name: str, y: np.ndarray, probs: np.ndarray,
                            classes: Sequence[str]) -> dict[str, Any]:
    """The confusion matrix (ties broken by the first class) and ROC curves, saved as ``<name>_confusion`` and
    ``<name>_roc``; returns {figure name: Figure}."""
    from lesionkit.metrics import predict_labels  # lazy
    from lesionkit.viz.plots import plot_confusion_matrix, plot_roc_curves  # lazy

    figs = {f"{name}_confusion": plot_confusion_matrix(y, predict_labels(probs, ties="first"), classes),
            f"{name}_roc": plot_roc_curves(y, probs, classes)}
    for fig_name, fig in figs.items():
        run.save_figure(fig, fig_name)
    return figs


def _metric_columns(df: pd.DataFrame, by: str) -> list[str]:
    return [c for c in df.select_dtypes("number").columns if c not in (by, "fold", "seconds")]


def fold_means(df: pd.DataFrame, by: str = "model") -> dict[str, dict[str, float]]:
    """{model: {metric: mean over folds}} of the numeric columns of per-fold rows (ensemble rows excluded)."""
    df = df[pd.to_numeric(df["fold"], errors="coerce").notna()] if "fold" in df else df
    num = df.groupby(by, sort=False)[_metric_columns(df, by)].mean(numeric_only=True)
    return {str(m): {k: float(v) for k, v in row.items() if np.isfinite(v)} for m, row in num.iterrows()}


def fold_table(df: pd.DataFrame, by: str = "model", metrics: Sequence[str] | None = None,
               digits: int = 3) -> pd.DataFrame:
    """mean ± std over folds (``lesionkit.metrics.fold_summary``, ddof=0 as the papers) as readable text: one row
    per metric, one column per ``by`` value."""
    from lesionkit.metrics import fold_summary  # lazy

    df = df[pd.to_numeric(df["fold"], errors="coerce").notna()] if "fold" in df else df
    cols = list(metrics) if metrics is not None else _metric_columns(df, by)
    cols = [c for c in cols if df[c].notna().all()]
    if not cols:
        return pd.DataFrame(columns=["metric", *map(str, df[by].unique())])
    summary = fold_summary(df, by=by, metrics=cols).set_index(by)
    text = {name: {m: f"{row[f'{m}_mean']:.{digits}f} ± {row[f'{m}_std']:.{digits}f}" for m in cols}
            for name, row in summary.iterrows()}
    return pd.DataFrame(text).rename_axis("metric").reset_index()


def count_params(model: Any, trainable_only: bool = False) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def pick_examples(y: np.ndarray, probs: np.ndarray, n: int = 6, seed: int = 0) -> np.ndarray:
    """Positions of up to ``n`` test images to explain: correct and wrong predictions of several classes."""
    rng = np.random.default_rng(seed)
    pred = probs.argmax(1)
    order = np.concatenate([rng.permutation(np.flatnonzero(pred == y)), rng.permutation(np.flatnonzero(pred != y))])
    picked: list[int] = []
    for cls in rng.permutation(np.unique(y)):
        hit = [i for i in order if y[i] == cls and i not in picked]
        if hit:
            picked.append(int(hit[0]))
    picked += [int(i) for i in order if i not in picked]
    return np.asarray(picked[:n], dtype=int)
