"""The comparison notebook's entries: each paper's idea as one engine Variant under one shared recipe.

Every entry trains on the same rows with the same optimiser (AdamW, weight decay 0.01), schedule, learning rate,
budget, class balancing and test views; what differs is the idea itself: the model (patch attention, ARL blocks,
an attention module in the EfficientNet), the loss (diagnosis-guided weighting) or an extra input (metadata, the
SE-LCN symmetry CAM). Each entry's ``reference`` is the plain model it differs from: the ARL blocks from a plain
ResNet of the same depth, everything else from the plain EfficientNet ``backbone``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from fastai.callback.core import Callback, CancelFitException

from lesionkit.data.loaders import image_dls, meta_dls
from lesionkit.engine import Schedule, Variant, adamw
from lesionkit.losses import balanced_class_weights
from lesionkit.metrics import fastai_metrics
from lesionkit.models import create_model
from lesionkit.papers.common import model_norm
from lesionkit.papers.patch_attention.dx_factor import (
    FactorCallback,
    FactorCrossEntropy,
    factor_image_dls,
    factor_patch_dls,
)
from lesionkit.papers.patch_attention.recipe import FULL_IMAGE, GRIDS, PAPER_PATCH
from lesionkit.papers.se_lcn.cams import cam_dls


@dataclass(frozen=True)
class Entry:
    """One row of the comparison: its label, the entry it is compared with, and what the dataset must provide."""

    key: str
    label: str
    reference: str | None
    needs: str = ""  # "dx_type", "metadata" or "masks": checked before anything trains


ENTRIES: dict[str, Entry] = {e.key: e for e in (
    Entry("baseline", "plain EfficientNet (baseline)", None),
    Entry("resnet", "plain ResNet (ARL's reference)", None),
    Entry("patch_attention", "patch attention (Gessert)", "baseline"),
    Entry("dx_weighting", "diagnosis-guided loss weighting (Gessert)", "baseline", needs="dx_type"),
    Entry("arl", "ARL blocks (Zhang)", "resnet"),
    Entry("sge", "SGE modules (Going Smaller)", "baseline"),
    Entry("spatial", "spatial attention (Going Smaller)", "baseline"),
    Entry("s2mlp", "S2-MLP module (Going Smaller)", "baseline"),
    Entry("s2cbam", "S2-CBAM modules (Going Smaller)", "baseline"),
    Entry("metadata", "metadata fusion (1st place / multimodal)", "baseline", needs="metadata"),
    Entry("se_lcn_cam", "SE-LCN symmetry CAM channel", "baseline", needs="masks"),
)}
ATTENTION = ("sge", "spatial", "s2mlp", "s2cbam")
CHANGES = {"patch_attention": "model: 5 patches (2x2 + centre) of the whole image, learnt input gate, mean of "
                              "per-patch logits",
           "dx_weighting": "loss: cross-entropy weighted by how the diagnosis was made (histo 4 ... consensus 1)",
           "arl": "model: attention residual learning in every ResNet block",
           "sge": "model: spatial group enhance after stages 1-6", "spatial": "model: spatial attention after "
                                                                             "stages 1-6",
           "s2mlp": "model: S2-MLP after stage 5", "s2cbam": "model: CBAM after every stage, S2-MLP at stage 5",
           "metadata": "input: age, sex, site through a 512-128 MLP beside the image features",
           "se_lcn_cam": "input: the symmetry net's Grad-CAM++ map through the E-layer"}


def parse_entries(text: str) -> list[str]:
    """The comma-separated ``entries`` parameter, validated, in the order given; a reference is added in front when
    an entry's reference is missing (a difference needs both)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ENTRIES]
    if unknown:
        raise ValueError(f"entries: unknown {unknown}; choose from {list(ENTRIES)}")
    refs = [ENTRIES[k].reference for k in keys if ENTRIES[k].reference and ENTRIES[k].reference not in keys]
    return list(dict.fromkeys([*refs, *keys]))


class TimeBudget(Callback):
    """Stop a fit at the first epoch end past ``seconds`` of training (the schedule stays planned for the maximum
    epochs, so a stopped fit ends at a higher learning rate than a finished one: the price of a wall-time budget)."""

    order = 90

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def before_fit(self) -> None:
        self.t0 = time.perf_counter()

    def after_epoch(self) -> None:
        if time.perf_counter() - self.t0 >= self.seconds:
            print(f"time budget: {self.seconds:g} s reached after epoch {self.epoch + 1}", flush=True)
            raise CancelFitException()


@dataclass
class EntryContext:
    """What the builders share: the dataset, its split, the config, and inputs built once (metadata encoder, the
    SE-LCN cascade's CAMs)."""

    ds: Any
    splits: Any
    cfg: Any
    run: Any
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    encoder: Any = None
    cascade: Any = None
    lent: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def train_rows(self) -> np.ndarray:
        return np.unique(np.concatenate([tr for tr, _ in self.splits.folds]))


def full_size(image_size: int) -> tuple[int, int]:
    """Patch attention's whole image: the code's 450×600 load size scaled so that a patch is ``image_size``."""
    s = image_size / PAPER_PATCH
    return int(round(FULL_IMAGE[0] * s)), int(round(FULL_IMAGE[1] * s))


def model_factory(key: str, ctx: EntryContext, weights: bool = True) -> Callable[[], Any]:
    """The entry's network, built by the registry with the shared backbone (or ResNet depth) and class count;
    ``weights=False`` skips the ImageNet weights (what reading its config needs)."""
    cfg, k = ctx.cfg, ctx.ds.n_classes
    pre, arl_pre = (cfg.pretrained, cfg.arl_pretrained) if weights else (False, False)
    builders: dict[str, Callable[[], Any]] = {
        "baseline": lambda: create_model(cfg.backbone, pretrained=pre, num_classes=k),
        "dx_weighting": lambda: create_model(cfg.backbone, pretrained=pre, num_classes=k),
        "resnet": lambda: create_model(f"resnet{cfg.resnet_depth}", pretrained=arl_pre, num_classes=k),
        "arl": lambda: create_model(f"arl_resnet{cfg.resnet_depth}", pretrained=arl_pre, num_classes=k),
        "patch_attention": lambda: create_model("patch_attention", pretrained=pre, backbone=cfg.backbone,
                                                n_patches=5, num_classes=k, patch_size=cfg.image_size,
                                                image_size=full_size(cfg.image_size), input_gate=True,
                                                combiner="mean", patch_dropout=0.1),
        "metadata": lambda: create_model("multimodal_b2", pretrained=pre, backbone=cfg.backbone, num_classes=k,
                                         n_meta=ctx.encoder.n_features),
        "se_lcn_cam": lambda: create_model("selcn_classifier", pretrained=pre, backbone=cfg.backbone,
                                           num_classes=k, with_symmetry_net=False),
    }
    for name in ATTENTION:
        builders[name] = (lambda a: lambda: create_model(f"{a}_b3", pretrained=pre, backbone=cfg.backbone,
                                                         num_classes=k))(name)
    return builders[key]


def loaders(key: str, ctx: EntryContext, norm: Any) -> Callable[[np.ndarray, np.ndarray], Any]:
    """The entry's DataLoaders on (train, valid) rows: the shared augmentation, size and batch; patch grids for
    patch attention, a diagnosis factor target, metadata, or the cached CAM as a second input."""
    cfg, ds = ctx.cfg, ctx.ds
    common = dict(bs=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
    sampler = cfg.balance == "sampler"
    if key == "patch_attention":
        return lambda tr, va: factor_patch_dls(ds, tr, va, GRIDS[5], cfg.image_size, full_size(cfg.image_size),
                                               balanced=sampler, **common)
    if key == "dx_weighting":
        return lambda tr, va: factor_image_dls(ds, tr, va, size=cfg.image_size, preset=cfg.augment, norm=norm,
                                               balanced=sampler, **common)
    if key == "metadata":
        return lambda tr, va: meta_dls(ds, tr, va, size=cfg.image_size, preset=cfg.augment, norm=norm,
                                       encoder=ctx.encoder, balanced=sampler, **common)
    if key == "se_lcn_cam":
        return lambda tr, va: cam_dls(ds, ctx.cams, tr, va, cfg.image_size, norm=None, balanced=sampler, **common)
    return lambda tr, va: image_dls(ds, tr, va, size=cfg.image_size, preset=cfg.augment, norm=norm,
                                    balanced=sampler, **common)


def variant(key: str, ctx: EntryContext, epochs: int) -> Any:
    """The entry as an engine Variant under the shared recipe."""
    cfg, ds = ctx.cfg, ctx.ds
    build = model_factory(key, ctx)
    norm = model_norm(model_factory(key, ctx, weights=False)()) if key not in ("patch_attention", "se_lcn_cam") \
        else None
    labels = ds.df["label_idx"].to_numpy()
    factor = key in ("patch_attention", "dx_weighting")

    def loss(tr: np.ndarray) -> Any:  # one loss for all (batch mean of w_y · CE), the factor only for dx_weighting
        weight = balanced_class_weights(labels[tr], ds.n_classes) if cfg.balance == "loss" else None
        return FactorCrossEntropy(weight, use_factor=key == "dx_weighting")

    def cbs() -> list:
        return [*([FactorCallback()] if factor else []),
                *([TimeBudget(cfg.budget_seconds)] if cfg.budget == "seconds" else [])]

    return Variant(key=key, label=ENTRIES[key].label, model=build, dls=loaders(key, ctx, norm), loss=loss, cbs=cbs,
                   optimizer=adamw(weight_decay=0.01), schedule=Schedule(cfg.schedule), epochs=epochs, lr=cfg.lr,
                   monitor="auc" if ds.task == "binary" else "bma", metrics=fastai_metrics(ds.task, ds.n_classes),
                   views="flips4" if cfg.tta and key != "se_lcn_cam" else "none")


__all__ = ["ATTENTION", "CHANGES", "ENTRIES", "Entry", "EntryContext", "TimeBudget", "full_size", "loaders",
           "model_factory", "parse_entries", "variant"]
