"""Mean ± std over cross-validation folds, the way Gessert et al. and SE-LCN report their fold models."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def mean_std(values: ArrayLike, ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of per-fold values (``ddof=0`` is numpy's default, which both papers use)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    if np.isnan(v).any():
        raise ValueError(f"per-fold values contain NaN at positions {np.flatnonzero(np.isnan(v)).tolist()}")
    return float(v.mean()), float(v.std(ddof=ddof)) if v.size > ddof else float("nan")


def fold_summary(df: pd.DataFrame, by: str | Sequence[str] = "model", metrics: Sequence[str] | None = None,
                 ddof: int = 0) -> pd.DataFrame:
    """One row per ``by`` group with ``<metric>_mean`` and ``<metric>_std`` per metric column of a per-fold table."""
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in keys + list(metrics or []) if c not in df.columns]
    if missing:
        raise ValueError(f"fold table has no column(s) {missing}; columns are {list(df.columns)}")
    cols = list(metrics) if metrics is not None else [c for c in df.select_dtypes("number").columns
                                                      if c not in keys and c != "fold"]
    out = df.groupby(keys, sort=False)[cols].agg([("mean", "mean"), ("std", lambda s: s.std(ddof=ddof))])
    out.columns = [f"{m}_{stat}" for m, stat in out.columns]
    return out.reset_index()
