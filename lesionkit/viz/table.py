"""Tables that a notebook shows with fixed decimals: pandas switches a whole column to scientific notation
(``8.511905e-01``) as soon as one value in it is tiny or huge; a metric table reads better as 0.8512."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd


def fixed_decimals(x: Any, decimals: int = 4) -> str:
    """``x`` with ``decimals`` places; whole numbers from 1000 up (parameter counts, images) with thousands
    separators and no decimals."""
    if isinstance(x, float) and math.isfinite(x) and x.is_integer() and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{decimals}f}"


class FixedTable(pd.DataFrame):
    """A DataFrame whose text and HTML views print floats with :func:`fixed_decimals` (its values stay exact, and
    what is derived from it is a plain DataFrame again)."""

    def __repr__(self) -> str:
        return self.to_string(float_format=fixed_decimals)

    def _repr_html_(self) -> str:
        return self.to_html(float_format=fixed_decimals, notebook=True)
