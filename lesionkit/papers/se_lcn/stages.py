"""SE-LCN's three recipes (methods-a §3.4), one ``engine.Variant`` per network, with the paper's settings written
out: the segmenter (train_seg.py), the symmetry net (train_symmetry_cv.py), the E-layer classifier with and
without its CAM channel (train_classifier_final_cv.py) and the standalone baseline (train_classifier_cv.py), and the
table of what each stage trains and tests on.
``se_lcn`` runs them as the cascade's stages."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lesionkit.data.loaders import image_dls, mask_dls
from lesionkit.data.splits import group_codes, grouped_holdout, make_splits
from lesionkit.engine import Schedule, Variant, adam
from lesionkit.losses import DiceRankLoss, class_weights
from lesionkit.metrics import fastai_metrics
from lesionkit.models import create_model
from lesionkit.papers.common import model_norm
from lesionkit.papers.se_lcn.cams import cam_dls

if TYPE_CHECKING:
    from lesionkit.papers.se_lcn.recipe import SELCNConfig

CLASSIFIERS = {"with_cam": "SE-LCN (with CAM)", "without_cam": "without CAM (zeros)",
               "baseline": "standalone baseline (its own recipe)"}


def _schedule(cfg: SELCNConfig, paper: Any) -> Any:
    return paper if cfg.schedule == "paper" else Schedule("one_cycle")


def segmenter_variant(seg_ds: Any, cfg: SELCNConfig) -> Any:
    """Stage 1 (train_seg.py): DeepLabV3+ (the code's head unless ``seg_head="smp"``) on image + mask loaders
    (flips/affine on both; inputs normalised as ``seg_norm`` says), Dice + λ·rank loss, torch
    Adam without weight decay, lr poly-decayed with power 0.9 over training, the epoch of best validation Jaccard."""
    from fastai.metrics import Dice, JaccardCoeff

    model = partial(create_model, "selcn_segmenter", pretrained=cfg.pretrained, encoder=cfg.seg_encoder,
                    head=cfg.seg_head, input_norm=cfg.seg_norm)
    norm = model_norm(create_model("selcn_segmenter", encoder=cfg.seg_encoder, head=cfg.seg_head,
                                   input_norm=cfg.seg_norm))
    return Variant(key="segmenter", label="DeepLabV3+ segmenter", model=model,
                   dls=lambda tr, va: mask_dls(seg_ds, tr, va, size=cfg.image_size, bs=cfg.seg_batch_size,
                                               preset="fastai", seed=cfg.seed, num_workers=cfg.num_workers, norm=norm),
                   loss=lambda tr: DiceRankLoss(lam=cfg.rank_lambda), metrics=[Dice(), JaccardCoeff()],
                   optimizer=adam(weight_decay=0.0), schedule=_schedule(cfg, Schedule("poly", poly_power=0.9)),
                   epochs=cfg.stage_epochs("seg"), lr=cfg.seg_lr, monitor="jaccard_coeff")


def _weighted_ce(ds: Any, on: bool) -> Any:
    """Loss factory: cross-entropy, weighted ∝ 1/class count of the training rows (in class-index order) when ``on``."""
    import torch
    from fastai.torch_core import default_device

    def loss(tr: np.ndarray) -> Any:
        if not on:
            return torch.nn.CrossEntropyLoss()
        w = class_weights(ds.df["label_idx"].to_numpy()[tr], ds.n_classes, "balanced")
        return torch.nn.CrossEntropyLoss(weight=w.to(default_device()))  # fastai moves the model, not the loss

    return loss


def symmetry_variant(sym_ds: Any, cfg: SELCNConfig) -> Any:
    """Stage 3: SqueezeNet on the symmetry label (0 symmetric vs 1/2 asymmetric), inputs in [0, 1], cross-entropy
    weighted ∝ 1/class count (sklearn's "balanced" N/(K·n_c): the same loss, as torch's weighted mean divides by the
    weights), torch Adam with coupled L2 weight decay, constant lr, early stopping on validation loss. Its CAM takes
    ``cam_form``'s Grad-CAM++ denominator."""
    return Variant(key="symmetry", label="SqueezeNet symmetry net",
                   model=partial(create_model, "selcn_symmetry", cam_form=cfg.cam_form),
                   dls=lambda tr, va: image_dls(sym_ds, tr, va, size=cfg.image_size, bs=cfg.sym_batch_size,
                                                preset=cfg.sym_augment, seed=cfg.seed, num_workers=cfg.num_workers,
                                                norm=None),
                   loss=_weighted_ce(sym_ds, cfg.sym_weighted), metrics=fastai_metrics(sym_ds.task, sym_ds.n_classes),
                   optimizer=adam(weight_decay=cfg.sym_wd), schedule=_schedule(cfg, Schedule("constant")),
                   epochs=cfg.stage_epochs("sym"), lr=cfg.sym_lr, monitor="valid_loss", patience=cfg.sym_patience)


def baseline_variant(ds: Any, cfg: SELCNConfig) -> Any:
    """The paper's standalone baseline (train_classifier_cv.py): the plain EfficientNet (timm's, stochastic depth as
    the classifier's) with dropout ``baseline_dropout`` before its linear head, on images alone in [0, 1] drawn as
    the classifier's (``balanced``), 1/count-weighted cross-entropy, torch Adam with coupled L2 weight decay
    ``baseline_wd``, constant lr ``baseline_lr``, batch ``baseline_batch_size``, early stopping on validation loss."""
    model = partial(create_model, cfg.classifier_backbone, pretrained=cfg.pretrained, num_classes=ds.n_classes,
                    drop_rate=cfg.baseline_dropout, drop_path_rate=cfg.drop_path_rate)
    return Variant(key="baseline", label=CLASSIFIERS["baseline"], model=model,
                   dls=lambda tr, va: image_dls(ds, tr, va, size=cfg.image_size, bs=cfg.baseline_batch_size,
                                                preset="none", seed=cfg.seed, num_workers=cfg.num_workers, norm=None,
                                                balanced=cfg.balanced),
                   loss=_weighted_ce(ds, cfg.baseline_weighted), metrics=fastai_metrics(ds.task, ds.n_classes),
                   optimizer=adam(weight_decay=cfg.baseline_wd), schedule=_schedule(cfg, Schedule("constant")),
                   epochs=cfg.epochs, lr=cfg.baseline_lr, monitor="valid_loss", patience=cfg.baseline_patience)


def classifier_variants(ds: Any, cams: dict[str, np.ndarray], cfg: SELCNConfig) -> list[Any]:
    """Stage 5: EfficientNet + E-layer on (image, cached CAM) loaders, inputs in [0, 1], unweighted cross-entropy,
    torch Adam with coupled L2 weight decay, constant lr, early stopping on validation loss; "without_cam" feeds an
    all-zero map; with ``baseline``, the standalone baseline with its own recipe (:func:`baseline_variant`)."""
    model = partial(create_model, "selcn_classifier", pretrained=cfg.pretrained, backbone=cfg.classifier_backbone,
                    num_classes=ds.n_classes, with_symmetry_net=False, drop_path_rate=cfg.drop_path_rate)

    def variant(key: str) -> Any:
        return Variant(key=key, label=CLASSIFIERS[key], model=model,
                       dls=lambda tr, va: cam_dls(ds, cams, tr, va, cfg.image_size, cfg.batch_size, cfg.seed,
                                                  cfg.num_workers, zero=key == "without_cam", norm=None,
                                                  balanced=cfg.balanced),
                       metrics=fastai_metrics(ds.task, ds.n_classes), optimizer=adam(weight_decay=cfg.wd),
                       schedule=_schedule(cfg, Schedule("constant")), epochs=cfg.epochs, lr=cfg.lr,
                       monitor="valid_loss", patience=cfg.patience)
    return [variant("with_cam"), variant("without_cam")] + ([baseline_variant(ds, cfg)] if cfg.baseline else [])


def split_table(stages: dict[str, tuple[Any, Any]]) -> pd.DataFrame:
    """Images and class counts per stage and part (the test set, each fold's train and valid)."""
    rows = []
    for stage, (ds, splits) in stages.items():
        parts = [("test", splits.test)] + [(f"{name} {k}", idx) for k, pair in enumerate(splits.folds)
                                           for name, idx in zip(("train", "valid"), pair)]
        rows += [{"stage": stage, "part": part, "images": len(idx),
                  **ds.df["label"].iloc[idx].value_counts().reindex(ds.classes, fill_value=0)} for part, idx in parts]
    return pd.DataFrame(rows).fillna(0)


def own_split(ds: Any, cls_ds: Any, splits: Any, cfg: SELCNConfig, run: Any, table: str) -> Any:
    """A grouped train/valid/test split of a stage's own dataset from `seed` (recorded as `table`); its rows that
    share an image or lesion with the classifier's test rows are in its test set, so no stage trains on them,
    topped up by a grouped hold-out of the other rows to `test_frac` when they are fewer."""
    test_rows = cls_ds.df.iloc[splits.test]
    match = (ds.df["image_id"].isin(test_rows["image_id"]) | (
        ds.df["lesion_id"].notna() & ds.df["lesion_id"].isin(test_rows["lesion_id"].dropna()))).to_numpy()
    codes = group_codes(ds.df)
    shared = np.isin(codes, codes[match])  # whole lesion / patient groups, so the split stays leak-free
    test = np.flatnonzero(shared) if shared.any() else None
    if test is not None and len(test) < cfg.test_frac * len(ds) * 0.9:
        rest = np.flatnonzero(~shared)
        frac = min(0.5, (cfg.test_frac * len(ds) - len(test)) / len(rest))
        test = np.union1d(test, rest[grouped_holdout(ds.df.iloc[rest], test_frac=frac, seed=cfg.seed,
                                                     stratify_col="label_idx")[1]])
    own = make_splits(ds.df, folds=1, test_frac=cfg.test_frac, valid_frac=cfg.valid_frac / (1 - cfg.test_frac),
                      seed=cfg.seed, test=test)
    run.save_table(own.to_frame(ds.df), table)
    return own


__all__ = ["CLASSIFIERS", "baseline_variant", "classifier_variants", "own_split", "segmenter_variant", "split_table", "symmetry_variant"]
