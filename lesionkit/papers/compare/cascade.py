"""The se_lcn_cam entry's inputs: SE-LCN's segmenter and symmetry net trained on the comparison's own split, and
the symmetry net's Grad-CAM++ map of every image (the CAM channel the entry's classifier reads).

The stages are SE-LCN's own (``papers.se_lcn.recipe``): with data_dir as the symmetry dataset they train on fold 0's
training rows and are tested on the comparison's test rows; with ``sym_data_dir`` (e.g. PH2, when data_dir has no
masks or symmetry labels) on that dataset's own grouped split. Both use the comparison's budget, one-cycle
schedule and fastai-style rates (the symmetry net a gentler one, ``SYM_LR``), not SE-LCN's 500 / 100 epochs; no
hair removal, since no other entry has it.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesionkit.papers.patch_attention.recipe import with_dx_factor
from lesionkit.papers.se_lcn import recipe as se
from lesionkit.papers.se_lcn.cams import lent
from lesionkit.papers.se_lcn.recipe import SELCNConfig
from lesionkit.papers.se_lcn.reuse import cascade_on


@dataclass
class Cascade:
    """The trained stages and the SE-LCN config they ran under (what external sets and map sets reuse)."""

    cfg: Any
    seg_learn: Any
    sym_learn: Any
    segmentation: dict[str, float]
    symmetry: dict[str, float]
    trained_on: frozenset[str]  # image files the segmenter or the symmetry net trained or selected on


TRAINED_ON = "cascade_trained_on.csv"  # the images the CAM entry's segmenter or symmetry net trained or selected on

# The symmetry net's peak rate: SqueezeNet's last ReLU dies at 1e-3 and 5e-4 on the synthetic set (a constant
# output, AUC 0.500, valid loss ln 2 from the first epoch); at 1e-4 it learns (SE-LCN's own demo rate).
SYM_LR = 1e-4


def cascade_config(cfg: Any) -> Any:
    """An SE-LCN config with the comparison's data, split, size, seed and budget."""
    epochs = cfg.cascade_epochs or cfg.epochs
    return SELCNConfig(data_dir=cfg.data_dir, data_format=cfg.data_format, sym_data_dir=cfg.sym_data_dir,
                       seg_data_dir=cfg.seg_data_dir, hair_removal=False, image_size=cfg.image_size,
                       cam_size=cfg.image_size, epochs=epochs, seg_epochs=epochs, sym_epochs=cfg.sym_epochs or epochs,
                       seg_encoder=cfg.seg_encoder, classifier_backbone=cfg.backbone, pretrained=cfg.pretrained,
                       schedule="one_cycle", seg_lr=1e-3, sym_lr=SYM_LR, sym_patience=0, sym_augment="dihedral",
                       seg_batch_size=max(2, min(16, cfg.batch_size)), sym_batch_size=max(2, min(16, cfg.batch_size)),
                       max_images=cfg.max_images, split=cfg.split, valid_frac=cfg.valid_frac,
                       test_frac=cfg.test_frac, seed=cfg.seed, folds=cfg.folds, num_workers=cfg.num_workers,
                       speedups=cfg.speedups, deterministic=cfg.deterministic, bad_metadata=cfg.bad_metadata,
                       split_from=cfg.split_from)


def train_cascade(ctx: Any) -> Cascade:
    """Segmenter → masked (LAE) inputs → symmetry net → CAMs of every image of ``ctx.ds`` into ``ctx.cams``."""
    scfg = cascade_config(ctx.cfg)
    run = ctx.run
    cls_ds, sym_ds = se.load_data(scfg)
    splits, sym_splits = se.split(cls_ds, sym_ds, scfg, run)  # reads back the comparison's splits.csv
    seg_ds, seg_splits = se.segmenter_data(scfg, sym_ds, sym_splits, cls_ds, splits, run)
    seg_learn = se.train_segmenter(seg_ds, seg_splits, scfg, run)
    seg = se.evaluate_segmenter(seg_learn, seg_ds, seg_splits.test, scfg, run)
    _, inputs = se.build_inputs(seg_learn, cls_ds, sym_ds, scfg, run)
    sym = se.train_symmetry(inputs["symmetry"], sym_splits, scfg, run)
    sym_learn = sym.learners["symmetry"]
    ctx.cams.update(se.cache_cams(sym_learn, inputs["cam"], scfg, run))
    missing = sorted(set(ctx.ds.df["image_id"].astype(str)) - set(ctx.cams))
    if missing:
        raise ValueError(f"the SE-LCN cascade made no CAM for {len(missing)} image(s) of data_dir (e.g. "
                         f"{missing[:3]}): its classifier dataset differs from the comparison's")
    sym_scores = {k: float(v) for k, v in sym.table.iloc[0].items() if k in ("accuracy", "balanced_accuracy", "auc")}
    seen = {str(Path(p).resolve()) for d, sp in ((sym_ds, sym_splits), (seg_ds, seg_splits))
            for p in d.df["path"].iloc[np.concatenate(sp.folds[0])]}
    run.save_table(pd.DataFrame({"path": sorted(seen)}), TRAINED_ON)  # what a saved run leaves out again
    return Cascade(scfg, seg_learn, sym_learn, seg["scores"], sym_scores, frozenset(seen))


def unseen(ds: Any, ctx: Any, what: str) -> Any:
    """``ds`` without the images the CAM entry's segmenter or symmetry net trained on (PH2 as both sym_data_dir and
    map_dir / test_dir, say): every entry is then scored on images none of its parts has seen."""
    cascade = getattr(ctx, "cascade", None)
    if cascade is None:
        return ds
    keep = ~ds.df["path"].map(lambda p: str(Path(p).resolve()) in cascade.trained_on).to_numpy()
    if keep.all():
        return ds
    if not keep.any():
        raise ValueError(f"{what}: every image trained the se_lcn_cam entry's segmenter or symmetry net; give "
                         "another folder, or another sym_data_dir / seg_data_dir")
    print(f"{what}: {int((~keep).sum())} of {len(keep)} images trained the CAM entry's segmenter or symmetry net "
          f"and are left out for every entry", flush=True)
    return ds.subset(np.flatnonzero(keep))


def with_inputs(ext: Any, ctx: Any, name: str) -> Any:
    """Another dataset (external test set, map set) made ready for every entry: the diagnosis factor column (1
    where dx_type is not recorded) and, with the CAM entry, only the images its cascade never trained on
    (:func:`unseen`) and their CAMs through the trained cascade, kept in ``ctx.lent[name]`` for :func:`lend`."""
    if "dx_factor" in ctx.ds.df and "dx_factor" not in ext.df:
        ext.df = ext.df.assign(dx_type=ext.df["dx_type"] if "dx_type" in ext.df else np.nan)
        ext = with_dx_factor(ext)
    ext = unseen(ext, ctx, name)
    cascade = getattr(ctx, "cascade", None)
    if cascade is not None:
        _, ctx.lent[name] = cascade_on(ext, cascade.cfg, cascade.seg_learn, cascade.sym_learn,
                                       ctx.run.dir / "inputs" / name, ctx.run.dir / "cams" / f"{name}.npz")
    return ext


@contextmanager
def lend(ctx: Any, name: str) -> Iterator[None]:
    """The CAMs of set ``name`` in ``ctx.cams`` (what the CAM entry's loaders read) while the block runs, then taken
    back (``se_lcn.cams.lent``)."""
    with lent(ctx.cams, ctx.lent.get(name, {})):
        yield


__all__ = ["TRAINED_ON", "Cascade", "cascade_config", "lend", "train_cascade", "unseen", "with_inputs"]
