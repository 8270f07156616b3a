"""Maps precomputed and stored with a run; the static grid; the viewer's widgets without a browser."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.attribution import AttributionsNotFoundError, load_attributions
from lesionkit.testing import tiny_attribution_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_attribution_run(tmp_path_factory.mktemp("run"), synthetic_dir,
                                method_kw={"integrated_gradients": {"n_steps": 4}})


def test_store_round_trip(run_dir: Path) -> None:
    store = load_attributions(run_dir)
    index = json.loads((run_dir / "attributions.json").read_text())
    assert store.methods == ["gradcam", "gradcam++", "integrated_gradients"] == index["methods"]
    assert store.images.shape == (8, 64, 64, 3) and store.images.dtype == np.uint8
    assert store.maps["gradcam"].shape == (8, 3, 64, 64)  # top-3 target classes per image
    assert store.masks is not None and store.masks.shape == (8, 64, 64)
    targets, labels, preds = store.targets, store.labels, store.preds
    assert (targets[:, 0] == preds).all()  # slot 0 explains the predicted class
    assert all(y in row for y, row in zip(labels, targets))  # the true class is always among the targets
    assert np.allclose(store.probs.sum(1), 1, atol=1e-4)
    assert np.abs(store.maps["integrated_gradients"]).max() == pytest.approx(1.0, abs=1e-3)
    scores = pd.read_csv(run_dir / "attribution_scores.csv")
    assert len(scores) == 8 * 3 and {"pointing_game", "iou", "overlap", "mass_inside"} <= set(scores.columns)


def test_select_filters(run_dir: Path) -> None:
    store = load_attributions(run_dir)
    correct = store.select(correct=True)
    wrong = store.select(correct=False)
    assert sorted(correct + wrong) == list(range(8))
    cls = int(store.labels[0])
    assert store.select(cls=store.classes[cls]) == [i for i in range(8) if store.labels[i] == cls]
    top = store.probs.max(1)
    assert store.select(confidence=(float(np.median(top)), 1.0)) == [i for i in range(8) if top[i] >= np.median(top)]


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AttributionsNotFoundError, match="precompute_attributions"):
        load_attributions(tmp_path)


def test_headless_viewer_draws_and_saves_the_static_grid(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from lesionkit.attribution.viewer import has_live_frontend, viewer

    monkeypatch.setenv("LESIONKIT_HEADLESS", "1")
    assert has_live_frontend() is False
    fig = viewer(run_dir)  # interactive=None: decided from the environment, here headless
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8 * (1 + 3)  # images x (image + 3 methods)
    assert (run_dir / "figures" / "attribution_grid.png").stat().st_size > 10_000


def test_widget_viewer_updates_on_every_control(run_dir: Path) -> None:
    pytest.importorskip("ipywidgets")
    from lesionkit.attribution.viewer import AttributionViewer, viewer

    v = viewer(run_dir, interactive=True)
    assert isinstance(v, AttributionViewer)
    seen = {v.image.value}
    v.index.value = 1
    seen.add(v.image.value)
    v.method.value = "integrated_gradients"
    seen.add(v.image.value)
    v.target.value = 1
    seen.add(v.image.value)
    v.opacity.value = 0.9
    seen.add(v.image.value)
    v.cmap.value = "viridis"
    seen.add(v.image.value)
    assert len(seen) == 6  # every control changed the picture
    assert "class probabilities" in v.probs.value and v.store.classes[v.store.preds[v.current]] in v.probs.value
    v.correct.value = "wrong"
    assert v.selection == v.store.select(correct=False) and v.index.max == max(len(v.selection) - 1, 0)
    v.confidence.value = (0.99, 1.0)
    assert v.selection == [] and "no image matches" in v.caption.value
