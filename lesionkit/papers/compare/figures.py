"""Figures that set models side by side on the same test rows."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd


def plot_roc_pair(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "melanoma vs rest, test rows") -> Any:
    """ROC curves of several models (label -> P(positive) on the same rows ``y``), AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from lesionkit.viz.figure import Figure

    fig = Figure(figsize=(4.2, 4), layout="constrained")
    ax = fig.subplots()
    y = np.asarray(y)
    for label, p in scores.items():
        if len(np.unique(y)) < 2:
            break
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_forest(table: pd.DataFrame, metric: str | None = None,
                title: str = "difference from reference (simultaneous intervals)") -> Any:
    """Forest plot of `lesionkit.metrics.paired.compare_to_reference` rows: one panel per metric, one row per entry.

    Point = diff, bar = [ci_low, ci_high], dashed line at 0. Significant rows (``significant``) get a filled marker,
    the others a hollow one; each row is labelled with its adjusted p. Rows with NaN values are drawn as far as defined.
    """
    import seaborn as sns

    from lesionkit.viz.figure import Figure

    metrics = list(dict.fromkeys(table["metric"])) if metric is None else [metric]
    if metric is not None and metric not in set(table["metric"]):
        raise ValueError(f"metric {metric!r} is not in the table (it has {sorted(set(table['metric']))})")
    n_rows = max([int((table["metric"] == m).sum()) for m in metrics] + [1])
    hit, miss = sns.color_palette("deep")[3], sns.color_palette("deep")[7]
    fig = Figure(figsize=(4.4 * max(len(metrics), 1), 0.45 * n_rows + 1.4), layout="constrained")
    with sns.axes_style("whitegrid"):
        axes = fig.subplots(1, max(len(metrics), 1), squeeze=False)[0]
    for ax, m in zip(axes, metrics):
        sub = table[table["metric"] == m].reset_index(drop=True)
        pos = np.arange(len(sub))
        diff, low, high = (sub[c].to_numpy(dtype=float) for c in ("diff", "ci_low", "ci_high"))
        sig = sub["significant"].to_numpy(dtype=bool)
        ax.hlines(pos, low, high, colors=[hit if s else miss for s in sig], lw=2)
        ax.scatter(diff[sig], pos[sig], s=40, color=hit, zorder=3, label="significant")
        ax.scatter(diff[~sig], pos[~sig], s=40, facecolors="white", edgecolors=miss, zorder=3, label="not significant")
        ax.axvline(0, ls="--", c="grey", lw=1)
        for i, p in zip(pos, sub["p_adjusted"].to_numpy(dtype=float)):
            text = "p_adj = n/a" if np.isnan(p) else f"p_adj = {p:.3g}"
            ax.text(1.02, i, text, transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                    fontweight="bold" if sig[i] else "normal")
        refs = sorted(set(sub["reference"]))
        labels = sub["entry"] if len(refs) == 1 else sub["entry"] + " vs " + sub["reference"]
        ax.set_yticks(pos, labels=list(labels))
        ax.set_ylim(len(sub) - 0.5, -0.5)
        ax.set_xlabel(f"{m} difference" + (f" vs {refs[0]}" if len(refs) == 1 else ""))
        ax.set_title(m, fontsize=10)
    if metrics:
        axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_map_vs_diagnosis(df: pd.DataFrame, x: str = "mass_inside", y: str = "bma", hue: str | None = "method",
                          label: str = "entry") -> Any:
    """Map quality (``x``) against diagnostic quality (``y``): one point per entry x method, an entry's methods
    joined by a thin line and the entry named once, right of its best map (its diagnostic score is one value).

    Rows repeating an (entry, method) pair (e.g. one row per image) are averaged; points with NaN are left out.
    """
    import seaborn as sns

    from lesionkit.viz.figure import Figure

    hue = hue if hue is not None and hue in df.columns else None
    missing = [c for c in (x, y, label) if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(df.columns)}")
    keys = [label] + ([hue] if hue else [])
    points = df.groupby(keys, sort=False)[[x, y]].mean().reset_index().dropna(subset=[x, y])
    fig = Figure(figsize=(5, 4), layout="constrained")
    with sns.axes_style("whitegrid"):
        ax = fig.subplots()
    if len(points):
        sns.scatterplot(data=points, x=x, y=y, hue=hue, style=hue, s=70, ax=ax)
    for name, part in points.groupby(label, sort=False):
        ax.hlines(part[y].mean(), part[x].min(), part[x].max(), color="0.75", lw=1, zorder=0)
        ax.annotate(str(name), (part[x].max(), part[y].mean()), xytext=(6, -3), textcoords="offset points",
                    fontsize=8)
    ax.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "), title="map quality vs diagnosis")
    return fig


__all__ = ["plot_forest", "plot_map_vs_diagnosis", "plot_roc_pair"]
