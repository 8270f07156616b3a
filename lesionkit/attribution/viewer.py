"""The ipywidgets attribution viewer. Import is lazy (``lesionkit.viewer``), so headless code never loads ipywidgets.

The viewer pages through maps precomputed with the run (:func:`lesionkit.attribution.precompute_attributions`), so
every slider move is a PNG render, never a Captum call. Under papermill, nbconvert or plain Python there is no live
frontend to talk to: ``viewer`` then draws the static grid instead (and saves it), and never waits for input.
"""
from __future__ import annotations

import html
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from lesionkit.attribution.figures import overlay, plot_store_grid, save_figure
from lesionkit.attribution.precompute import AttributionStore, load_attributions

COLORMAPS = ("jet", "turbo", "viridis", "magma", "inferno", "hot", "coolwarm")
_BATCH_EXECUTORS = ("papermill", "nbconvert", "nbclient", "pytest", "voila-render")


def _parent_program() -> str:
    """The kernel's parent process: interpreter, script and first argument (``python -m papermill``), not its
    later arguments, which can name any path (a pytest temp dir, say)."""
    try:
        args = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")[:3]
    except OSError:
        return ""
    return " ".join(Path(a.decode(errors="replace")).name for a in args)


def has_live_frontend() -> bool:
    """True inside a Jupyter kernel that a person is driving: not under papermill/nbconvert/pytest (the kernel's
    parent process says which), not in plain Python, and not when ``LESIONKIT_HEADLESS`` is set."""
    if os.environ.get("LESIONKIT_HEADLESS", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return False
    parent = _parent_program().lower()
    return not any(name in parent for name in _BATCH_EXECUTORS)


def _png(rgb: np.ndarray, min_side: int = 256) -> bytes:
    from PIL import Image

    img = Image.fromarray(rgb)
    scale = max(1, int(np.ceil(min_side / min(img.size))))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _outline(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    return m & ~inner


class AttributionViewer:
    """Widget over an :class:`AttributionStore`: filters (class, correct/wrong, confidence), image slider, method,
    target class, opacity, colormap; the image and its overlay side by side, class probabilities beside them."""

    def __init__(self, store: AttributionStore, method: str | None = None, cmap: str = "jet", opacity: float = 0.5):
        import ipywidgets as W

        self.store = store
        classes = store.classes
        self.class_filter = W.Dropdown(options=[("all", -1)] + [(c, i) for i, c in enumerate(classes)], value=-1,
                                       description="class")
        self.correct = W.ToggleButtons(options=["all", "correct", "wrong"], value="all", description="prediction",
                                       disabled=store.labels is None, style={"button_width": "70px"})
        self.confidence = W.FloatRangeSlider(value=(0.0, 1.0), min=0.0, max=1.0, step=0.05, description="confidence",
                                             readout_format=".2f")
        self.index = W.IntSlider(value=0, min=0, max=max(len(store) - 1, 0), description="image",
                                 continuous_update=True)
        self.method = W.Dropdown(options=store.methods, value=method or store.methods[0], description="method")
        self.target = W.Dropdown(options=[("predicted", 0)], value=0, description="target")
        self.opacity = W.FloatSlider(value=opacity, min=0.0, max=1.0, step=0.05, description="opacity")
        self.cmap = W.Dropdown(options=list(COLORMAPS), value=cmap, description="colormap")
        self.show_mask = W.Checkbox(value=store.masks is not None, description="mask outline",
                                    disabled=store.masks is None)
        self.image = W.Image(format="png", layout=W.Layout(width="520px"))
        self.probs = W.HTML()
        self.caption = W.HTML()
        self.selection: list[int] = store.select()
        for control in (self.class_filter, self.correct, self.confidence):
            control.observe(self._on_filter, names="value")
        self.index.observe(self._on_image, names="value")
        for control in (self.method, self.target, self.opacity, self.cmap, self.show_mask):
            control.observe(self._render, names="value")
        filters = W.VBox([self.class_filter, self.correct, self.confidence])
        display = W.VBox([self.index, self.method, self.target, self.opacity, self.cmap, self.show_mask])
        self.widget = W.VBox([
            W.HBox([filters, display]),
            W.HBox([self.image, self.probs]),
            self.caption,
        ])
        self.widget.add_class("lesionkit-viewer")
        self._on_image()

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)

    # --- callbacks -------------------------------------------------------------------------------------------------
    def _on_filter(self, _change: Any = None) -> None:
        cls = None if self.class_filter.value == -1 else self.class_filter.value
        correct = {"all": None, "correct": True, "wrong": False}[self.correct.value]
        self.selection = self.store.select(cls=cls, correct=correct, confidence=tuple(self.confidence.value))
        with self.index.hold_trait_notifications():
            self.index.max = max(len(self.selection) - 1, 0)
            self.index.value = 0
        self._on_image()

    def _on_image(self, _change: Any = None) -> None:
        if self.selection:
            i = self.current
            options = [(self._target_label(int(t), k), k) for k, t in enumerate(self.store.targets[i])]
            if self.target.options != tuple(options):
                self.target.unobserve(self._render, names="value")
                self.target.options = options
                self.target.value = 0
                self.target.observe(self._render, names="value")
        self._render()

    @property
    def current(self) -> int:
        """Index (into the store) of the image on screen."""
        return self.selection[min(self.index.value, len(self.selection) - 1)]

    def _target_label(self, cls: int, slot: int) -> str:
        name = self.store.classes[cls] if cls < len(self.store.classes) else str(cls)
        return f"{name} (predicted)" if slot == 0 else name

    def _render(self, _change: Any = None) -> None:
        if not self.selection:
            self.image.value = _png(np.full((64, 128, 3), 235, np.uint8))
            self.caption.value = "<b>no image matches the filter</b>"
            self.probs.value = ""
            return
        s, i = self.store, self.current
        cam = s.maps[self.method.value][i, self.target.value].astype(np.float32)
        base = s.images[i].copy()
        over = overlay(base, cam, alpha=self.opacity.value, cmap=self.cmap.value)
        if self.show_mask.value and s.masks is not None:
            edge = _outline(s.masks[i])
            base[edge] = over[edge] = (255, 255, 255)
        gap = np.full((base.shape[0], max(2, base.shape[1] // 32), 3), 255, np.uint8)
        self.image.value = _png(np.concatenate([base, gap, over], axis=1))
        self.probs.value = self._probs_html(i)
        ident = s.index["image_ids"][i]
        pred = s.classes[s.preds[i]]
        true = "?" if s.labels is None else s.classes[s.labels[i]]
        self.caption.value = (f"<b>{html.escape(str(ident))}</b> &nbsp; predicted <b>{html.escape(pred)}</b>, "
                              f"true <b>{html.escape(true)}</b> &nbsp; ({len(self.selection)} images match) "
                              f"&nbsp; method {html.escape(self.method.value)}")

    def _probs_html(self, i: int) -> str:
        s = self.store
        probs = s.probs[i]
        rows = []
        for c in np.argsort(-probs):
            name = s.classes[c] if c < len(s.classes) else str(c)
            mark = " ✓" if s.labels is not None and c == s.labels[i] else ""
            width = int(round(100 * probs[c]))
            rows.append(
                f"<tr><td style='padding-right:6px'>{html.escape(name)}{mark}</td>"
                f"<td style='width:120px'><div style='background:#4c72b0;height:10px;width:{width}%'></div></td>"
                f"<td style='padding-left:6px'>{probs[c]:.3f}</td></tr>")
        return "<b>class probabilities</b><table style='font-size:12px'>" + "".join(rows) + "</table>"


def viewer(
    run_dir: str | Path, *, interactive: bool | None = None, max_static: int = 8, save: bool = True, **kw: Any
) -> AttributionViewer | Any:
    """Open the viewer on a finished run's precomputed maps.

    ``interactive=None`` decides from the environment (:func:`has_live_frontend`). Headless, it draws the static
    grid of the first ``max_static`` images, saves it as ``figures/attribution_grid.png`` in the run and returns the
    Figure (which the notebook shows); it never waits for a frontend. Interactive, it saves the same figure and
    returns an :class:`AttributionViewer` (displayed as the cell's result).
    """
    store = load_attributions(run_dir)
    live = has_live_frontend() if interactive is None else bool(interactive)
    if save or not live:
        fig = plot_store_grid(store, store.select()[:max_static])
        if save:
            save_figure(fig, run_dir, "attribution_grid")
        if not live:
            return fig
    return AttributionViewer(store, **kw)
