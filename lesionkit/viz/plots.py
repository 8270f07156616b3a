"""Report plots (seaborn/matplotlib). Each function builds its own Figure and returns it; nothing is shown.

Figures are ``lesionkit.viz.figure.Figure`` (matplotlib's, built without pyplot), so they work headless, in papermill
and in threads, and are freed by garbage collection; in a notebook a returned figure draws itself as a PNG.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import sklearn.metrics as skm
from numpy.typing import ArrayLike

from lesionkit.metrics._validate import as_binary, as_labels, as_probs
from lesionkit.metrics.calibration import expected_calibration_error, reliability_curve
from lesionkit.metrics.classification import (
    confusion_matrix,
    per_class_recall,
    predict_labels,
)
from lesionkit.viz.figure import Figure


def _curve_inputs(y_true: ArrayLike, probs: ArrayLike, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list]:
    """Binary (1-D scores, two classes) becomes one curve for classes[1]; multiclass one curve per class column."""
    p = np.asarray(probs, dtype=np.float64)
    classes = [str(c) for c in classes]
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 2 and len(classes) == 2):
        y = as_binary(y_true)
        s = p if p.ndim == 1 else p[:, 1]
        return y[:, None], s[:, None], [classes[-1]]
    y = as_labels(y_true)
    p = as_probs(p, len(y))
    if p.shape[1] != len(classes):
        raise ValueError(f"probs has {p.shape[1]} columns but {len(classes)} classes were given: {classes}")
    return np.eye(len(classes), dtype=np.int64)[y], p, classes


def plot_confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str],
                          title: str | None = None) -> Figure:
    """Row-normalised confusion matrix (rows = truth); the diagonal is per-class recall, its mean the ISIC BMA.

    ``y_pred`` is labels, or a probability matrix (argmax, ties undecided as ISIC counts them).
    """
    classes = [str(c) for c in classes]
    pred = np.asarray(y_pred)
    pred = predict_labels(pred) if pred.ndim == 2 else as_labels(pred, "y_pred")
    cm = confusion_matrix(y_true, pred, len(classes), normalize="true")
    counts = confusion_matrix(y_true, pred, len(classes))
    fig = Figure(figsize=(1.0 + 0.8 * len(classes), 0.8 + 0.7 * len(classes)), layout="constrained")
    ax = fig.add_subplot()
    annot = np.array([[f"{v:.2f}\n({n})" for v, n in zip(rv, rn)] for rv, rn in zip(cm, counts)])
    sns.heatmap(cm, annot=annot, fmt="", vmin=0, vmax=1, cmap="Blues", square=True, cbar=True,
                xticklabels=classes, yticklabels=classes, ax=ax, annot_kws={"fontsize": 7})
    bma = float(np.nanmean(per_class_recall(y_true, pred, len(classes))))
    ax.set(xlabel="predicted", ylabel="true", title=title or f"confusion matrix (row-normalised), BMA {bma:.3f}")
    return fig


def plot_roc_curves(y_true: ArrayLike, probs: ArrayLike, classes: Sequence[str], min_tpr: float = 0.8,
                    operating_threshold: float | None = 0.5) -> Figure:
    """ROC per class (one curve for a binary task) with AUC in the legend, the TPR >= ``min_tpr`` band shaded
    (the ISIC 2024 pAUC region) and each curve's operating point at ``score >= operating_threshold`` marked."""
    onehot, scores, names = _curve_inputs(y_true, probs, classes)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.axhspan(min_tpr, 1.0, color="0.85", alpha=0.6, zorder=0, label=f"TPR ≥ {min_tpr:g}")
    colors = sns.color_palette("tab10", len(names))
    for k, (name, color) in enumerate(zip(names, colors)):
        yk, sk = onehot[:, k], scores[:, k]
        if yk.min() == yk.max():
            continue
        fpr, tpr, _ = skm.roc_curve(yk, sk)
        ax.plot(fpr, tpr, color=color, lw=1.5, label=f"{name} (AUC {skm.roc_auc_score(yk, sk):.3f})")
        if operating_threshold is not None:
            pred = sk >= operating_threshold
            ax.plot(np.mean(pred[yk == 0]), np.mean(pred[yk == 1]), "o", color=color, ms=6, mec="black")
    ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (1 - specificity)",
           ylabel="true positive rate (sensitivity)", title="ROC curves" + (
               f" (● = score ≥ {operating_threshold:g})" if operating_threshold is not None else ""))
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_pr_curves(y_true: ArrayLike, probs: ArrayLike, classes: Sequence[str]) -> Figure:
    """Precision-recall per class with average precision (step-wise, as the ISIC scorer) and the prevalence baseline."""
    onehot, scores, names = _curve_inputs(y_true, probs, classes)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, color) in enumerate(zip(names, sns.color_palette("tab10", len(names)))):
        yk, sk = onehot[:, k], scores[:, k]
        if yk.min() == yk.max():
            continue
        precision, recall, _ = skm.precision_recall_curve(yk, sk)
        ax.step(recall, precision, where="post", color=color, lw=1.5,
                label=f"{name} (AP {skm.average_precision_score(yk, sk):.3f})")
        ax.axhline(yk.mean(), color=color, ls=":", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall (sensitivity)", ylabel="precision (PPV)",
           title="precision-recall curves (dotted: prevalence)")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def plot_per_class_recall(y_true: ArrayLike, y_pred: ArrayLike, classes: Sequence[str]) -> Figure:
    """Bar per class of recall (sensitivity) with its support; the dashed line is their mean, the ISIC BMA."""
    classes = [str(c) for c in classes]
    pred = np.asarray(y_pred)
    pred = predict_labels(pred) if pred.ndim == 2 else as_labels(pred, "y_pred")
    recall = per_class_recall(y_true, pred, len(classes))
    support = np.bincount(as_labels(y_true), minlength=len(classes))
    fig = Figure(figsize=(1.5 + 0.7 * len(classes), 4), layout="constrained")
    ax = fig.add_subplot()
    frame = pd.DataFrame({"class": classes, "recall": np.nan_to_num(recall)})
    sns.barplot(frame, x="class", y="recall", hue="class", palette="tab10", legend=False, ax=ax)
    for i, (r, n) in enumerate(zip(recall, support)):
        ax.text(i, 0.02, f"n={n}" + (" (absent)" if np.isnan(r) else ""), ha="center", fontsize=7, color="white")
    bma = float(np.nanmean(recall))
    ax.axhline(bma, ls="--", color="black", lw=1, label=f"BMA {bma:.3f}")
    ax.set(ylim=(0, 1.1), ylabel="recall (sensitivity)", title="per-class recall")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def plot_reliability(y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15) -> Figure:
    """Reliability diagram: observed frequency vs mean confidence per bin, ECE in the title, bin counts below."""
    curve = reliability_curve(y_true, probs, n_bins)
    ece = expected_calibration_error(y_true, probs, n_bins)
    fig = Figure(figsize=(5, 5.5), layout="constrained")
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    width = 1.0 / n_bins
    ax.bar(curve["bin_low"], curve["accuracy"].fillna(0), width=width, align="edge", edgecolor="black",
           color=sns.color_palette()[0], label="observed")
    ax.plot([0, 1], [0, 1], ls="--", color="0.4", label="perfect calibration")
    ok = curve["count"] > 0
    ax.plot(curve.loc[ok, "confidence"], curve.loc[ok, "accuracy"], "o", color="black", ms=3, label="bin mean")
    binary = np.asarray(probs).ndim == 1
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="fraction positive" if binary else "accuracy",
           title=f"reliability diagram, ECE {ece:.3f} ({n_bins} bins)")
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar(curve["bin_low"], curve["count"], width=width, align="edge", color="0.6", edgecolor="black")
    ax_n.set(xlabel="predicted P(positive)" if binary else "confidence (max probability)", ylabel="count")
    return fig


def plot_history(history_df: pd.DataFrame) -> Figure:
    """Training history per epoch from a recorder-style table (lesionkit's history.csv): losses, metrics and the
    learning rate (log scale) in separate panels.

    Expects an ``epoch`` column (else the row number is used); columns containing "loss" are losses, ``lr`` the
    learning rate, every other numeric column except ``time``/``epoch`` a metric. When a ``stage`` column names
    several stages (fold models, SE-LCN's three networks) each stage gets its own line style, so epochs of different
    models are never averaged together.
    """
    df = history_df.copy()
    if df.empty:
        raise ValueError("history table is empty: nothing was trained")
    if "epoch" not in df.columns:
        df["epoch"] = np.arange(len(df))
    numeric = [c for c in df.select_dtypes("number").columns if c not in ("epoch", "time")]
    if not numeric:
        raise ValueError(f"history table has no numeric loss/metric columns: {list(history_df.columns)}")
    losses = [c for c in numeric if "loss" in c]
    rates = [c for c in numeric if c == "lr"]
    metrics = [c for c in numeric if c not in losses and c not in rates]
    style = "stage" if "stage" in df.columns and df["stage"].nunique() > 1 else None
    groups = [(cols, title) for cols, title in ((losses, "losses"), (metrics, "metrics"), (rates, "learning rate"))
              if cols]
    fig = Figure(figsize=(1 + 4.5 * len(groups), 4), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    id_vars = ["epoch"] + ([style] if style else [])
    for ax, (cols, title) in zip(axes, groups):
        long = df.melt(id_vars=id_vars, value_vars=cols, var_name="series", value_name="value")
        sns.lineplot(long, x="epoch", y="value", hue="series", style=style, marker="o", errorbar=None, ax=ax)
        ax.set(ylabel={"losses": "loss", "metrics": "metric value"}.get(title, "lr"), title=title)
        if title == "learning rate" and (long["value"] > 0).all():
            ax.set_yscale("log")
    return fig


def plot_fold_comparison(df: pd.DataFrame, metric: str | None = None, model_col: str = "model") -> Figure:
    """Mean ± std over folds per model for one metric (points = individual folds).

    ``df`` has one row per (model, fold) with metric columns; ``metric`` defaults to the first numeric column that is
    not ``fold``.
    """
    if model_col not in df.columns:
        raise ValueError(f"fold table needs a '{model_col}' column; columns are {list(df.columns)}")
    if metric is None:
        candidates = [c for c in df.select_dtypes("number").columns if c != "fold"]
        if not candidates:
            raise ValueError(f"fold table has no numeric metric column: {list(df.columns)}")
        metric = candidates[0]
    if metric not in df.columns:
        raise ValueError(f"fold table has no column '{metric}'; columns are {list(df.columns)}")
    stats = df.groupby(model_col, sort=False)[metric].agg(["mean", "std", "count"]).fillna({"std": 0.0})
    fig = Figure(figsize=(1.5 + 1.1 * len(stats), 4), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(stats))
    ax.bar(x, stats["mean"], yerr=stats["std"], capsize=4, color=sns.color_palette("tab10", len(stats)),
           alpha=0.8, edgecolor="black")
    positions = {m: i for i, m in enumerate(stats.index)}
    ax.plot(df[model_col].map(positions), df[metric], "o", color="black", ms=3, label="fold")
    for i, (m, row) in enumerate(stats.iterrows()):
        ax.text(i, row["mean"] + row["std"] + 0.01, f"{row['mean']:.3f}±{row['std']:.3f}", ha="center", fontsize=8)
    ax.set_xticks(x, [str(m) for m in stats.index], rotation=20, ha="right")
    ax.set(ylabel=metric, title=f"{metric}: mean ± std over folds (n = {int(stats['count'].max())})")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_generalisation(table: pd.DataFrame, metric: str = "mel_auc", low: str | None = "mel_auc_low",
                        high: str | None = "mel_auc_high") -> Figure:
    """A heat map of ``metric`` with one row per model (and run) and one column per dataset, each cell annotated
    with its value and, where ``low`` / ``high`` columns hold one, its 95 % interval: the cross-dataset table of
    ``python -m lesionkit evaluate`` as one picture."""
    for col in ("run", "model", "dataset", metric):
        if col not in table.columns:
            raise ValueError(f"generalisation table needs a '{col}' column; columns are {list(table.columns)}")
    rows = table.assign(row=table["model"].astype(str) + "\n" + table["run"].astype(str).str.split("/").str[0]
                        + (" fold " + table["fold"].astype(str) if "fold" in table else ""))
    values = rows.pivot_table(index="row", columns="dataset", values=metric, aggfunc="first", sort=False)

    def label(r: pd.Series) -> str:
        text = f"{r[metric]:.3f}"
        if low and high and low in r and np.isfinite(r.get(low, np.nan)):
            text += f"\n[{r[low]:.2f}, {r[high]:.2f}]"
        return text

    notes = rows.assign(text=rows.apply(label, axis=1)).pivot_table(index="row", columns="dataset", values="text",
                                                                    aggfunc="first", sort=False)
    notes = notes.reindex(index=values.index, columns=values.columns).fillna("")
    fig = Figure(figsize=(2.2 + 2.0 * values.shape[1], 1.2 + 0.8 * values.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    sns.heatmap(values.astype(float), annot=notes.to_numpy(), fmt="", cmap="viridis", vmin=0.5 if "auc" in metric
                else 0.0, vmax=1.0, ax=ax, cbar_kws={"label": metric})
    ax.set_xticklabels([textwrap_label(t.get_text()) for t in ax.get_xticklabels()], rotation=0)
    ax.set(xlabel="", ylabel="", title=f"{metric} per model and dataset (95 % bootstrap interval)")
    return fig


def textwrap_label(text: str, width: int = 24) -> str:
    """A long path shortened to its last parts, so heat-map columns stay readable."""
    return text if len(text) <= width else "…" + text[-(width - 1):]
