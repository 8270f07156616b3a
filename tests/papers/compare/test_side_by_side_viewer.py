"""The side-by-side viewer: several entries' stores of the same images, live widget and static figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lesionkit.attribution import AttributionStore, load_attributions, precompute_attributions

torch.set_num_threads(1)
CLASSES = ["MEL", "NV", "BKL"]
IDS = ["img_a", "img_b", "img_c"]


def _tiny_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, len(CLASSES))).eval()


def _store(root: Path, seed: int, methods: list[str], ids: list[str] = IDS) -> AttributionStore:
    g = torch.Generator().manual_seed(0)  # the same images for every entry
    x = torch.randn(len(ids), 3, 32, 32, generator=g)
    masks = np.zeros((len(ids), 32, 32), bool)
    masks[:, 8:24, 8:24] = True
    out = root / f"entry{seed}_{'_'.join(ids)}"
    precompute_attributions(_tiny_net(seed), x, methods, out, classes=CLASSES, labels=[0, 1, 2][:len(ids)],
                            image_ids=ids, masks=masks, targets="pred", model_name=f"net{seed}",
                            method_kw={"occlusion": {"window": 8, "stride": 8}})
    return load_attributions(out)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AttributionStore]:
    root = tmp_path_factory.mktemp("compare")
    return {"alpha": _store(root, 1, ["gradcam", "occlusion"]), "beta": _store(root, 2, ["gradcam"]),
            "gamma": _store(root, 3, ["gradcam", "occlusion"])}


def _expected_header(store: AttributionStore, i: int) -> tuple[str, str, str]:
    pred = CLASSES[int(store.preds[i])]
    p_true = f"{store.probs[i, int(store.labels[i])]:.3f}"
    return pred, p_true, "✓" if store.preds[i] == store.labels[i] else "✗"


def test_static_figure_is_images_by_entries(stores: dict[str, AttributionStore],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from lesionkit.papers.compare.viewer import compare_viewer

    monkeypatch.setenv("LESIONKIT_HEADLESS", "1")
    fig = compare_viewer(stores, n_images=2)  # interactive=None: headless here
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 2
    assert "gradcam" in fig._suptitle.get_text()  # the first method every entry has
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("img_a (true MEL)") and titles[1].startswith("beta: ")
    fig = compare_viewer({k: s.run_dir for k, s in stores.items()}, method="occlusion", interactive=False)
    assert len(fig.axes) == 3 * 3  # n_images=4 capped at the 3 images; run folders loaded
    assert any(t.get_text() == "no occlusion map" for t in fig.axes[1].texts)  # beta has no occlusion


def test_widget_rerenders_every_entry_on_slider_and_method(stores: dict[str, AttributionStore]) -> None:
    pytest.importorskip("ipywidgets")
    from lesionkit.papers.compare.viewer import CompareViewer, compare_viewer

    v = compare_viewer(stores, interactive=True)
    assert isinstance(v, CompareViewer) and "application/vnd.jupyter.widget-view+json" in v._repr_mimebundle_()
    assert list(v.method.options) == ["gradcam", "occlusion"] and v.method.value == "gradcam"
    seen = {name: {v.images[name].value} for name in stores}
    for i in (0, 1, 2):
        v.index.value = i
        assert IDS[i] in v.caption.value and f"true <b>{CLASSES[i]}</b>" in v.caption.value
        for name, store in stores.items():
            header = v.headers[name].value
            pred, p_true, mark = _expected_header(store, i)
            assert name in header and f"pred {pred}" in header and p_true in header and header.endswith(mark)
            assert v.cells[name].children[1] is v.images[name]
            seen[name].add(v.images[name].value)
    assert all(len(pngs) == 3 for pngs in seen.values())  # a new overlay per image, in every cell
    before = {name: v.images[name].value for name in stores}
    v.method.value = "occlusion"
    assert v.images["alpha"].value != before["alpha"] and v.images["gamma"].value != before["gamma"]
    assert v.cells["beta"].children[1] is v.notes["beta"] and "no occlusion map" in v.notes["beta"].value
    v.opacity.value = 0.9
    v.cmap.value = "viridis"
    v.method.value = "gradcam"
    assert v.cells["beta"].children[1] is v.images["beta"]
    assert v.images["beta"].value != before["beta"]  # opacity and colormap reached the cell
    with pytest.raises(ValueError, match="no entry has 'native' maps"):
        CompareViewer(stores, method="native")


def test_mismatched_image_ids_name_the_entry(stores: dict[str, AttributionStore], tmp_path: Path) -> None:
    from lesionkit.papers.compare.viewer import compare_viewer

    other = _store(tmp_path, 4, ["gradcam"], ids=["img_a", "img_x", "img_c"])
    with pytest.raises(ValueError, match=r"entry 'odd' has other image_ids than entry 'alpha'.*'img_x'"):
        compare_viewer({"alpha": stores["alpha"], "odd": other}, interactive=False)
    reordered = _store(tmp_path, 4, ["gradcam"], ids=["img_b", "img_a", "img_c"])
    with pytest.raises(ValueError, match=r"entry 'swapped' has the same image_ids in a different order"):
        compare_viewer({"alpha": stores["alpha"], "swapped": reordered}, interactive=False)
    short = _store(tmp_path, 4, ["gradcam"], ids=["img_a", "img_b"])
    with pytest.raises(ValueError, match=r"entry 'short' has 2 images, entry 'alpha' has 3"):
        compare_viewer({"alpha": stores["alpha"], "short": short}, interactive=False)
