"""Shared fixtures: the real data in ../shared/data (skipped when absent) and a small synthetic set."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# pytest-xdist runs one worker per core: one BLAS/OpenMP thread each, or the workers (and the notebook kernels they
# start, which inherit this environment) oversubscribe the cores and OpenMP's spin-waits slow everything down badly.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real datasets, given at run time through LESIONKIT_DATA (the Makefile points it at ../shared/data)."""
    value = os.environ.get("LESIONKIT_DATA")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("real data absent: set LESIONKIT_DATA to the shared data folder (make test does)")
    return path


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dermoscopy set (64 px), generated once per test session."""
    from lesionkit.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synthetic"), n_lesions=60, size=64, seed=0)


def max_drop_path(model) -> float:
    """The deepest block's stochastic-depth rate (timm scales it with depth up to drop_path_rate)."""
    from timm.layers import DropPath

    return max((m.drop_prob for m in model.modules() if isinstance(m, DropPath)), default=0.0)
