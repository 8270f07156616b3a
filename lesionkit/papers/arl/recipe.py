"""arl notebook: ARL-CNN (Zhang et al., TMI 2019) against a plain ResNet of the same depth, melanoma vs rest.

Pipeline (spec methods-a §2): the task is ISIC 2017 Part 3's melanoma classification, made here from multiclass
labels (mel vs every other class). Training uses ARL's multi-scale crops (a random crop at scale 0.2-0.8 of the
image, or the whole image, resized; the code's H/V flips and rotation ±10°, or fastai's Dihedral with
``augment="arl_dihedral"``) computed on the fly instead of the code's 122k offline PNGs: an epoch visits every
training image `crops_per_image` times (the code's 61 files per image), each visit a fresh crop whose window is
measured in the original file's pixels. One logit with BCE, and the code's schedule: SGD (momentum 0.9, weight decay
1e-4), LR halved at 30/60/90 of 100 epochs. Validation, like testing, sees the 9 views by default (``valid_views``).
Testing averages the logits of 9 views (2 crops per scale + the whole image; ``tta_average``) and thresholds their
sigmoid at 0.5; reported are melanoma AUC, accuracy, sensitivity and specificity.

Paper vs code: "paper" (default) is a spatial softmax per channel with a learnable α; "code" is the unofficial
repository's softmax across channels with a fixed α = 0.001. Model selection: the code keeps the best validation
accuracy (``monitor="accuracy"``), which with unweighted BCE and a 0.5 threshold gave sensitivity 0.49; the default
here selects on AUC, as the spec advises (methods-a §2.7 point 4). Every remaining departure is in `DEVIATIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lesionkit.attribution import explain_rows
from lesionkit.config import param, param_like
from lesionkit.data.augment import ARL_ISIC2017_STATS, ARL_PRESETS, IMAGENET_STATS, arl_decode_side
from lesionkit.data.loaders import RepeatDL, image_dls, loader_workers
from lesionkit.data.tasks import one_vs_rest
from lesionkit.data.views import tta_dl
from lesionkit.engine import SCHEDULES, OptimizerSpec, Schedule, Variant, fold_means, run_folds
from lesionkit.engine.evaluation import Evaluation, evaluate_models
from lesionkit.metrics import binary_report, fastai_metrics
from lesionkit.models import create_model
from lesionkit.papers.arl.deviations import DEVIATIONS
from lesionkit.papers.arl.validation import MeanOfViews, accuracy_metric
from lesionkit.papers.common import (
    TrainConfig,
    load_data,
    load_external,
    record_summary,
    save_models,
    split,
)
from lesionkit.records.runs import Run

NORMS = ("isic2017", "imagenet")
AUGMENTS = (*ARL_PRESETS, "fastai")
VALID_VIEWS = ("multiscale", "one")
MONITORS = ("auc", "accuracy", "bma", "valid_loss")


@dataclass(frozen=True)
class ARLConfig(TrainConfig):
    notebook: ClassVar[str] = "arl"
    paper: ClassVar[str] = "arl"
    headline: ClassVar[str] = "arl"
    renamed: ClassVar[dict[str, str]] = {"tta": "test_views"}  # `tta` is a true/false switch in the other notebooks

    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set (e.g. an ISIC 2017 download: its "
                                                        "Test part; every class but `positive` counts as the rest), "
                                                        "scored by the fold-0 models with the same test views")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (depth 18, 48 px, 1 epoch, ~120 images, 1 crop per "
                                                   "image, random init) to check the pipeline")
    depth: int = param(50, "ResNet depth of both models: 18, 34 or 50 (paper: 50)", choices=(18, 34, 50))
    variant: str = param("paper", "ARL attention: 'paper' (spatial softmax, learnable alpha) or 'code' (channel "
                                  "softmax, fixed alpha 0.001)", choices=("paper", "code"))
    baseline: bool = param(True, "also train the plain ResNet of the same depth")
    positive: str = param("mel", "class predicted against all the others (ISIC 2017 Part 3: melanoma)")
    image_size: int = param(224, "training resolution in pixels (the paper: 224)", ge=32, le=1024)
    crops_per_image: int = param(61, "training samples drawn per image per epoch, each a fresh random crop (the "
                                     "code: 61 offline crops per image, so 61 x images per epoch; 1: one pass)",
                                 ge=1, le=1000)
    augment: str = param("arl", "training augmentation: 'arl' (multi-scale crops, the code's H/V flips and rotation "
                                "+-10 deg), 'arl_dihedral' (the crops with fastai's Dihedral: adds 90 deg turns and "
                                "transposes) or 'fastai'", choices=AUGMENTS)
    norm: str = param("isic2017", "input normalisation: the code's ISIC 2017 statistics or ImageNet's",
                      choices=NORMS)
    epochs: int = param(100, "training epochs", ge=1, le=10_000)
    batch_size: int = param(32, "images per batch", ge=1, le=4096)
    lr: float = param(1e-4, "peak learning rate of the schedule (the code's SGD rate, halved at 30/60/90% with "
                            "'step')", ge=1e-7, le=10.0)
    optimizer: str = param("sgd", "'sgd' (momentum 0.9, the code) or 'adam'", choices=("sgd", "adam"))
    weight_decay: float = param(1e-4, "weight decay (L2 for SGD, decoupled for Adam)", ge=0.0, le=1.0)
    schedule: str = param("step", "LR schedule: 'step' (halve at 30/60/90% of training, the code), "
                          + ", ".join(s for s in SCHEDULES if s != "step"), choices=SCHEDULES)
    monitor: str = param("auc", "validation metric for model selection: auc (the spec's advice), accuracy (the "
                                "code's, at `threshold`), bma or valid_loss", choices=MONITORS)
    valid_views: str = param("multiscale", "validation views each epoch: 'multiscale' (the code: the 9 test views, "
                                           "logits averaged) or 'one' (the image resized once)", choices=VALID_VIEWS)
    pretrained: bool | str = param(True, "ImageNet ResNet weights of the same depth (the paper: ResNet-50): true "
                                         "(Hugging Face cache, else download), false, or a weight file")
    folds: int = param(1, "1: one train/valid split (ISIC 2017: its official parts); >1: CV folds, every model "
                          "scored on the test set",
                       ge=1, le=10)
    test_frac: float = param(0.2, "share of lesions held out for the test set", ge=0.05, le=0.5)
    valid_frac: float = param(0.1, "share of lesions for model selection (with one fold)", ge=0.05, le=0.5)
    test_views: str = param("multiscale", "test-time views: 'multiscale' (the code's 9 views), 'flips8' or 'none'",
                            choices=("multiscale", "flips8", "none"))
    tta_average: str = param("logits", "how test views combine: logits (the code: mean logit over the views, then "
                                       "sigmoid) or probs (mean probability)", choices=("logits", "probs"))
    threshold: float = param(0.5, "decision threshold for accuracy, sensitivity, specificity", ge=0.0, le=1.0)
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)
    attribution: bool = param(True, "explain a few test predictions (Grad-CAM, ARL masks)")
    attribution_methods: str = param("gradcam,native,integrated_gradients", "comma-separated attribution methods")
    n_explain: int = param(6, "test images to explain", ge=1, le=64)

    def weights_needed(self) -> dict[str, tuple[str, str]]:
        """timm's ImageNet ResNet of `depth` (both models load it)."""
        return {f"resnet{self.depth}": ("pretrained", "depth")} if self.pretrained is True else {}

    def effective(self, **smoke_overrides: Any) -> "ARLConfig":
        defaults = {"depth": 18, "image_size": 48, "batch_size": 16, "epochs": 1, "max_images": 120, "n_explain": 2,
                    "optimizer": "adam", "lr": 1e-3, "attribution_methods": "gradcam,native", "crops_per_image": 1,
                    "pretrained": False}
        return super().effective(**{**defaults, **smoke_overrides})  # type: ignore[return-value]

    @property
    def models(self) -> dict[str, str]:
        """Label → key for the comparison table: the ARL model and (optionally) the baseline."""
        out = {f"ARL-CNN{self.depth}": "arl"}
        if self.baseline:
            out[f"ResNet-{self.depth}"] = "resnet"
        return out


def load(cfg: ARLConfig) -> Any:
    """The dataset as a binary task: `positive` (index 1) vs the rest."""
    return one_vs_rest(load_data(cfg), cfg.positive)


def norm_stats(cfg: ARLConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return ARL_ISIC2017_STATS if cfg.norm == "isic2017" else IMAGENET_STATS


def model_name(cfg: ARLConfig, kind: str) -> tuple[str, dict[str, Any]]:
    """kind "arl": ARL-ResNet of `depth` and `variant`; "resnet": timm's plain ResNet of the same depth. One logit."""
    if kind == "arl":
        return f"arl_resnet{cfg.depth}", {"num_classes": 1, "arl_mode": "spatial" if cfg.variant == "paper" else
                                          "channel", "learn_alpha": cfg.variant == "paper"}
    if kind == "resnet":
        return f"resnet{cfg.depth}", {"num_classes": 1}
    raise ValueError(f"model kind {kind!r}: 'arl' or 'resnet'")


def train_dls(ds: Any, train_idx: np.ndarray, valid_idx: np.ndarray, cfg: ARLConfig) -> Any:
    """Image loaders with the multi-scale crops (``augment="arl"`` or ``"arl_dihedral"``) and the chosen
    normalisation; the training loader visits each row ``crops_per_image`` times per epoch (``RepeatDL``). ARL
    decodes JPEGs large enough that a 0.2 crop still spans ``image_size`` pixels (``arl_decode_side``); the crop
    window itself is in the original file's pixels whatever the decode. With ``valid_views="multiscale"`` the
    validation loader yields each image's 9 test views (B, 9, 3, S, S), which :class:`MeanOfViews` averages; the
    one-view loaders stay as ``one_view`` (the test loader of ``test_views`` other than multiscale)."""
    from fastai.data.core import DataLoaders

    repeat = {"dl_type": RepeatDL, "dl_kwargs": ({"repeats": cfg.crops_per_image}, {})} if cfg.crops_per_image > 1 \
        else {}
    dls = image_dls(ds, train_idx, valid_idx, size=cfg.image_size, bs=cfg.batch_size, preset=cfg.augment,
                    seed=cfg.seed, num_workers=cfg.num_workers, norm=norm_stats(cfg),
                    min_side=arl_decode_side(cfg.image_size) if cfg.augment in ARL_PRESETS else None, **repeat)
    if cfg.valid_views == "one":
        return dls
    views = tta_dl(ds, valid_idx, size=cfg.image_size, views="multiscale", bs=cfg.batch_size, norm=norm_stats(cfg),
                   seed=6666 + cfg.seed, num_workers=loader_workers(cfg.num_workers), verify=False,
                   device=dls.device)
    stacked = DataLoaders(dls.train, views, device=dls.device)
    stacked.one_view = dls
    return stacked


def optimizer(cfg: ARLConfig) -> Any:
    """The code's SGD (momentum 0.9, L2 weight decay 1e-4 on every parameter) or AdamW (decoupled decay)."""
    if cfg.optimizer == "sgd":
        return OptimizerSpec("sgd", momentum=0.9, weight_decay=cfg.weight_decay)
    return OptimizerSpec("adamw", weight_decay=cfg.weight_decay)


def variants(ds: Any, cfg: ARLConfig) -> list[Any]:
    """The recipe: ARL-CNN (and the plain ResNet) with BCE on one logit, the chosen optimiser, LR halved at
    30/60/90 % of training (the code's 30/60/90 of 100 epochs), validation on ``valid_views``, selection on
    ``monitor`` (the metrics include accuracy at ``threshold``), ``test_views``."""
    from fastai.losses import BCEWithLogitsLossFlat

    def test_dl(learn: Any, rows: np.ndarray) -> Any:
        if cfg.test_views != "multiscale":
            return getattr(learn.dls, "one_view", learn.dls).test_dl(ds.df.iloc[rows], with_labels=True)
        return tta_dl(ds, rows, size=cfg.image_size, views="multiscale", bs=cfg.batch_size, norm=norm_stats(cfg),
                      seed=6666 + cfg.seed)

    def make(kind: str, label: str) -> Any:
        name, kwargs = model_name(cfg, kind)
        return Variant(key=kind, label=label, model=lambda: create_model(name, pretrained=cfg.pretrained, **kwargs),
                       dls=lambda tr, va: train_dls(ds, tr, va, cfg),
                       loss=lambda tr: BCEWithLogitsLossFlat(thresh=cfg.threshold),
                       metrics=[*fastai_metrics("binary", 1), accuracy_metric(cfg.threshold)],
                       cbs=lambda: [MeanOfViews()], optimizer=optimizer(cfg),
                       schedule=Schedule(cfg.schedule, step_start=0.0, step_every=0.3, step_gamma=0.5),
                       epochs=cfg.epochs, lr=cfg.lr, monitor=cfg.monitor,
                       views="dihedral8" if cfg.test_views == "flips8" else "none", average=cfg.tta_average,
                       test_dl=test_dl)

    return [make(kind, label) for label, kind in cfg.models.items()]


def train_and_test(ds: Any, splits: Any, cfg: ARLConfig, run: Run) -> Any:
    """Train each model on each fold, test it on the fixed test set (``lesionkit.engine.run_folds``); predictions
    go to ``predictions/test_<kind>_fold<k>.csv`` in the ISIC binary format; the fold-0 models to model.pth (ARL)
    and model_resnet.pth, each with the spec that rebuilds it."""
    res = run_folds(run, ds, splits, variants(ds, cfg), lambda y, p: binary_report(y, p[:, 1], cfg.threshold),
                    seed=cfg.seed, settings=cfg.engine_settings())
    save_models(run, res.learners, cfg.headline, spec=lambda _: {"classes": ds.classes, "output": "one logit, sigmoid = P(positive)",
                                                                  "norm": cfg.norm})
    return res


def evaluation(ds: Any, cfg: ARLConfig) -> Evaluation:
    """How the models are scored (``lesionkit.engine.evaluation``): fold 0 with its test views, P(positive) at
    ``threshold``."""
    return Evaluation(variants(ds, cfg), report=lambda y, p: binary_report(y, p[:, 1], cfg.threshold))


def evaluate_external(learners: dict[str, Any], ds: Any, cfg: ARLConfig, run: Run) -> dict[str, Any] | None:
    """The fold-0 models on `test_dir` with their test views (its most held-out official part; every class but
    `positive` as the rest): reports logged and predictions saved as ``external_<kind>``. None without test_dir."""
    ext = load_external(cfg, list(ds.classes), positive=ds.classes[1])
    if ext is None:
        return None
    return evaluate_models(run, evaluation(ext, cfg), {k: [learn] for k, learn in learners.items()}, ext).by_label()


def summarize(df: Any, run: Run, cfg: ARLConfig) -> dict[str, Any]:
    """Fold means per model, the 2–4-number summary and the comparison with the paper and the code's results."""
    means = fold_means(df)
    arl = means[next(label for label, key in cfg.models.items() if key == cfg.headline)]
    summary = {"auc": arl["auc"], "sensitivity": arl["sensitivity"], "specificity": arl["specificity"]}
    base = means.get(f"ResNet-{cfg.depth}")
    if base is not None:
        summary["auc_resnet"] = base["auc"]
    keys = ("auc", "accuracy", "sensitivity", "specificity", "params")
    ours = {f"{cfg.models[label]}/{k}": v for label, m in means.items() for k, v in m.items() if k in keys}
    n = df.groupby("model")["fold"].nunique().max()
    label = (f"{cfg.data_dir}, {cfg.positive} vs rest, "
             f"{cfg.image_size} px, depth {cfg.depth}, {cfg.epochs} ep, {cfg.test_views} TTA"
             + (f", mean of {n} folds" if n > 1 else ""))
    model_keys = {"ARL-CNN50": "arl", "ARL-CNN50 (Vipermdl code)": "arl", "ResNet-50": "resnet",
                  "ResNet-50 (Vipermdl code)": "resnet"}
    return record_summary(run, cfg, summary, ours, label, model_keys=model_keys, include_unreported=False,
                          test=dict(means))


def alphas(model: torch.nn.Module) -> Any:
    """The learned α of every ARL block (paper variant), to see how much attention each stage kept."""
    import pandas as pd

    rows = [{"block": name.removesuffix(".arl"), "alpha": float(m.alpha.detach())} for name, m in model.named_modules()
            if name.endswith(".arl")]
    return pd.DataFrame(rows)


def explain(learn: Any, ds: Any, idx: np.ndarray, cfg: ARLConfig, run: Run) -> Any:
    """Grad-CAM on layer4, the ARL masks ("native") and integrated gradients for test images; stored with the run."""
    mean, std = norm_stats(cfg)
    return explain_rows(learn.model, ds, idx, cfg.methods, run.dir, size=cfg.image_size, norm=(mean, std),
                        model_name=f"ARL-CNN{cfg.depth} ({cfg.variant})",
                        method_kw={"integrated_gradients": {"n_steps": 16}}, mean=mean, std=std)


__all__ = ["DEVIATIONS", "ARLConfig", "load", "split", "train_dls", "model_name", "optimizer", "variants",
           "train_and_test", "evaluation", "evaluate_external", "summarize", "alphas", "explain"]
