"""SE-LCN's map transfer (methods-a §3.1): the symmetry net's Grad-CAM++ of every image, computed once, cached as one
.npz (image ids + float16 maps; the original wrote one ``<id>.npy`` per image), and read back as the second input of
the diagnosis classifier's (image, CAM) → label loaders."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lesionkit.attribution import score_maps
from lesionkit.data.augment import preset_tfms
from lesionkit.data.loaders import GetLabel, ReadImage, batch_tfms_for, build_dataloaders, prepare_split


def compute_cams(sym_learn: Any, ds: Any, size: int, bs: int = 16) -> np.ndarray:
    """(N, size, size) Grad-CAM++ maps of the symmetry net for every row of ``ds`` (its argmax class, last Fire
    expand3x3 activation, the net's ``cam_form``, min-max normalised per image), with the learner's validation
    transforms."""
    dl = sym_learn.dls.test_dl(ds.df, with_labels=False, bs=bs)
    model = sym_learn.model
    out = [model.symmetry_cam(x.as_subclass(torch.Tensor), size=(size, size))[:, 0].cpu().numpy() for (x,) in dl]
    return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)


def save_cams(path: Path, image_ids: list[str], cams: np.ndarray) -> Path:
    """The CAM cache: one .npz with image ids and float16 maps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, image_ids=np.asarray(image_ids, dtype=str), cams=np.asarray(cams, np.float16))
    return path


def load_cams(path: Path) -> dict[str, np.ndarray]:
    """{image_id: (h, w) float32 map} from :func:`save_cams`' file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no cached CAMs; create them with compute_cams + save_cams")
    with np.load(path) as data:
        return {str(i): m.astype(np.float32) for i, m in zip(data["image_ids"], data["cams"])}


def cached_cams(sym_learn: Any, ds: Any, size: int, path: Path) -> dict[str, np.ndarray]:
    """{image_id: map} of every row of ``ds``, computed once and cached in ``path`` (a run record's cams/), which a
    later stage (or a resumed run) reads back instead of recomputing; the maps are the cache's float16 values."""
    path = Path(path)
    ids = ds.df["image_id"].astype(str).tolist()
    if not (path.is_file() and set(ids) <= set(load_cams(path))):
        save_cams(path, ids, compute_cams(sym_learn, ds, size))
    return load_cams(path)


def cam_scores(cams: np.ndarray, masks: np.ndarray, image_ids: list[str], label: str) -> pd.DataFrame:
    """Pointing game, IoU with the dilated mask and overlap per image (lesionkit.attribution.scores)."""
    return score_maps(np.asarray(cams, np.float32), masks, image_ids, model=label, method="gradcam++")


class GetCam:
    """Row -> (1, h, w) float CAM from the cache, looked up by image_id; ``zero`` gives the no-CAM ablation. The
    dict is read at every call, so maps added later (an external test set's) are found."""

    def __init__(self, cams: dict[str, np.ndarray], zero: bool = False) -> None:
        self.cams, self.zero = cams, zero
        self.shape = next(iter(cams.values())).shape if cams else (1, 1)

    def __call__(self, item: Any) -> torch.Tensor:
        image_id = str(item["image_id"])
        if image_id not in self.cams:
            raise KeyError(f"no cached CAM for image {image_id!r}: compute CAMs for every row of the dataset")
        cam = np.zeros(self.shape, np.float32) if self.zero else self.cams[image_id]
        return torch.from_numpy(np.asarray(cam, np.float32))[None]


@contextmanager
def lent(cams: dict[str, np.ndarray], extra: dict[str, np.ndarray]) -> Iterator[None]:
    """``extra``'s maps in ``cams`` (the dict a trained classifier's loaders read) while the block runs, then taken
    back: a training image whose id an external one shares keeps its own map outside the block."""
    kept = {k: cams[k] for k in extra if k in cams}
    cams.update(extra)
    try:
        yield
    finally:
        for k in extra:
            cams.pop(k, None)
        cams.update(kept)


def cam_dls(ds: Any, cams: dict[str, np.ndarray], train_idx: np.ndarray, valid_idx: np.ndarray, size: int, bs: int,
            seed: int = 0, num_workers: int = 0, zero: bool = False, norm: Any = None, balanced: bool = False) -> Any:
    """(image, CAM) → label loaders (n_inp=2), no augmentation (the original's online transforms are identity,
    and a flip would have to move the CAM too); images squished to ``size`` as the symmetry net's loaders that made
    the CAMs. ``balanced``: training rows drawn with replacement, weight 1/class count (the original trains on an
    offline class-balanced copy of HAM10000 instead)."""
    from fastai.data.core import Datasets
    from fastai.data.transforms import Categorize

    tr, va = prepare_split(ds, train_idx, valid_idx, verify=True, leak_check=True)
    dsets = Datasets(ds.df, tfms=[[ReadImage(size)], [GetCam(cams, zero)],
                                  [GetLabel(), Categorize(vocab=ds.classes, sort=False)]],
                     splits=[list(tr), list(va)], n_inp=2)
    item, _ = preset_tfms("none", size)
    return build_dataloaders(dsets, bs, item, batch_tfms_for([], norm), seed, num_workers, balanced,
                             ds.df["label"].to_numpy()[tr], None)


__all__ = ["GetCam", "cached_cams", "cam_dls", "cam_scores", "compute_cams", "lent", "load_cams", "save_cams"]
