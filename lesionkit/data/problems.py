"""How a reader reports a table problem: raised at once in a run, or collected so `data check` lists them all."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Sequence

import numpy as np

from lesionkit.data.errors import DataError


def line_of(index_value: Any) -> str:
    """Row label for messages: readers keep read_csv's RangeIndex, so data row i is file line i + 2."""
    return f"line {int(index_value) + 2}" if isinstance(index_value, (int, np.integer)) else f"row {index_value!r}"


def listing(items: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


_COLLECT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("lesionkit_collect", default=None)


@contextlib.contextmanager
def collect_problems() -> Iterator[list[str]]:
    """Inside this block `finalize` records table problems in the yielded list and repairs instead of raising
    (duplicates: first row kept; bad labels and unsafe paths: row dropped; missing files: row kept), so
    `data check` can list every problem at once."""
    problems: list[str] = []
    token = _COLLECT.set(problems)
    try:
        yield problems
    finally:
        _COLLECT.reset(token)


def collecting() -> bool:
    """Whether a `collect_problems` block is open (readers then repair and go on instead of raising)."""
    return _COLLECT.get() is not None


def raise_or_collect(exc: DataError) -> None:
    sink = _COLLECT.get()
    if sink is None:
        raise exc
    sink.append(str(exc))
