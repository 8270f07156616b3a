"""Task views of a dataset: ISIC 2017 Part 3's melanoma-vs-rest from multiclass labels, and whole images as a
model input (what attribution methods take)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def one_vs_rest(ds: Any, positive: str = "mel", rest: str = "rest") -> Any:
    """A binary copy of a multiclass dataset: ``positive`` vs all other classes (classes [rest, positive], so index
    1 is positive, the LesionDataset convention): ISIC 2017 Part 3's melanoma task from HAM10000-style labels."""
    from .table import LesionDataset

    if positive not in ds.classes:
        raise ValueError(f"class {positive!r} is not in the dataset's classes {ds.classes}")
    df = ds.df.copy()
    df["label"] = np.where(df["label"] == positive, positive, rest)
    df["label_idx"] = (df["label"] == positive).astype(int)
    return LesionDataset(f"{ds.name}:{positive}-vs-{rest}", ds.root, df, [rest, positive], "binary",
                         {**ds.info, "source_classes": list(ds.classes)})


def model_inputs(ds: Any, idx: Sequence[int], size: int | tuple[int, int],
                 norm: tuple[Sequence[float], Sequence[float]] | None) -> torch.Tensor:
    """Whole images of rows ``idx`` as a model input (N, 3, H, W), resized (squish) and normalised (None: [0, 1]):
    what attribution methods take (patch models cut their patches from it themselves)."""
    from PIL import Image

    from .images import load_rgb

    h, w = (size, size) if isinstance(size, int) else size
    arrs = [np.asarray(load_rgb(p, min_side=min(h, w)).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
            for p in ds.df["path"].iloc[list(idx)]]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
    if norm is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32)[None, :, None, None] for v in norm)
        x = (x - mean) / std
    return x
