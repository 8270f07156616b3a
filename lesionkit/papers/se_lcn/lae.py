"""SE-LCN's data (methods-a §3.3): its two datasets (diagnosis; lesion masks + symmetry label), ground-truth or
predicted lesion masks at the loaders' size, and the "mask" (lesion pixels only) and "LAE" (enlarged lesion box)
copies of a dataset's images that the symmetry net and the classifier read."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lesionkit.data import load_dataset
from lesionkit.data.detect import detect_format
from lesionkit.data.images import load_mask, load_rgb
from lesionkit.data.table import LesionDataset
from lesionkit.models.se_lcn import lae_box, lae_mask

INPUT_MODES = ("none", "mask", "lae")


# the label each stage reads, per dataset layout: the synthetic set has both; PH2 has HAM-style diagnoses and asymmetry
TARGETS = {"classifier": {"synthetic": "dx", "ph2": "ham"},
           "symmetry": {"synthetic": "asymmetric", "ph2": "asymmetric"}}


def load_stage_data(root: Path, fmt: str, stage: str) -> Any:
    """The dataset at ``root`` with the label the ``stage`` ("classifier" or "symmetry") learns."""
    fmt = fmt if fmt != "auto" else detect_format(root)
    if stage == "symmetry" and fmt not in TARGETS[stage]:
        raise ValueError(f"{root}: the symmetry stage needs a symmetry label (the synthetic set's `symmetry` column or "
                         f"PH2's asymmetry); '{fmt}' has none. Set seg_data_dir to such a dataset.")
    return load_dataset(root, fmt=fmt, **({"target": TARGETS[stage][fmt]} if fmt in TARGETS[stage] else {}))


def same_images(a: Any, b: Any) -> bool:
    """True when two datasets hold the same images in the same order (then SE-LCN's stages share one split)."""
    ids = a.df["image_id"].to_numpy()
    return len(a) == len(b) and bool((ids == b.df["image_id"].to_numpy()).all())


def true_masks(ds: Any, idx: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size) bool ground-truth masks, resized (nearest) as the loaders squish the images."""
    from PIL import Image

    out = [np.asarray(load_mask(path).resize((size, size), Image.NEAREST)) > 0
           for path in ds.df["mask_path"].iloc[np.asarray(idx)]]
    return np.stack(out) if out else np.zeros((0, size, size), bool)


def reference_masks(ds: Any, idx: np.ndarray, pred_masks: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """Masks to score maps of rows ``idx`` against: ground truth where the dataset has masks, else the segmenter's
    predictions ``pred_masks`` (aligned with the rows of ``ds``), as the cascade itself would; the second value says
    which."""
    if ds.has_masks and ds.df["mask_path"].iloc[np.asarray(idx)].notna().all():
        return true_masks(ds, idx, size), "ground-truth masks"
    return pred_masks[np.asarray(idx)], "predicted masks (no ground truth in this dataset)"


@torch.no_grad()
def predict_masks(learn: Any, ds: Any, idx: np.ndarray | None = None, bs: int = 16) -> np.ndarray:
    """(N, S, S) bool lesion masks (argmax of the 2 classes) of a segmentation Learner for rows ``idx`` (default:
    all) of any dataset, with the learner's validation transforms."""
    rows = ds.df if idx is None else ds.df.iloc[np.asarray(idx)]
    learn.model.eval()
    out = [learn.model(x.as_subclass(torch.Tensor)).argmax(1).bool().cpu().numpy()
           for (x,) in learn.dls.test_dl(rows, with_labels=False, bs=bs)]
    return np.concatenate(out) if out else np.zeros((0, 1, 1), bool)


def masked_inputs(ds: Any, masks: np.ndarray, mode: str, size: int, out_dir: Path, enlarge: float = 0.2) -> Any:
    """The dataset whose images are ``mode``-processed at size × size (written as PNG under ``out_dir``, like the
    original's run_seg.py): "none" returns ``ds`` unchanged, "mask" keeps the predicted lesion, "lae" keeps the
    enlarged box around its largest contour (pixels outside set to 0). ``masks`` align with the rows of ``ds``."""
    from PIL import Image

    if mode not in INPUT_MODES:
        raise ValueError(f"mode={mode!r}: choose one of {INPUT_MODES}")
    if mode == "none":
        return ds
    if len(masks) != len(ds):
        raise ValueError(f"{len(masks)} masks for {len(ds)} images: predict one mask per row")
    out_dir = Path(out_dir) / mode
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (image_id, path), mask in zip(ds.df[["image_id", "path"]].itertuples(index=False), masks):
        img = np.asarray(load_rgb(path, min_side=size).resize((size, size), Image.BILINEAR))
        if mask.shape != img.shape[:2]:
            raise ValueError(f"{image_id}: mask {mask.shape} does not match the {size} px image")
        out = lae_mask(img, mask, enlarge) if mode == "lae" else img * mask[..., None].astype(img.dtype)
        target = out_dir / f"{image_id}.png"
        Image.fromarray(np.ascontiguousarray(out)).save(target)
        paths.append(str(target))
    df = ds.df.copy()
    df["path"] = paths
    return LesionDataset(ds.name, ds.root, df, ds.classes, ds.task, {**ds.info, "input_mode": mode})


def cascade_inputs(cls_ds: Any, seg_ds: Any, masks: dict[str, np.ndarray], cam_source: str, classifier_input: str,
                   size: int, out_dir: Path, enlarge: float = 0.2) -> dict[str, Any]:
    """SE-LCN's three input sets from the predicted ``masks`` ({"seg": of seg_ds's rows, "cls": of cls_ds's}):
    "symmetry" (the symmetry net's training images) and "cam" (the images it makes CAMs of, the classifier's rows),
    both ``cam_source``-processed, and "classifier" (``classifier_input``-processed); copies under ``out_dir``."""
    out_dir = Path(out_dir)
    return {"symmetry": masked_inputs(seg_ds, masks["seg"], cam_source, size, out_dir / "seg", enlarge),
            "cam": masked_inputs(cls_ds, masks["cls"], cam_source, size, out_dir / "cls", enlarge),
            "classifier": masked_inputs(cls_ds, masks["cls"], classifier_input, size, out_dir / "cls", enlarge)}


def lae_table(ds: Any, masks: np.ndarray, enlarge: float = 0.2) -> pd.DataFrame:
    """The LAE boxes (x0, y0, x1, y1 in mask pixels; empty for no lesion), as the original's coordinates.csv."""
    rows = []
    for image_id, mask in zip(ds.df["image_id"], masks):
        box = lae_box(mask, enlarge)
        rows.append({"image_id": image_id, **dict(zip(("x0", "y0", "x1", "y1"), box or (np.nan,) * 4)),
                     "mask_fraction": float(np.asarray(mask).mean())})
    return pd.DataFrame(rows)


__all__ = ["INPUT_MODES", "TARGETS", "cascade_inputs", "lae_table", "load_stage_data", "masked_inputs", "predict_masks",
           "reference_masks", "same_images", "true_masks"]
