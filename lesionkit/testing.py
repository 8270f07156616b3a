"""Small, fast fixtures shared by the test suite and the browser test's notebook (which builds its run inside a
JupyterLab kernel and so cannot use a pytest fixture)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lesionkit.data.synthetic import CLASSES

HAM_CLASSES = list(CLASSES)  # the synthetic set's (HAM10000's) seven classes, in its order


def tiny_attribution_run(run_dir: str | Path, synthetic_dir: str | Path, n_images: int = 8,
                         methods: Sequence[str] = ("gradcam", "gradcam++", "ig"),
                         method_kw: dict[str, dict[str, Any]] | None = None) -> Path:
    """Precompute maps of an untrained ResNet-18 (seed 0) on the first ``n_images`` of a synthetic set, with its
    masks, into ``run_dir``: a real run record for the viewer and the store, in seconds on one CPU thread."""
    import pandas as pd
    import timm
    import torch
    from PIL import Image

    from lesionkit.attribution import precompute_attributions

    synthetic_dir = Path(synthetic_dir)
    df = pd.read_csv(synthetic_dir / "labels.csv").head(n_images)
    rgb = np.stack([np.asarray(Image.open(synthetic_dir / f)) for f in df.filename]).astype(np.float32) / 255
    masks = np.stack([np.asarray(Image.open(synthetic_dir / f)) for f in df.mask_filename])
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=len(HAM_CLASSES))
    mean, std = np.array(model.default_cfg["mean"]), np.array(model.default_cfg["std"])
    x = torch.from_numpy(((rgb - mean) / std).transpose(0, 3, 1, 2)).float()
    precompute_attributions(model, x, list(methods), run_dir, classes=HAM_CLASSES,
                            labels=[HAM_CLASSES.index(d) for d in df.dx], image_ids=list(df.image_id), masks=masks,
                            method_kw=method_kw or {}, model_name="resnet18")
    return Path(run_dir)
