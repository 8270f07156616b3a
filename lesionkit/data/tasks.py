"""Task views of a dataset: class names across layouts, ISIC 2017 Part 3's melanoma-vs-rest from multiclass labels,
and whole images as a model input (what attribution methods take)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from lesionkit.data.images import load_rgb
from lesionkit.data.table import LesionDataset

# Names the layouts give one diagnosis: HAM10000 / ISIC 2018-2019 codes, ISIC 2017 / 2020 words (compared without
# case, '_' or '-'). Only exact equivalents: PH2's common / atypical nevus or HAM's bkl are not aliased.
CLASS_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("mel", "melanoma", "malignant melanoma"), ("nv", "nevus", "naevus", "melanocytic nevus"),
    ("bcc", "basal cell carcinoma"), ("akiec", "ak", "actinic keratosis"), ("df", "dermatofibroma"),
    ("vasc", "vascular lesion"), ("scc", "squamous cell carcinoma"))


def _norm(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def find_class(name: str, classes: Sequence[str]) -> str:
    """The dataset's own name for class ``name``: itself, a case variant, or a synonym (``mel`` finds ISIC 2017's
    and 2020's ``melanoma`` and ISIC 2019's ``MEL``). ValueError naming the classes when none is there."""
    by_norm = {_norm(c): c for c in classes}
    if _norm(name) in by_norm:
        return by_norm[_norm(name)]
    for group in CLASS_SYNONYMS:
        if _norm(name) in group:
            hits = [by_norm[g] for g in group if g in by_norm]
            if hits:
                return hits[0]
    raise ValueError(f"class {name!r} is not in the dataset's classes {list(classes)} (synonyms tried: "
                     f"{next((g for g in CLASS_SYNONYMS if _norm(name) in g), ())})")


def one_vs_rest(ds: Any, positive: str = "mel", rest: str = "rest") -> Any:
    """A binary copy of a multiclass dataset: ``positive`` vs all other classes (classes [rest, positive], so index
    1 is positive, the LesionDataset convention): ISIC 2017 Part 3's melanoma task from HAM10000-style labels."""
    positive = find_class(positive, ds.classes)
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

    h, w = (size, size) if isinstance(size, int) else size
    arrs = [np.asarray(load_rgb(p, min_side=min(h, w)).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
            for p in ds.df["path"].iloc[list(idx)]]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
    if norm is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32)[None, :, None, None] for v in norm)
        x = (x - mean) / std
    return x
