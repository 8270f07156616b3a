"""Figures that set models side by side on the same test rows."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def plot_roc_pair(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "melanoma vs rest, test rows") -> Any:
    """ROC curves of several models (label -> P(positive) on the same rows ``y``), AUC in the legend."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

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


__all__ = ["plot_roc_pair"]
