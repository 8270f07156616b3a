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


def test_one_logit_model_is_stored_and_shown_as_two_named_classes(tmp_path: Path) -> None:
    """A binary model's one logit is P(classes[1]): the store holds [P(rest), P(mel)], the viewer names P(mel) as
    mel and offers both targets, the predicted one first; an older one-column store reads the same way."""
    pytest.importorskip("ipywidgets")
    from torch import nn

    from lesionkit.attribution import precompute_attributions
    from lesionkit.attribution.viewer import AttributionViewer

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1)).eval()
    x = torch.randn(4, 3, 32, 32)
    precompute_attributions(net, x, ["gradcam", "integrated_gradients"], tmp_path, classes=["rest", "mel"],
                            labels=[1, 0, 1, 0], targets="pred", method_kw={"integrated_gradients": {"n_steps": 4}})
    store = load_attributions(tmp_path)
    with torch.no_grad():
        p_mel = torch.sigmoid(net(x))[:, 0].numpy()
    np.testing.assert_allclose(store.probs, np.stack([1 - p_mel, p_mel], axis=1), atol=1e-5)
    assert store.preds.tolist() == (p_mel > 0.5).astype(int).tolist()
    assert store.targets.tolist() == [[p, 1 - p] for p in store.preds.tolist()]  # both, the predicted first
    assert not np.allclose(store.maps["gradcam"][:, 0], store.maps["gradcam"][:, 1])  # the rest's map is its own

    v = AttributionViewer(store)
    pred = store.classes[store.preds[v.current]]
    other = ({"rest", "mel"} - {pred}).pop()
    assert [label for label, _ in v.target.options] == [f"{pred} (predicted)", other]
    assert "mel</td>" in v.probs.value.replace(" ✓", "") and f"{p_mel[v.current]:.3f}" in v.probs.value

    index = json.loads((tmp_path / "attributions.json").read_text())
    index["probs"] = [[p] for p in p_mel.round(6).tolist()]  # how an older store kept a one-logit model
    index["targets"] = [[0] for _ in p_mel]
    (tmp_path / "attributions.json").write_text(json.dumps(index))
    old = load_attributions(tmp_path)
    np.testing.assert_allclose(old.probs[:, 1], p_mel, atol=1e-5)
    assert old.targets.tolist() == [[1]] * len(p_mel)
