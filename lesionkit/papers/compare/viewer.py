"""Side by side: several models' maps of the same test images, one cell per model ("entry").

A comparison notebook stores, per entry, an :class:`AttributionStore` of the SAME images in the same order
(``lesionkit.attribution.explain_rows`` into ``<run>/maps/<entry>/``). :func:`compare_viewer` shows them: live, a
:class:`CompareViewer` (image slider, method, opacity, colormap; each cell the entry's overlay with its prediction);
headless (papermill, nbconvert, pytest), a static Figure, images × entries. ipywidgets is imported only when live.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lesionkit.attribution.figures import overlay
from lesionkit.attribution.precompute import AttributionStore, load_attributions
from lesionkit.attribution.viewer import COLORMAPS, _outline, _png, has_live_frontend


def _load(stores: Mapping[str, AttributionStore | str | Path]) -> dict[str, AttributionStore]:
    """Stores by entry (run folders are loaded), checked to hold the same image_ids in the same order."""
    if not stores:
        raise ValueError("compare_viewer needs at least one entry: pass {entry: AttributionStore or run folder}")
    out = {str(k): v if isinstance(v, AttributionStore) else load_attributions(v) for k, v in stores.items()}
    (ref_name, ref), *rest = out.items()
    ref_ids = [str(i) for i in ref.index["image_ids"]]
    for name, store in rest:
        ids = [str(i) for i in store.index["image_ids"]]
        if ids == ref_ids:
            continue
        if len(ids) != len(ref_ids):
            how = f"has {len(ids)} images, entry {ref_name!r} has {len(ref_ids)}"
        elif sorted(ids) == sorted(ref_ids):
            k = next(j for j, (a, b) in enumerate(zip(ids, ref_ids)) if a != b)
            how = f"has the same image_ids in a different order (position {k}: {ids[k]!r}, not {ref_ids[k]!r})"
        else:
            missing = [i for i in ref_ids if i not in set(ids)][:5]
            extra = [i for i in ids if i not in set(ref_ids)][:5]
            how = f"has other image_ids than entry {ref_name!r} (missing {missing}, extra {extra})"
        raise ValueError(f"entry {name!r} {how}: every entry must explain the same test images in the same order")
    return out


def _methods(stores: Mapping[str, AttributionStore]) -> tuple[list[str], list[str]]:
    """(methods of ANY store in first-seen order, methods EVERY store has)."""
    union = list(dict.fromkeys(m for s in stores.values() for m in s.methods))
    return union, [m for m in union if all(m in s.maps for s in stores.values())]


def _default_method(stores: Mapping[str, AttributionStore], method: str | None) -> str:
    union, common = _methods(stores)
    if method is None:
        return (common or union)[0]
    if method not in union:
        raise ValueError(f"no entry has {method!r} maps; methods available: {union}")
    return method


def _verdict(store: AttributionStore, i: int) -> tuple[str, float | None, str]:
    """(predicted class name, probability of the true class or None without labels, ✓/✗ or '')."""
    pred = int(store.preds[i])
    name = store.classes[pred] if pred < len(store.classes) else str(pred)
    if store.labels is None:
        return name, None, ""
    y, p = int(store.labels[i]), store.probs[i]
    p_true = float(p[y]) if len(p) > 1 else float(p[0] if y == 1 else 1 - p[0])
    return name, p_true, "✓" if pred == y else "✗"


def _true_label(store: AttributionStore, i: int) -> str:
    if store.labels is None:
        return "?"
    y = int(store.labels[i])
    return store.classes[y] if y < len(store.classes) else str(y)


def _cell_rgb(store: AttributionStore, method: str, i: int, opacity: float, cmap: str) -> np.ndarray:
    """The entry's overlay of ``method`` (its predicted class, target slot 0), mask outlined in white if any."""
    rgb = overlay(store.images[i], store.maps[method][i, 0].astype(np.float32), alpha=opacity, cmap=cmap)
    if store.masks is not None:
        rgb[_outline(store.masks[i])] = (255, 255, 255)
    return rgb


class CompareViewer:
    """One row of cells, one per entry, for the image under the slider: each entry's overlay of the chosen method
    with its predicted class, its probability for the true class and ✓/✗; "no <method> map" where it lacks one."""

    def __init__(self, stores: Mapping[str, AttributionStore | str | Path], method: str | None = None,
                 cmap: str = "jet", opacity: float = 0.5):
        import ipywidgets as W

        self.stores = _load(stores)
        self.ref = next(iter(self.stores.values()))
        union, _ = _methods(self.stores)
        self.index = W.IntSlider(value=0, min=0, max=max(len(self.ref) - 1, 0), description="image",
                                 continuous_update=True)
        self.method = W.Dropdown(options=union, value=_default_method(self.stores, method), description="method")
        self.opacity = W.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="opacity")
        self.cmap = W.Dropdown(options=list(dict.fromkeys([cmap, *COLORMAPS])), value=cmap, description="colormap")
        self.caption = W.HTML()
        self.headers: dict[str, Any] = {}
        self.images: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.cells: dict[str, Any] = {}
        for name in self.stores:
            self.headers[name] = W.HTML()
            self.images[name] = W.Image(format="png", layout=W.Layout(width="240px"))
            self.notes[name] = W.HTML(layout=W.Layout(width="240px", height="240px"))
            self.cells[name] = W.VBox([self.headers[name], self.images[name]],
                                      layout=W.Layout(margin="0 8px 0 0"))
            self.cells[name].add_class("lesionkit-compare-cell")
        for control in (self.index, self.method, self.opacity, self.cmap):
            control.observe(self._render, names="value")
        self.widget = W.VBox([
            W.HBox([W.VBox([self.index, self.method]), W.VBox([self.opacity, self.cmap])]),
            self.caption,
            W.HBox(list(self.cells.values())),
        ])
        self.widget.add_class("lesionkit-compare")
        self._render()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    def _render(self, _change: Any = None) -> None:
        i, method = self.index.value, self.method.value
        ident = self.ref.index["image_ids"][i]
        self.caption.value = (f"<b>{html.escape(str(ident))}</b> &nbsp; true <b>"
                              f"{html.escape(_true_label(self.ref, i))}</b> &nbsp; method {html.escape(method)}")
        for name, store in self.stores.items():
            pred, p_true, mark = _verdict(store, i)
            p = "" if p_true is None else f" &nbsp; p(true) {p_true:.3f}"
            self.headers[name].value = (f"<b>{html.escape(name)}</b><br>pred {html.escape(pred)}{p} {mark}")
            if method in store.maps:
                self.images[name].value = _png(_cell_rgb(store, method, i, self.opacity.value, self.cmap.value))
                children = (self.headers[name], self.images[name])
            else:
                self.notes[name].value = f"<i>no {html.escape(method)} map</i>"
                children = (self.headers[name], self.notes[name])
            if self.cells[name].children != children:
                self.cells[name].children = children


def plot_compare_grid(stores: Mapping[str, AttributionStore | str | Path], method: str | None = None,
                      n_images: int = 4, cmap: str = "jet", opacity: float = 0.5, cell: float = 2.2) -> Any:
    """Static comparison: rows = the first ``n_images`` images, columns = entries, each cell the entry's overlay
    of ``method`` (default: the first method every entry has) titled with its prediction. Returns the Figure."""
    from lesionkit.viz.figure import Figure

    stores = _load(stores)
    method = _default_method(stores, method)
    ref = next(iter(stores.values()))
    n = max(1, min(int(n_images), len(ref)))
    fig = Figure(figsize=(cell * len(stores), cell * n + 0.5), layout="constrained")
    axes = fig.subplots(n, len(stores), squeeze=False)
    for i in range(min(n, len(ref))):
        for j, (name, store) in enumerate(stores.items()):
            ax = axes[i, j]
            pred, p_true, mark = _verdict(store, i)
            title = f"{name}: {pred}" + ("" if p_true is None else f" p(true) {p_true:.2f} {mark}")
            if j == 0:
                title = f"{ref.index['image_ids'][i]} (true {_true_label(ref, i)})\n{title}"
            ax.set_title(title, fontsize=7, loc="left")
            if method in store.maps:
                ax.imshow(_cell_rgb(store, method, i, opacity, cmap))
            else:
                ax.text(0.5, 0.5, f"no {method} map", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"{method} maps of each entry's predicted class", fontsize=9)
    return fig


def compare_viewer(stores: Mapping[str, AttributionStore | str | Path], method: str | None = None, *,
                   n_images: int = 4, interactive: bool | None = None, cmap: str = "jet",
                   opacity: float = 0.5) -> CompareViewer | Any:
    """The entries' maps side by side. ``stores`` maps entry names to stores or run folders (loaded with
    :func:`load_attributions`). ``interactive=None`` decides from the environment (:func:`has_live_frontend`):
    live, a :class:`CompareViewer`; headless, the static Figure of :func:`plot_compare_grid` (not saved: the caller
    saves it) and never waits for a frontend."""
    loaded = _load(stores)
    live = has_live_frontend() if interactive is None else bool(interactive)
    if not live:
        return plot_compare_grid(loaded, method, n_images=n_images, cmap=cmap, opacity=opacity)
    return CompareViewer(loaded, method=method, cmap=cmap, opacity=opacity)


__all__ = ["CompareViewer", "compare_viewer", "plot_compare_grid"]
