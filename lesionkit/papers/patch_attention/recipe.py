"""patch_attention notebook: Gessert et al. (TBME 2019), patch-based attention + diagnosis-guided loss weighting.

Pipeline (spec methods-a §1): each image is resized to the code's 450×600 geometry (scaled with `image_size`, the
patch side) and cut into P ordered patches (P=5: 2×2 corners + centre; P=9: 3×3 grid); a shared backbone with
patch attention sees all of them. The loss is cross-entropy with 1/frequency class weights (the cfg's option 5)
and, with diagnosis-guided weighting, each example is further weighted by how its label was confirmed
(histo 4, confocal 3, follow_up 2, consensus 1: option 6). :func:`variants` is the code's recipe (§1.4), one per
weighting mode, plus (``baseline``) the same patch model with its attention switched off (the code's ``CNN_FC``
without ``initial_attention``), trained with the headline mode's loss on the same folds, so the gain the paper
claims for attention (+7 % mean sensitivity) is measured; ``lesionkit.engine.run_folds`` trains one model per fold
of each, scores each on the fixed test set.

Paper vs code: "paper" (default) puts the patch-pooled SE attention inside the backbone's stages, as the paper
describes (placement and reduction unverified against the PDF); "code" is the released ``CNN_FC``: one sigmoid gate
per patch at the input. Both average the per-patch logits. The weighting factor goes to every class (what the code
ran, by its stale-key bug); ``dx_only_class="nv"`` gives the "only for nevus" reading of its comment.
Both compared runs use the same batch-mean loss (L = mean d·w·CE), so weighting is the only difference between them.
The backbone starts from timm's copy of the torchvision ImageNet weights the code loaded (``weights``), and the
factor reads HAM10000's dx_type codes or ISIC 2018's LesionGroupings strings. Every remaining departure is in
`DEVIATIONS`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from lesionkit.attribution import explain_rows
from lesionkit.config import ConfigError, param, param_like
from lesionkit.engine import SCHEDULES, OptimizerSpec, Schedule, Variant, fold_means, fold_table, run_folds
from lesionkit.engine import score as report
from lesionkit.engine.evaluation import Evaluation, evaluate_models
from lesionkit.losses import DX_TYPE_FACTORS, class_weights
from lesionkit.metrics import fastai_metrics, fold_summary
from lesionkit.metrics.classification import f1, predict_labels
from lesionkit.models import create_model
from lesionkit.papers.common import TrainConfig, load_data, load_external, record_summary, save_models
from lesionkit.papers.patch_attention.deviations import DEVIATIONS
from lesionkit.papers.patch_attention.dx_factor import (
    CONFIRM_TYPES,
    FactorCallback,
    FactorCrossEntropy,
    dx_type_codes,
    factor_patch_dls,
)
from lesionkit.records.runs import Run

FULL_IMAGE = (450, 600)  # the code's load size (HAM10000 originals), cut into 224-px patches
PAPER_PATCH = 224
GRIDS = {5: "2x2+c", 9: "3x3"}
MODES = {"off": "class weights", "on": "class weights + dx"}
BASELINE = "baseline"  # the Variant key of the no-attention patch model
# our report key -> the paper's metric name (its tables: weighted F1, mean sensitivity, AUC)
PAPER_METRICS = {"balanced_accuracy": "mean sensitivity", "f1_weighted": "weighted F1",
                 "f1_weighted_code": "weighted F1 (code's argument order)", "auc_macro": "AUC (mean over classes)",
                 "accuracy": "accuracy",
                 "balanced_accuracy_gain_patch_attention": "mean sensitivity gain: attention - no attention",
                 "balanced_accuracy_gain_dx_weighting": "mean sensitivity gain: dx weighting - class weights only"}
OPTIMIZER = OptimizerSpec("adam", betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)  # train.py:280-291, no decay
STEPS = {"step_start": 0.2, "step_every": 0.2, "step_gamma": 0.5}  # StepLR(10, 0.5) from epoch 10 of 50 (§1.4)
PER_CLASS = ("auc", "sensitivity", "specificity")
WEIGHTS = ("torchvision", "timm")


def torchvision_weights(backbone: str) -> str:
    """timm's copy of the torchvision ImageNet weights of `backbone` (``<name>.tv_in1k``, what the code's
    torchvision models loaded) where timm has one; else `backbone` unchanged (a name with a tag is kept as given)."""
    import timm  # lazy: only a config that needs the name pays the import

    if "." in backbone:
        return backbone
    tagged = f"{backbone}.tv_in1k"
    return tagged if timm.list_pretrained(tagged) else backbone


@dataclass(frozen=True)
class PatchAttentionConfig(TrainConfig):
    notebook: ClassVar[str] = "patch_attention"
    paper: ClassVar[str] = "patch_attention"

    data_dir: str = param_like(TrainConfig, "data_dir", "dataset folder (HAM10000 layout with dx_type), or 'synthetic' "
                                                        "(the embedded default) / 'synthetic-null' (same images without "
                                                        "class signal: the sanity control)")
    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set (e.g. derm7pt: its official "
                                                        "test index), scored by every fold-0 model")
    valid_frac: float = param_like(TrainConfig, "valid_frac", "share of lesions for model selection (with one fold)")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (small backbone, 32-px patches, 1 epoch, 2 folds, ~120 "
                                                   "images) to check the pipeline")
    backbone: str = param("inception_v3", "timm backbone shared by the patches (paper: inception_v3 for HAM10000, "
                                          "densenet121 for derm7pt)")
    variant: str = param("paper", "attention: 'paper' (patch-pooled SE in the backbone's stages) or 'code' (the "
                                  "released input gate, one sigmoid per patch)", choices=("paper", "code"))
    n_patches: int = param(5, "patches per image: 5 (2x2 corners + centre, HAM10000) or 9 (3x3, derm7pt)",
                           choices=(5, 9))
    image_size: int = param(224, "patch side in pixels; the full image is 450x600 scaled by image_size/224",
                            ge=32, le=512)
    patch_dropout: float = param(0.1, "probability of zeroing a patch slot in training (HAM 0.1, derm7pt 0.2)",
                                 ge=0.0, le=0.9)
    class_weighting: str = param("inverse", "class weights: 'inverse' (N/n_c, the cfg's option 5), 'balanced' "
                                            "(sklearn) or 'none'", choices=("inverse", "balanced", "none"))
    dx_weighting: str = param("compare", "diagnosis-guided weighting: 'compare' (train with and without), 'on', "
                                         "'off'", choices=("compare", "on", "off"))
    dx_only_class: str = param("", "restrict the diagnosis factor to one class (e.g. 'nv'); empty: all classes")
    epochs: int = param(50, "training epochs per fold model", ge=1, le=10_000)
    batch_size: int = param(5, "images per batch (each gives n_patches backbone passes)", ge=1, le=1024)
    lr: float = param(2.08e-5, "peak learning rate of the schedule (torch Adam, betas 0.9/0.999, eps 1e-8, no "
                               "weight decay; the HAM cfg's 1.25e-5 * 5/3, halved by 'step')", ge=1e-7, le=10.0)
    schedule: str = param("step", "LR schedule: 'step' (the code's StepLR: halve at 40, 60, 80% of training), "
                          + ", ".join(s for s in SCHEDULES if s != "step"), choices=SCHEDULES)
    pretrained: bool | str = param(True, "ImageNet init of the backbone, as the paper: true (inception_v3's timm "
                                         "weights from the Hugging Face cache or a download; installed offline: "
                                         "tf_efficientnet_lite0/lite2 only), false, or a weight file")
    weights: str = param("torchvision", "which ImageNet weights a pretrained backbone loads: 'torchvision' (the "
                                        "code's: timm's tv_in1k copy where timm has one, e.g. densenet121, "
                                        "inception_v3; else timm's default) or 'timm' (timm's default tag, e.g. "
                                        "densenet121.ra_in1k)", choices=WEIGHTS)
    baseline: bool = param(True, "also train the plain patch model without attention (same backbone, loss, folds "
                                 "and recipe) and report attention's gain in mean sensitivity, as the paper compares")
    folds: int = param(3, "grouped CV folds, each model scored on the same test set (1: one train/valid split)",
                       ge=1, le=10)
    test_frac: float = param(0.25, "share of lesions held out as the fixed test set (code: 2511 of 10015)",
                             ge=0.05, le=0.5)
    tta: bool = param(False, "also average flipped patch grids at test time (the ordered patches are the "
                             "paper's multi-crop already)")
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)
    attribution: bool = param(True, "compute attribution maps for a few test images")
    n_explain: int = param(6, "test images to explain", ge=1, le=64)
    attribution_methods: str = param("integrated_gradients,occlusion", "comma-separated lesionkit.attribution "
                                                                        "methods (pixel methods; see explain)")

    def validate(self) -> None:
        super().validate()
        if self.dx_only_class and self.dx_only_class.lower() == "all":
            raise ConfigError("dx_only_class: leave it empty for all classes")

    def effective(self, **smoke_overrides: Any) -> "PatchAttentionConfig":
        defaults = {"image_size": 32, "batch_size": 8, "folds": 2, "epochs": 1, "backbone": "mobilenetv3_small_050",
                    "pretrained": False, "max_images": 120, "n_explain": 2, "lr": 1e-3,
                    "attribution_methods": "integrated_gradients"}
        return super().effective(**{**defaults, **smoke_overrides})  # type: ignore[return-value]

    @property
    def backbone_arch(self) -> str:
        """The timm name the backbone is built and initialised from: `backbone` with the `weights` chosen."""
        return torchvision_weights(self.backbone) if self.weights == "torchvision" else self.backbone

    def weights_needed(self) -> dict[str, tuple[str, str]]:
        """The ImageNet weights of `backbone_arch` (e.g. densenet121.tv_in1k) when pretrained is true."""
        return {self.backbone_arch: ("pretrained", "backbone")} if self.pretrained is True else {}

    @property
    def full_size(self) -> tuple[int, int]:
        """The 450×600 load size scaled so that a patch is `image_size` pixels."""
        s = self.image_size / PAPER_PATCH
        return int(round(FULL_IMAGE[0] * s)), int(round(FULL_IMAGE[1] * s))

    @property
    def modes(self) -> list[str]:
        return ["off", "on"] if self.dx_weighting == "compare" else [self.dx_weighting]

    @property
    def headline(self) -> str:  # type: ignore[override]
        """The weighting mode the summary leads with and model.pth holds: the last one trained."""
        return self.modes[-1]


def load(cfg: PatchAttentionConfig) -> Any:
    """The dataset (subsampled by whole lesions with `max_images` or in smoke runs), with the diagnosis factor d
    per image in column ``dx_factor``. Images with no ``dx_type`` get factor 1 (treated as consensus)."""
    return with_dx_factor(load_data(cfg, max_images=cfg.max_images or None), cfg.dx_only_class)


def with_dx_factor(ds: Any, only_class: str = "") -> Any:
    """``ds`` with column ``dx_factor``: d per image from ``dx_type``, HAM10000's codes or ISIC 2018's
    LesionGroupings strings (missing: 1, as consensus); with ``only_class``, images of other classes get 1."""
    kinds = dx_type_codes(ds.df["dx_type"])
    unknown = sorted(set(kinds) - set(DX_TYPE_FACTORS))
    if unknown:
        raise ConfigError(f"dataset {ds.root}: column dx_type has values {unknown} that diagnosis-guided weighting "
                          f"cannot map; expected HAM10000's dx_type {sorted(DX_TYPE_FACTORS)} or ISIC 2018's "
                          f"diagnosis_confirm_type {sorted(set(CONFIRM_TYPES) - {'serial imaging showed no change'})}")
    d = kinds.map(DX_TYPE_FACTORS).to_numpy(np.float32)
    if only_class:
        if only_class not in ds.classes:
            raise ConfigError(f"dx_only_class={only_class!r} is not a class of this dataset: {ds.classes}")
        d = np.where(ds.df["label"].to_numpy() == only_class, d, 1.0).astype(np.float32)
    ds.df = ds.df.assign(dx_factor=d)
    return ds


def patch_dls(ds: Any, train_idx: np.ndarray, valid_idx: np.ndarray, cfg: PatchAttentionConfig) -> Any:
    """DataLoaders of patch grids (B, P, 3, s, s) in [0, 1] with targets (label, dx factor)."""
    return factor_patch_dls(ds, train_idx, valid_idx, GRIDS[cfg.n_patches], cfg.image_size, cfg.full_size,
                            cfg.batch_size, cfg.seed, cfg.num_workers)


def build_model(cfg: PatchAttentionConfig, n_classes: int, attention: bool = True) -> torch.nn.Module:
    """The patch-attention network of `variant` on `backbone` with the chosen ImageNet `weights` (registry name
    ``patch_attention``): 'code' is the
    released ``CNN_FC`` (input gate on, end gate off, mean of per-patch logits), 'paper' the in-block PatchSE.
    ``attention=False``: the same patch model with no attention module (the baseline)."""
    return create_model("patch_attention", pretrained=cfg.pretrained, backbone=cfg.backbone_arch,
                        n_patches=cfg.n_patches, num_classes=n_classes, patch_size=cfg.image_size,
                        image_size=cfg.full_size, input_gate=attention and cfg.variant == "code",
                        feature_gate=False, in_block=attention and cfg.variant == "paper",
                        combiner="mean", patch_dropout=cfg.patch_dropout)


def baseline_label(cfg: PatchAttentionConfig) -> str:
    """The no-attention model's row name; it is trained with the headline (last) weighting mode."""
    return f"no attention, {MODES[cfg.modes[-1]]}"


def variants(ds: Any, cfg: PatchAttentionConfig) -> list[Variant]:
    """One Variant per weighting mode (+ the no-attention ``baseline`` with the last mode's loss): class weights from
    the training rows, the factor on or off; torch Adam (β 0.9/0.999, eps 1e-8) without weight decay; StepLR halving
    the LR at 40/60/80% of training (epochs 20/30/40 of 50); selection on balanced accuracy (mean per-class recall);
    the patch grid as the test view (+ flips: `tta`)."""
    labels = ds.df["label_idx"].to_numpy()

    def variant(mode: str, attention: bool = True) -> Variant:
        key, label = (mode, MODES[mode]) if attention else (BASELINE, baseline_label(cfg))
        return Variant(key=key, label=label, model=lambda: build_model(cfg, ds.n_classes, attention),
                       dls=lambda tr, va: patch_dls(ds, tr, va, cfg),
                       loss=lambda tr: FactorCrossEntropy(class_weights(labels[tr], ds.n_classes, cfg.class_weighting),
                                                          use_factor=mode == "on"),
                       cbs=lambda: [FactorCallback()], optimizer=OPTIMIZER, schedule=Schedule(cfg.schedule, **STEPS),
                       epochs=cfg.epochs, lr=cfg.lr, monitor="bma",
                       metrics=fastai_metrics("multiclass", ds.n_classes), views="flips4" if cfg.tta else "none")

    return [variant(m) for m in cfg.modes] + ([variant(cfg.modes[-1], attention=False)] if cfg.baseline else [])


def score(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The multiclass report plus ``f1_weighted_code``: weighted F1 as utils.py computes it, f1_score(pred, target),
    i.e. weighted by predicted support (``f1_weighted`` is sklearn's, by true support)."""
    out = report(y, probs, classes)
    out["f1_weighted_code"] = f1(y, predict_labels(probs), average="weighted", support="predicted")
    return out


def paper_table(df: Any) -> Any:
    """mean ± std over fold models of the paper's metrics, under the paper's names, one column per model."""
    metrics = [m for m in ("balanced_accuracy", "f1_weighted", "f1_weighted_code", "auc_macro", "accuracy")
               if m in df]
    table = fold_table(df, metrics=metrics)
    return table.assign(metric=table["metric"].map(PAPER_METRICS))


def per_class_table(df: Any, classes: list[str]) -> Any:
    """Per class and weighting mode: AUC, sensitivity, specificity as mean ± std over folds (the paper's tables);
    "n/a" where a fold has no value (a class absent from the test set)."""
    import pandas as pd

    cols = [f"per_class/{c}/{m}" for c in classes for m in PER_CLASS]
    cols = [c for c in cols if c in df and df[c].notna().all()]  # a NaN: the class is absent from the test set
    text = fold_table(df, metrics=cols).set_index("metric") if cols else pd.DataFrame()
    cell = {(model, col): text.at[col, model] for col in text.index for model in text.columns}
    return pd.DataFrame([{"model": model, "class": c, **{m: cell.get((model, f"per_class/{c}/{m}"), "n/a")
                                                         for m in PER_CLASS}}
                         for model in df["model"].unique() for c in classes])


def summarize(df: Any, run: Run, cfg: PatchAttentionConfig) -> dict[str, Any]:
    """Fold means per model, the gains in mean sensitivity of diagnosis-guided weighting (attention models, with
    vs without) and of attention (headline mode vs the no-attention baseline), and the comparison table: only
    Gessert et al.'s own reported numbers (methods-a §1.6) beside ours, under the paper's metric names."""
    means = fold_means(df)
    head = MODES[cfg.headline] if MODES[cfg.headline] in means else next(iter(means))
    bma = {label: m["balanced_accuracy"] for label, m in means.items()}
    summary = {"bma": bma[head], "auc_macro": means[head].get("auc_macro", float("nan")),
               "f1_weighted": means[head].get("f1_weighted", float("nan"))}
    ours: dict[str, float] = {}
    if MODES["on"] in bma and MODES["off"] in bma:
        ours["balanced_accuracy_gain_dx_weighting"] = bma[MODES["on"]] - bma[MODES["off"]]
        summary.update(bma_without_dx=bma[MODES["off"]], dx_gain=ours["balanced_accuracy_gain_dx_weighting"])
    base = baseline_label(cfg)
    if base in bma:
        ours["balanced_accuracy_gain_patch_attention"] = bma[head] - bma[base]
        summary.update(bma_no_attention=bma[base], attention_gain=ours["balanced_accuracy_gain_patch_attention"])
    label = (f"{cfg.data_dir}, {cfg.image_size}-px patches (P={cfg.n_patches}), {cfg.backbone} "
             f"({'ImageNet' if cfg.pretrained else 'random init'}), {cfg.variant} variant, {cfg.epochs} ep, "
             f"mean of {df.groupby('model')['fold'].nunique().max()} fold models ({head})")
    stds = fold_summary(df, metrics=list(means[head])).set_index("model")
    return record_summary(run, cfg, summary, ours, label, include_unreported=False,  # only Gessert et al.'s numbers
                          paper_names=PAPER_METRICS, folds_mean=means,
                          folds_std={m: {k[:-4]: float(v) for k, v in row.items() if k.endswith("_std")}
                                     for m, row in stds.iterrows()})


def evaluation(ds: Any, cfg: PatchAttentionConfig) -> Evaluation:
    """How the models are scored (``lesionkit.engine.evaluation``): fold 0, the patch grid and views, the
    multiclass report with the code's weighted F1. A set without dx_type gets factor 1 everywhere (the factor only
    weights the training loss)."""
    if "dx_factor" not in ds.df:
        ds.df = ds.df.assign(dx_factor=np.float32(1.0))
    return Evaluation(variants(ds, cfg), report=lambda y, p: score(y, p, list(ds.classes)))


def evaluate_external(learners: dict[str, Any], ds: Any, cfg: PatchAttentionConfig, run: Run) -> dict[str, Any] | None:
    """Every fold-0 model (each weighting mode, the baseline) on `test_dir`: its most held-out official part (e.g.
    derm7pt's test index, ISIC 2018 Task 3 Test), classes mapped onto the training ones, the same patch grid and
    views; reports and predictions as ``external_<key>``. None without test_dir."""
    ext = load_external(cfg, list(ds.classes))
    if ext is None:
        return None
    return evaluate_models(run, evaluation(ext, cfg), {k: [learn] for k, learn in learners.items()}, ext).by_label()


def train(ds: Any, splits: Any, variants: list[Variant], cfg: PatchAttentionConfig, run: Run) -> Any:
    """Every variant on every fold (``lesionkit.engine.run_folds``: resumable, each fold model scored on the test
    rows, folds.csv). The fold-0 models are saved: model.pth the last weighting mode's, model_<key>.pth the others
    (model_baseline.pth: the no-attention model, trained with the last mode's weighting)."""
    res = run_folds(run, ds, splits, variants, report=lambda y, p: score(y, p, ds.classes), seed=cfg.seed,
                    settings=cfg.engine_settings())
    save_models(run, res.learners, cfg.headline, spec=lambda key: {
        "classes": ds.classes, "dx_weighting": cfg.headline if key == BASELINE else key, "fold": 0,
        "attention": key != BASELINE, "input": "[0, 1] (no normalisation)"})
    return res


def explain(learn: Any, ds: Any, idx: np.ndarray, cfg: PatchAttentionConfig, run: Run) -> Any:
    """Attribution on whole 450×600-geometry images (the model cuts its patches itself, so maps cover the whole
    lesion); Grad-CAM is skipped: its layer holds patches stacked, not the image plane. Stored with the run."""
    window = max(4, cfg.image_size // 4)
    return explain_rows(learn.model, ds, idx, cfg.methods, run.dir, size=cfg.full_size, batch_size=4,
                        model_name=f"patch_{cfg.backbone} ({cfg.variant})",
                        method_kw={"integrated_gradients": {"n_steps": 8},
                                   "occlusion": {"window": window, "stride": window}})


__all__ = ["DEVIATIONS", "BASELINE", "OPTIMIZER", "PAPER_METRICS", "PatchAttentionConfig", "load", "with_dx_factor",
           "patch_dls", "build_model", "baseline_label", "variants", "score", "paper_table", "per_class_table",
           "summarize", "evaluation", "evaluate_external", "train", "explain", "FactorCrossEntropy", "FactorCallback"]
