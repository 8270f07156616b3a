"""lesionkit.papers.compare.figures: forest plot of compare_to_reference rows and map quality vs diagnosis scatter."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from lesionkit.metrics import balanced_accuracy
from lesionkit.metrics.paired import compare_to_reference
from lesionkit.papers.compare.figures import plot_forest, plot_map_vs_diagnosis, plot_roc_pair


def _render(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    fig.savefig(io.BytesIO(), format="png")  # a real Agg draw: layout and text errors only show up here


def _points(ax) -> list[np.ndarray]:
    return [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)

    def model(strength):
        logits = rng.normal(size=(150, 3)) + strength * np.eye(3)[y]
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    probs = {"ref": model(1.0), "strong": model(3.0), "same": model(1.0), "weak": model(0.3)}
    metrics = {"bma": balanced_accuracy, "top_prob": lambda y, p: float(p[np.arange(len(y)), y].mean())}
    return compare_to_reference(y, probs, "ref", metrics, n_boot=400)  # p floor 2/401, x6 (holm) < 0.05


def test_forest_one_panel_per_metric_and_a_point_and_bar_per_entry(table):
    fig = plot_forest(table)
    _render(fig)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["bma", "top_prob"]
    for ax, (m, sub) in zip(panels, table.groupby("metric", sort=False)):
        filled, hollow = _points(ax)
        assert len(filled) == sub["significant"].sum() and len(filled) + len(hollow) == 3
        np.testing.assert_allclose(sorted(np.r_[filled[:, 0], hollow[:, 0]]), sorted(sub["diff"]))
        bars = [c for c in ax.collections if isinstance(c, LineCollection)][0]
        assert len(bars.get_segments()) == 3
        assert [t.get_text() for t in ax.get_yticklabels()] == list(sub["entry"])
        assert sorted(t.get_text() for t in ax.texts) == sorted(f"p_adj = {p:.3g}" for p in sub["p_adjusted"])
        assert any(line.get_xdata()[0] == 0 for line in ax.lines)  # the zero line
    strong = table[(table["entry"] == "strong") & (table["metric"] == "bma")].iloc[0]
    assert strong["significant"]  # the construction makes it significant, so a filled marker is tested above
    filled_c, hollow_c = (c for c in panels[0].collections if isinstance(c, PathCollection))
    assert tuple(filled_c.get_facecolor()[0][:3]) != (1.0, 1.0, 1.0)
    assert all(tuple(fc[:3]) == (1.0, 1.0, 1.0) for fc in hollow_c.get_facecolor())


def test_forest_single_metric_and_nan_rows(table):
    one = plot_forest(table, metric="bma")
    _render(one)
    assert len([ax for ax in one.axes if ax.get_title()]) == 1
    broken = table.copy()
    broken.loc[0, ["diff", "ci_low", "ci_high", "p_value", "p_adjusted"]] = np.nan
    broken.loc[0, "significant"] = False
    fig = plot_forest(broken, metric="bma")
    _render(fig)
    filled, hollow = _points(fig.axes[0])
    assert np.isfinite(np.r_[filled[:, 0], hollow[:, 0]]).sum() == 2
    assert "p_adj = n/a" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="not in the table"):
        plot_forest(table, metric="nope")


def test_map_vs_diagnosis_one_point_per_entry_and_method_one_label_per_entry():
    rows = []
    for entry, bma in (("ref", 0.6), ("arl", 0.7), ("se_lcn", 0.65)):
        for method, mass in (("gradcam", 0.5), ("attention", 0.4)):
            rows += [{"entry": entry, "method": method, "mass_inside": mass + d, "bma": bma} for d in (-0.1, 0.1)]
    rows.append({"entry": "broken", "method": "gradcam", "mass_inside": np.nan, "bma": 0.5})
    df = pd.DataFrame(rows)
    fig = plot_map_vs_diagnosis(df)
    _render(fig)
    ax = fig.axes[0]
    offsets = np.concatenate(_points(ax))
    assert len(offsets) == 6  # 3 entries x 2 methods; repeats averaged, the NaN entry left out
    np.testing.assert_allclose(sorted(offsets[:, 0]), [0.4] * 3 + [0.5] * 3)
    assert sorted(t.get_text() for t in ax.texts) == sorted(["ref", "arl", "se_lcn"])
    assert all(t.xy[0] == 0.5 for t in ax.texts)  # right of each entry's best map
    assert ax.get_legend() is not None and ax.get_xlabel() == "mass inside"
    with pytest.raises(ValueError, match="lacks column"):
        plot_map_vs_diagnosis(df, y="auc")
    _render(plot_map_vs_diagnosis(df.assign(bma=np.nan)))  # nothing to plot: still a figure


def test_plot_roc_pair_still_works():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    fig = plot_roc_pair(y, {"a": y + rng.normal(size=80), "b": rng.normal(size=80)})
    _render(fig)
    assert len(fig.axes[0].lines) == 3
