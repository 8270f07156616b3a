"""The one "explain these test rows" step every paper notebook ends with: inputs for the rows, maps of the
predicted class by each method, stored in a run folder (the viewer's layout) and read back.
Imports marked `# lazy` (fastai.vision loaders, the map store) load only when maps are computed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


def explain_rows(model: Any, ds: Any, idx: Sequence[int], methods: Sequence[str], out_dir: str | Path, *,
                 size: int | tuple[int, int] | None = None, norm: Any = None, dls: Any = None,
                 masks: np.ndarray | None = None, model_name: str = "", batch_size: int = 8,
                 method_kw: dict[str, dict[str, Any]] | None = None, **attr_kw: Any) -> Any:
    """Attribution maps of ``model`` for dataset rows ``idx`` (targets: its predicted class), stored in ``out_dir``.

    Inputs are the whole images at ``size`` normalised with ``norm`` (``lesionkit.data.tasks.model_inputs``) or, with
    ``dls``, the rows through the training loaders' test pipeline, where a second input (metadata, a CAM channel)
    is passed along to the model and not attributed. ``attr_kw`` go to every ``attribute`` call. Returns the
    :class:`AttributionStore`.
    """
    from lesionkit.attribution.precompute import load_attributions, precompute_attributions  # lazy
    from lesionkit.data.loaders import test_dl  # lazy
    from lesionkit.data.tasks import model_inputs  # lazy

    idx = np.asarray(idx, dtype=int)
    extra = None
    if dls is not None:
        batch = next(iter(test_dl(dls, ds, idx, bs=len(idx))))
        images, extra = batch[0], (batch[1] if len(batch) > 2 else None)
    else:
        images = model_inputs(ds, idx, size, norm=norm)
    precompute_attributions(model, images, list(methods), out_dir, classes=ds.classes,
                            labels=ds.df["label_idx"].to_numpy()[idx], image_ids=ds.df["image_id"].iloc[idx].tolist(),
                            meta=extra, masks=masks, targets="pred", batch_size=batch_size, model_name=model_name,
                            method_kw=method_kw or {}, **attr_kw)
    return load_attributions(out_dir)
