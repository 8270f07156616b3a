"""Opt-in recording of an attention layer's map, so models can return native maps without hooks."""
from __future__ import annotations

import torch


class RecordsMap:
    """Mixin: when ``record`` is True, ``forward`` stores its (detached) attention map in ``last_map``."""

    record: bool = False
    last_map: torch.Tensor | None = None

    def _keep(self, attention: torch.Tensor) -> None:
        if self.record:
            self.last_map = attention.detach()
