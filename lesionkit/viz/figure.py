"""The Figure every lesionkit plot returns: matplotlib's own, plus the PNG that IPython asks a displayed object for.

A bare ``matplotlib.figure.Figure`` (built without pyplot, so that plots work headless, in threads and are freed by
garbage collection) shows in a kernel as the text ``<Figure size ... with 2 Axes>`` until something has imported
pyplot, which is what installs IPython's figure formatter. This subclass answers ``_repr_png_`` itself, so a
figure returned as a cell's value, or passed to ``display``, is drawn inline in JupyterLab and in papermill's
executed notebook either way (where pyplot's formatter is installed it takes precedence and also draws a PNG).
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure as _MatplotlibFigure


class Figure(_MatplotlibFigure):
    """A matplotlib Figure that displays as a PNG in Jupyter without pyplot."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()
