"""lesionkit.viz.plots: each function returns a Figure whose drawn content reflects the data (not just "no crash")."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from lesionkit import metrics as M
from lesionkit.viz import plots

CLASSES = ["akiec", "bcc", "mel", "nv"]


@pytest.fixture(scope="module")
def multiclass():
    rng = np.random.default_rng(0)
    y = np.r_[np.arange(4), rng.integers(0, 4, 56)]
    logits = rng.normal(size=(60, 4)) + 2.0 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, probs


def _render(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # Agg render: catches layout/label errors that only appear when drawing


def test_confusion_matrix_is_row_normalised_and_titled_with_bma(multiclass):
    y, probs = multiclass
    fig = plots.plot_confusion_matrix(y, probs, CLASSES)
    _render(fig)
    ax = fig.axes[0]
    mesh = ax.collections[0].get_array().reshape(4, 4)
    np.testing.assert_allclose(mesh.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(mesh).mean(), M.balanced_accuracy(y, probs))
    assert f"{M.balanced_accuracy(y, probs):.3f}" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES


def test_roc_curves_shade_the_pauc_band_and_report_auc(multiclass):
    y, probs = multiclass
    fig = plots.plot_roc_curves(y, probs, CLASSES)
    _render(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    aucs, _ = M.auc_ovr(y, probs)
    assert labels[0] == "TPR ≥ 0.8"
    assert all(f"(AUC {a:.3f})" in lab for a, lab in zip(aucs, labels[1:]))
    band = ax.patches[0].get_path().get_extents().transformed(ax.patches[0].get_transform())
    low, high = ax.transData.inverted().transform(band)[:, 1]
    assert (low, high) == pytest.approx((0.8, 1.0))


def test_binary_roc_marks_the_operating_point():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.3, 0.8, 0.4, 0.9])
    fig = plots.plot_roc_curves(y, s, ["benign", "melanoma"])
    _render(fig)
    marker = [line for line in fig.axes[0].lines if line.get_marker() == "o"][0]
    sens, spec = M.sens_spec_at_threshold(y, s, 0.5)
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == pytest.approx((1 - spec, sens))


def test_pr_curves_report_average_precision(multiclass):
    y, probs = multiclass
    fig = plots.plot_pr_curves(y, probs, CLASSES)
    _render(fig)
    aps, _ = M.ap_ovr(y, probs)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"{c} (AP {a:.3f})" for c, a in zip(CLASSES, aps)]


def test_per_class_recall_bars_equal_recall(multiclass):
    y, probs = multiclass
    fig = plots.plot_per_class_recall(y, probs, CLASSES)
    _render(fig)
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, M.per_class_recall(y, M.predict_labels(probs), 4))


def test_reliability_diagram_bars_and_ece(multiclass):
    y, probs = multiclass
    fig = plots.plot_reliability(y, probs, n_bins=10)
    _render(fig)
    curve = M.reliability_curve(y, probs, 10)
    np.testing.assert_allclose([p.get_height() for p in fig.axes[0].patches], curve["accuracy"].fillna(0))
    assert f"ECE {M.expected_calibration_error(y, probs, 10):.3f}" in fig.axes[0].get_title()
    binary = plots.plot_reliability(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.9, 0.4]), n_bins=5)
    _render(binary)
    assert binary.axes[0].get_ylabel() == "fraction positive"


def test_history_splits_losses_and_metrics():
    hist = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [1.0, 0.8, 0.7], "valid_loss": [1.1, 0.9, 0.85],
                         "bma": [0.4, 0.5, 0.55], "time": ["00:01"] * 3})
    fig = plots.plot_history(hist)
    _render(fig)
    assert [ax.get_title() for ax in fig.axes] == ["losses", "metrics"]
    assert len(fig.axes[0].get_lines()) >= 2 and len(fig.axes[1].get_lines()) >= 1
    with pytest.raises(ValueError, match="empty"):
        plots.plot_history(hist.iloc[:0])


def test_history_keeps_lr_apart_and_stages_unaveraged():
    hist = pd.DataFrame({"stage": ["fold0"] * 2 + ["fold1"] * 2, "epoch": [0, 1, 0, 1],
                         "train_loss": [1.0, 0.8, 2.0, 1.6], "auc": [0.6, 0.7, 0.5, 0.9],
                         "lr": [1e-3, 1e-4, 1e-3, 1e-4]})
    fig = plots.plot_history(hist)
    _render(fig)
    assert [ax.get_title() for ax in fig.axes] == ["losses", "metrics", "learning rate"]
    assert fig.axes[2].get_yscale() == "log"
    metric_lines = [line for line in fig.axes[1].get_lines() if len(line.get_xdata()) == 2]
    ys = sorted(tuple(line.get_ydata()) for line in metric_lines)
    assert ys == [(0.5, 0.9), (0.6, 0.7)], "each fold is its own line, not the mean of the two"


def test_fold_comparison_mean_and_std():
    df = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "fold": [0, 1, 2] * 2,
                       "bma": [0.70, 0.72, 0.74, 0.60, 0.65, 0.70]})
    fig = plots.plot_fold_comparison(df)
    _render(fig)
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    np.testing.assert_allclose([b.get_height() for b in bars], [0.72, 0.65])
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.720±0.020", "0.650±0.050"]
    with pytest.raises(ValueError, match="no column 'auc'"):
        plots.plot_fold_comparison(df, metric="auc")


def test_figures_display_as_png_in_a_kernel_without_pyplot() -> None:
    """IPython's formatter asks for image/png; a bare matplotlib Figure only has one once pyplot set up its backend."""
    from io import BytesIO

    from IPython.core.formatters import DisplayFormatter
    from PIL import Image

    fig = plots.plot_history(pd.DataFrame({"epoch": [0, 1], "train_loss": [1.0, 0.5], "bma": [0.3, 0.4]}))
    data, _ = DisplayFormatter().format(fig)
    assert "image/png" in data
    assert Image.open(BytesIO(data["image/png"])).size[0] > 400  # the 3-panel history, drawn


def test_fixed_table_prints_fixed_decimals() -> None:
    from lesionkit.viz.table import FixedTable

    table = FixedTable({"metric": ["auc", "params", "lr"], "ours": [0.851190476, 23512130.0, 1e-4]})
    for shown in (repr(table), table._repr_html_()):
        assert "0.8512" in shown and "23,512,130" in shown and "0.0001" in shown and "e-0" not in shown
    assert table["ours"].iloc[0] == 0.851190476  # only the view is rounded
