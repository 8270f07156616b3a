"""Small, fast fixtures shared by the test suite and the browser test's notebook (which builds its run inside a
JupyterLab kernel and so cannot use a pytest fixture)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lesionkit.data.synthetic import CLASSES

HAM_CLASSES = list(CLASSES)  # the synthetic set's (HAM10000's) seven classes, in its order


def write_isic2020(root: str | Path, image_name: Sequence[str], official: bool = False,
                   size: tuple[int, int] = (24, 18), **columns: Any) -> Any:
    """An ISIC 2020 folder with every image written, in Kaggle's layout (``train.csv`` + ``train/``, what the 1st place
    read) or the official one (``ISIC_2020_Training_GroundTruth_v2.csv`` + ``ISIC_2020_Training_JPEG/train/``).
    ``columns`` set or add CSV columns; the rest default to one patient per image, male, 50, torso, and diagnosis and
    benign_malignant following ``target`` (all 0 unless given). Image k gets its own colour. The CSV's DataFrame."""
    import pandas as pd
    from PIL import Image

    root, n = Path(root), len(image_name)
    target = np.asarray(columns.pop("target", [0] * n))
    df = pd.DataFrame({"image_name": list(image_name), "patient_id": [f"IP_{i}" for i in range(n)], "sex": "male",
                       "age_approx": 50.0, "anatom_site_general_challenge": "torso",
                       "diagnosis": np.where(target == 1, "melanoma", "nevus"),
                       "benign_malignant": np.where(target == 1, "malignant", "benign"), "target": target})
    for name, value in columns.items():
        df[name] = value
    csv, images = ((root / "ISIC_2020_Training_GroundTruth_v2.csv", root / "ISIC_2020_Training_JPEG" / "train")
                   if official else (root / "train.csv", root / "train"))
    images.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    for k, i in enumerate(image_name):
        Image.new("RGB", size, (30 * k % 256, 80, 60)).save(images / f"{i}.jpg")
    return df


def tiny_attribution_run(run_dir: str | Path, synthetic_dir: str | Path, n_images: int = 8,
                         methods: Sequence[str] = ("gradcam", "gradcam++", "ig"),
                         method_kw: dict[str, dict[str, Any]] | None = None) -> Path:
    """Precompute maps of an untrained ResNet-18 (seed 0) on the first ``n_images`` of a synthetic set, with its
    masks, into ``run_dir``: a real run record for the viewer and the store, in seconds on one CPU thread."""
    import pandas as pd
    import timm
    import torch
    from PIL import Image

    from lesionkit.attribution import precompute_attributions  # lazy: torch/Captum only for the tests that build a run

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


def untrained_quickstart_run(run_dir: str | Path, arch: str = "resnet18", image_size: int = 48) -> Path:
    """A completed 00_quickstart record (run.json, config.yaml, model.json, model.pth) whose model is an untrained
    ``arch`` (seed 0): what ``load_run`` and the saved-run commands read, in seconds instead of a training run."""
    import json

    import torch

    from lesionkit.papers.quickstart.recipe import QuickstartConfig  # lazy: the papers layer only when called
    from lesionkit.papers.saved import load_run

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"notebook": "00_quickstart", "status": "completed"}))
    QuickstartConfig(arch=arch, image_size=image_size, pretrained=False, tta=False).save(run_dir / "config.yaml")
    (run_dir / "model.json").write_text(json.dumps({"name": arch, "classes": HAM_CLASSES}))
    torch.manual_seed(0)
    (variant,) = load_run(run_dir).variants()
    torch.save(variant.model().state_dict(), run_dir / "model.pth")
    return run_dir
