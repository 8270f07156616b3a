"""se_lcn: the SE-LCN cascade (methods-a §3): lesion segmenter → masked / LAE inputs → symmetry classifier → its
Grad-CAM++ maps, cached in the run record → diagnosis classifier whose E-layer takes the map as an extra channel.

Three networks trained one after the other (§3.1), each an engine stage with the paper's settings (§3.4), written out
in ``papers.se_lcn.stages`` (``segmenter_variant``, ``symmetry_variant``, ``classifier_variants``). Images are hair-removed
(``hair_removal``, papers.se_lcn.hair), inputs in [0, 1] with no online augmentation (the code's transforms are identity);
the classifier samples class-balanced (the code writes a balanced copy of HAM10000); CAMs come from the symmetry
net on LAE inputs ("none_lae", the paper's best), at 224 px.
Fixed on purpose (§3.7): one split rule (official parts, else grouped by lesion and patient); stages reading one
dataset share the run's split, so no test image trains any stage (the original's symmetry set holds 322
classification-test images). "Without CAM" is the
same classifier with an all-zero CAM channel: the ablation isolates what the map adds; the paper's own comparison
row, the standalone EfficientNet, is trained beside them with its own recipe (``baseline``).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lesionkit.attribution import canonical_method, explain_rows, summarize_scores
from lesionkit.attribution.figures import plot_store_grid
from lesionkit.config import ConfigError, param, param_like
from lesionkit.data.detect import detect_format
from lesionkit.data.metadata_values import bad_metadata_policy
from lesionkit.data.splits import Splits
from lesionkit.data.table import require_two_classes
from lesionkit.engine import fold_means, run_folds, score, train_variant
from lesionkit.engine.evaluation import Evaluation, evaluate_models
from lesionkit.layers.gradcam_pp import GRADCAM_PP_FORMS
from lesionkit.models.se_lcn import SEG_INPUT_NORMS
from lesionkit.papers import common
from lesionkit.papers.common import (
    TrainConfig, lesion_subsample, load_external, resolve_data_dir, save_models,
)
from lesionkit.papers.se_lcn.cams import cached_cams, cam_scores, compute_cams, lent
from lesionkit.papers.se_lcn.deviations import DEVIATIONS
from lesionkit.papers.se_lcn.hair import hair_free
from lesionkit.papers.se_lcn.lae import (
    INPUT_MODES, TARGETS, cascade_inputs, lae_table, load_stage_data, predict_masks, same_images,
    true_masks,
)
from lesionkit.papers.se_lcn.reuse import cascade_on
from lesionkit.papers.se_lcn.segmentation import segmentation_scores
from lesionkit.papers.se_lcn.summary import METRICS, headline_table, pick, summarize
from lesionkit.papers.se_lcn.stages import (
    CLASSIFIERS, baseline_variant, classifier_variants, own_split, segmenter_variant, split_table, symmetry_variant,
)
from lesionkit.records.runs import Run

SYMMETRY_METRICS = ("accuracy", "f1_weighted", "auc", "sensitivity", "specificity")


@dataclass(frozen=True)
class SELCNConfig(TrainConfig):
    notebook: ClassVar[str] = "se_lcn"
    paper: ClassVar[str] = "se_lcn"
    headline: ClassVar[str] = "with_cam"

    data_dir: str = param_like(TrainConfig, "data_dir", "classifier dataset (HAM10000 layout), or 'synthetic' (the "
                                                        "embedded default) / 'synthetic-null' (same images without "
                                                        "class signal: the sanity control)")
    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set folder for the classifier (empty: "
                                                        "hold out lesions of data_dir)")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (64 px, 1 epoch per stage, ~160 images, Lite0) to check "
                                                   "the pipeline")
    sym_data_dir: str = param("", "dataset with lesion masks and a symmetry label for the symmetry stage (and the "
                                  "segmenter unless seg_data_dir is set); empty: data_dir; e.g. PH2")
    seg_data_dir: str = param("", "dataset with lesion masks the segmenter trains on (the paper: HAM10000 / ISIC "
                                  "2018 Task 1 masks); empty: the symmetry dataset's own masks")
    hair_removal: bool = param(True, "the paper's hair removal (black-hat 17x17 cross, threshold 10, Telea "
                                     "inpainting) of every image all three networks read")
    image_size: int = param(256, "resolution of all three networks (paper: 256; a multiple of 16)", ge=32, le=1024)
    epochs: int = param(100, "classifier epochs (paper: at most 100, early stopping)", ge=1, le=10_000)
    batch_size: int = param(32, "classifier batch size (paper: 32)", ge=2, le=4096)
    lr: float = param(1.2009e-4, "peak learning rate of the classifier's schedule (constant under the paper "
                                 "schedule; paper: its tuned 1.2009e-4)", ge=1e-7, le=10.0)
    wd: float = param(1.0796e-4, "classifier Adam weight decay (L2, as torch.optim.Adam)", ge=0, le=1.0)
    patience: int = param(25, "classifier early stopping on validation loss (paper: 25; 0: off)", ge=0)
    balanced: bool = param(True, "class-balanced sampling of classifier training rows (the paper trains on an "
                                 "offline class-balanced copy of HAM10000)")
    pretrained: bool | str = param(True, "ImageNet init of the segmenter encoder and classifier backbone (the "
                                         "paper's): true (offline: Lite0/Lite2 weights or the Hugging Face cache), "
                                         "false, or a weight file")
    classifier_backbone: str = param("efficientnet_b4", "timm backbone of the diagnosis classifier (paper: B4)")
    drop_path_rate: float = param(0.2, "stochastic depth in the classifier backbone's blocks, rising to this rate "
                                       "(torchvision's B4 default 0.2, which the code trains with)", ge=0, le=0.9)
    baseline: bool = param(True, "also train the paper's standalone EfficientNet baseline with its own recipe (the "
                                 "baseline_* settings), the row SE-LCN's gain is measured against")
    baseline_lr: float = param(1e-5, "peak learning rate of the baseline's schedule (constant under the paper "
                                     "schedule; paper: 1e-5)", ge=1e-7, le=10.0)
    baseline_wd: float = param(5e-4, "baseline Adam weight decay (L2, as torch.optim.Adam; paper: 5e-4)", ge=0.0,
                               le=1.0)
    baseline_batch_size: int = param(16, "baseline batch size (paper: 16)", ge=2, le=4096)
    baseline_dropout: float = param(0.4, "dropout before the baseline's linear head (torchvision's B4: 0.4)", ge=0.0,
                                    le=0.9)
    baseline_weighted: bool = param(True, "1/count class weights in the baseline's cross-entropy (paper: yes)")
    baseline_patience: int = param(10, "baseline early stopping on validation loss (paper: 10; 0: off)", ge=0)
    folds: int = param(4, "classifier fold models (paper: 4-fold CV, each tested on the same test set)", ge=1, le=20)
    classifier_input: str = param("none", "classifier input: none (image), mask (image x mask) or lae",
                                  choices=INPUT_MODES)
    cam_source: str = param("lae", "symmetry net input, hence its CAM: none, mask or lae (paper best: lae)",
                            choices=INPUT_MODES)
    lae_enlarge: float = param(0.2, "LAE box enlargement per side, share of the box size", ge=0.0, le=2.0)
    cam_size: int = param(224, "size of the cached CAMs (paper: fixed 224)", ge=8, le=1024)
    cam_form: str = param("paper", "Grad-CAM++ denominator of the symmetry CAMs and the classifier's Grad-CAM++ "
                                   "maps: paper (the Grad-CAM++ paper's (sum_uv A)*g^3) or code (SE-LCN's "
                                   "gradcam.py: sum_uv(A*g^3), which produced SE-LCN's numbers)",
                          choices=GRADCAM_PP_FORMS)
    seg_encoder: str = param("tu-xception65", "DeepLabV3+ encoder (tu-<timm name>; paper: Xception with 16 middle "
                                              "blocks, as timm's xception65)")
    seg_norm: str = param("weights", "segmenter input normalisation: weights (the mean/std its encoder's timm "
                                     "ImageNet weights were trained with: 0.5/0.5 for xception65) or imagenet "
                                     "(ImageNet's mean/std)", choices=SEG_INPUT_NORMS)
    seg_head: str = param("paper", "DeepLabV3+ head: paper (the code's: ASPP 6/12/18, two 3x3 decoder convs with "
                                   "dropout) or smp (segmentation-models-pytorch's: rates 12/24/36, separable convs)",
                          choices=("paper", "smp"))
    seg_epochs: int = param(500, "segmentation epochs (paper: 500; 0: same as epochs)", ge=0, le=10_000)
    seg_batch_size: int = param(32, "segmentation batch size (paper: 32)", ge=2, le=4096)
    seg_lr: float = param(1e-3, "peak learning rate of the segmenter's schedule (Adam, no weight decay; the "
                                "paper schedule decays it polynomially, power 0.9)", ge=1e-7, le=10.0)
    rank_lambda: float = param(0.05, "weight of the rank loss beside Dice (paper: 0.05)", ge=0.0, le=10.0)
    sym_epochs: int = param(0, "symmetry net epochs (0: same as epochs; paper: at most 100)", ge=0, le=10_000)
    sym_batch_size: int = param(8, "symmetry net batch size (paper: 8)", ge=2, le=4096)
    sym_lr: float = param(3.3445e-5, "peak learning rate of the symmetry net's schedule (constant under the "
                                     "paper schedule; paper: its tuned 3.3445e-5)", ge=1e-7, le=10.0)
    sym_wd: float = param(9.669e-4, "symmetry net Adam weight decay (L2, as torch.optim.Adam)", ge=0.0, le=1.0)
    sym_patience: int = param(10, "symmetry net early stopping on validation loss (0: off)", ge=0)
    sym_weighted: bool = param(True, "1/count class weights in the symmetry loss (paper: yes)")
    sym_augment: str = param("none", "symmetry net training augmentation: none (the code's identity transforms) or "
                                     "dihedral (flips and quarter turns, which keep the label)",
                             choices=("none", "dihedral"))
    schedule: str = param("paper", "paper (poly decay for the segmenter, constant lr for the other two) or fastai's "
                                   "one_cycle for all three", choices=("paper", "one_cycle"))
    attribution: bool = param(True, "attribution maps of the SE-LCN classifier, scored against the lesion masks")
    attribution_methods: str = param("gradcam++", "comma-separated lesionkit.attribution methods (paper: "
                                                  "Grad-CAM++ at the E-layer)")
    n_attribution: int = param(8, "test images to explain", ge=1, le=256)
    max_images: int = param(0, "classifier images to use (whole lesions, stratified); 0: all", ge=0)
    sym_max_images: int = param(0, "symmetry images to use when sym_data_dir is set; 0: all", ge=0)
    seg_max_images: int = param(0, "segmenter images to use when seg_data_dir is set; 0: all", ge=0)

    def validate(self) -> None:
        super().validate()
        if self.image_size % 16:
            raise ConfigError(f"image_size={self.image_size} must be a multiple of 16 (DeepLabV3+ output stride)")
        for name in ("sym_data_dir", "seg_data_dir"):
            value = getattr(self, name)
            if value and value not in ("synthetic",) and not Path(value).exists():
                raise ConfigError(f"{name} {value!r} does not exist; give a folder with lesion masks (e.g. PH2) or "
                                  "leave it empty")

    def weights_needed(self) -> dict[str, tuple[str, str]]:
        """The segmenter's encoder (`tu-<timm name>`) and the classifier's backbone."""
        if self.pretrained is not True:
            return {}
        return {self.seg_encoder.removeprefix("tu-"): ("pretrained", "seg_encoder"),
                self.classifier_backbone: ("pretrained", "classifier_backbone")}

    def stage_epochs(self, stage: str) -> int:
        value = {"seg": self.seg_epochs, "sym": self.sym_epochs}.get(stage, 0)
        return value or self.epochs

    def effective(self, **overrides: Any) -> "SELCNConfig":
        """Smoke: one epoch per stage at 64 px on ~160 images, Lite0 encoder and backbone (their offline ImageNet
        weights: pretrained stays true)."""
        if not self.smoke:
            return self
        small = {"epochs": 1, "seg_epochs": 1, "sym_epochs": 1, "image_size": 64, "cam_size": 64, "folds": 1,
                 "batch_size": 16, "seg_batch_size": 16, "sym_batch_size": 16, "pretrained": True,
                 "seg_encoder": "tu-tf_efficientnet_lite0", "classifier_backbone": "tf_efficientnet_lite0",
                 "n_attribution": min(self.n_attribution, 4), "max_images": self.max_images or 160,
                 "sym_max_images": self.sym_max_images or 80, "seg_max_images": self.seg_max_images or 80}
        return super().effective(**{**small, **overrides})  # type: ignore[return-value]


# --- data and split ------------------------------------------------------------------------------------------------
def _hair(ds: Any, cfg: SELCNConfig) -> Any:
    """``ds`` with hair-free images (papers.se_lcn.hair, cached) when ``hair_removal`` is on, else ``ds``."""
    return hair_free(ds, cfg.image_size) if cfg.hair_removal else ds


def load_data(cfg: SELCNConfig) -> tuple[Any, Any]:
    """(classifier dataset, symmetry dataset), hair-removed when ``hair_removal``. Without `sym_data_dir` both are
    `data_dir`, same rows in the same order (diagnosis resp. binary asymmetry as label). Without `seg_data_dir`
    the symmetry dataset's masks also train the segmenter (:func:`segmenter_data`)."""
    sym_root = resolve_data_dir(cfg.sym_data_dir or cfg.data_dir)
    sym_fmt = cfg.data_format if not cfg.sym_data_dir else "auto"
    if (sym_fmt if sym_fmt != "auto" else detect_format(sym_root)) not in TARGETS["symmetry"]:
        raise ValueError(f"{sym_root}: the symmetry stage needs a symmetry label (the synthetic set's or PH2's "
                         "asymmetry) and this dataset has none: set sym_data_dir to such a dataset (e.g. PH2)")
    with bad_metadata_policy(cfg.bad_metadata):
        cls_ds = load_stage_data(resolve_data_dir(cfg.data_dir), cfg.data_format, "classifier")
        sym_ds = load_stage_data(sym_root, sym_fmt, "symmetry")
    require_two_classes(cls_ds, f"data_dir {cfg.data_dir}")
    if cfg.max_images and len(cls_ds) > cfg.max_images:
        keep = lesion_subsample(cls_ds.df, cfg.max_images, cfg.seed)
        cls_ds = cls_ds.subset(keep)
        if not cfg.sym_data_dir:
            sym_ds = sym_ds.subset(keep)
    if cfg.sym_data_dir and cfg.sym_max_images and len(sym_ds) > cfg.sym_max_images:
        sym_ds = sym_ds.subset(lesion_subsample(sym_ds.df, cfg.sym_max_images, cfg.seed))
    if not sym_ds.has_masks:
        raise ValueError(f"{sym_ds.root}: no lesion masks (mask_path is empty): the symmetry stage's CAM scores and, "
                         "without seg_data_dir, the segmenter need them")
    return _hair(cls_ds, cfg), _hair(sym_ds, cfg)


def split(cls_ds: Any, sym_ds: Any, cfg: SELCNConfig, run: Run) -> tuple[Any, Any]:
    """(classifier split: the run's, recorded as splits.csv; symmetry split: its test set and fold 0 when both read
    the same images, else a grouped split of sym_data_dir from `seed`, recorded as seg_splits.csv)."""
    splits = common.split(cls_ds, cfg, run, folds=cfg.folds)
    if same_images(cls_ds, sym_ds):
        return splits, Splits(splits.test, splits.folds[:1])
    return splits, own_split(sym_ds, cls_ds, splits, cfg, run, "seg_splits.csv")


def segmenter_data(cfg: SELCNConfig, sym_ds: Any, sym_splits: Any, cls_ds: Any, splits: Any,
                   run: Run) -> tuple[Any, Any]:
    """(dataset, split) the segmenter trains on: the symmetry dataset and split without `seg_data_dir`; with it, that
    folder's images with a mask (HAM10000 / ISIC 2018 `<id>_segmentation.png`, ISIC 2017, PH2, a CSV's mask_path),
    hair-removed, its own grouped split (segmenter_splits.csv) testing every image/lesion of the classifier's test."""
    if not cfg.seg_data_dir:
        return sym_ds, sym_splits
    with bad_metadata_policy(cfg.bad_metadata):
        ds = load_stage_data(resolve_data_dir(cfg.seg_data_dir), "auto", "classifier")
    if not ds.has_masks:
        raise ValueError(f"seg_data_dir {cfg.seg_data_dir}: no lesion masks found ({ds.name} layout, {len(ds)} "
                         "images): put the masks beside the images as <image_id>_segmentation.png (HAM10000 / ISIC "
                         "2018 Task 1) or give a CSV with a mask_path column; or leave seg_data_dir empty to train "
                         "the segmenter on the symmetry dataset's masks")
    ds = ds.subset(np.flatnonzero(ds.df["mask_path"].notna().to_numpy()))
    if cfg.seg_max_images and len(ds) > cfg.seg_max_images:
        ds = ds.subset(lesion_subsample(ds.df, cfg.seg_max_images, cfg.seed))
    ds = _hair(ds, cfg)
    return ds, own_split(ds, cls_ds, splits, cfg, run, "segmenter_splits.csv")


# --- the stages ----------------------------------------------------------------------------------------------------
def train_segmenter(seg_ds: Any, seg_splits: Any, cfg: SELCNConfig, run: Run) -> Any:
    """Stage 1, "segmenter", on fold 0 of the segmentation split (resumable); saved as model_segmenter."""
    v, (tr, va) = segmenter_variant(seg_ds, cfg), seg_splits.folds[0]
    learn = train_variant(run, v, tr, va, cfg.seed, settings=cfg.engine_settings())
    save_models(run, {"segmenter": learn}, spec=lambda _: {"image_size": cfg.image_size})
    return learn


def evaluate_segmenter(learn: Any, seg_ds: Any, idx: np.ndarray, cfg: SELCNConfig, run: Run) -> dict[str, Any]:
    """Per-image Dice, Jaccard, sensitivity, specificity on rows `idx`, averaged; the masks for the figures."""
    pred, truth = predict_masks(learn, seg_ds, idx), true_masks(seg_ds, idx, cfg.image_size)
    scores = segmentation_scores(pred, truth)
    run.log_metrics({"segmentation_test": scores})
    return {"scores": scores, "pred": pred, "truth": truth}


def build_inputs(seg_learn: Any, cls_ds: Any, seg_ds: Any, cfg: SELCNConfig, run: Run) -> tuple[dict, dict]:
    """Stage 2: (the segmenter's masks of every image, {"seg": of the symmetry dataset `seg_ds`, "cls"}; the
    cascade's input sets, papers.se_lcn.lae's cascade_inputs, written under the run's inputs/). The LAE boxes are kept as
    lae_boxes.csv."""
    seg_masks = predict_masks(seg_learn, seg_ds)
    masks = {"seg": seg_masks, "cls": seg_masks if same_images(cls_ds, seg_ds) else predict_masks(seg_learn, cls_ds)}
    run.save_table(lae_table(cls_ds, masks["cls"], cfg.lae_enlarge), "lae_boxes.csv")
    return masks, cascade_inputs(cls_ds, seg_ds, masks, cfg.cam_source, cfg.classifier_input, cfg.image_size,
                                 run.dir / "inputs", cfg.lae_enlarge)


def train_symmetry(sym_ds: Any, seg_splits: Any, cfg: SELCNConfig, run: Run) -> Any:
    """Stage 3, "symmetry_fold0" (engine.run_folds over the segmentation split's one fold): test scores in
    symmetry.csv and metrics.json's symmetry_test; saved as model_symmetry. FoldResults."""
    res = run_folds(run, sym_ds, seg_splits, [symmetry_variant(sym_ds, cfg)], seed=cfg.seed, table="symmetry.csv",
                    report=lambda y, p: pick(score(y, p, sym_ds.classes), SYMMETRY_METRICS), figures=False,
                    settings=cfg.engine_settings())
    save_models(run, res.learners, spec=lambda _: {"classes": sym_ds.classes, "input": cfg.cam_source})
    run.log_metrics({"symmetry_test": pick(res.table.iloc[0].to_dict(), SYMMETRY_METRICS)})
    return res


def cache_cams(sym_learn: Any, cam_ds: Any, cfg: SELCNConfig, run: Run, name: str = "classifier") -> dict:
    """Stage 4: the symmetry CAM of every image of `cam_ds`, cached as the run's cams/<name>.npz for the classifier
    stage (a resumed run reads it back): {image_id: map}."""
    return cached_cams(sym_learn, cam_ds, cfg.cam_size, run.dir / "cams" / f"{name}.npz")


def score_symmetry_cams(sym_learn: Any, sym_ds: Any, seg_ds: Any, idx: np.ndarray, cfg: SELCNConfig,
                        run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The symmetry net's CAM scores on rows `idx` against the true masks: per image (cam_scores.csv) and
    mean ± std (IoU and overlap nan-skipping as the original's nanmean)."""
    df = cam_scores(compute_cams(sym_learn, sym_ds.subset(idx), cfg.cam_size), true_masks(seg_ds, idx, cfg.cam_size),
                    seg_ds.df["image_id"].iloc[idx].tolist(), "symmetry net")
    run.save_table(df, "cam_scores.csv")
    summary = summarize_scores(df)
    run.log_metrics({"symmetry_cam": summary.iloc[0].drop(["model", "method"]).to_dict()})
    return df, summary


def train_classifiers(ds: Any, cams: dict[str, np.ndarray], splits: Any, cfg: SELCNConfig, run: Run) -> Any:
    """Stage 5: both classifiers and, with ``baseline``, the standalone baseline on every fold of the run's split
    (engine.run_folds: with_cam_fold<k>, ...), each fold model scored on the same test rows (classifier_folds.csv);
    fold-0 models saved, fold means logged."""
    res = run_folds(run, ds, splits, classifier_variants(ds, cams, cfg), seed=cfg.seed, table="classifier_folds.csv",
                    report=lambda y, p: score(y, p, ds.classes), settings=cfg.engine_settings())
    save_models(run, res.learners, prefix="model_classifier",
                spec=lambda key: {"classes": ds.classes, "cam": _CAM_INPUT[key]})
    run.log_metrics({"test_classifiers": fold_means(res.table.drop(columns="params"))})
    return res


_CAM_INPUT = {"with_cam": "cached", "without_cam": "zeros", "baseline": "none"}  # each classifier's second input


def evaluation(ds: Any, cams: dict[str, np.ndarray], cfg: SELCNConfig) -> Evaluation:
    """How the classifiers are scored (``lesionkit.engine.evaluation``): fold 0 on (image, CAM) loaders over ``ds``,
    its maps read from ``cams`` (the standalone baseline's on the images alone), the paper's metrics."""
    return Evaluation(classifier_variants(ds, cams, cfg), report=lambda y, p: score(y, p, ds.classes))


def evaluate_external(cfg: SELCNConfig, seg_learn: Any, sym_learn: Any, results: Any, cams: dict[str, np.ndarray],
                      run: Run, ds: Any = None) -> pd.DataFrame:
    """The whole cascade on `test_dir` (``common.load_external``: its held-out part, classes renamed to those of
    ``ds``, default the classifiers' vocab; hair-removed as the training images): masks → inputs → CAMs
    (cams/external.npz, lent to `cams`, which the classifiers' loaders read, then taken back: a training id equal to
    an external one keeps its map) → every classifier's fold-0 model (the baseline reads no map), as
    external_<model>. One row per model."""
    classes = list(ds.classes) if ds is not None else list(next(iter(results.learners.values())).dls.vocab)
    binary = ds.task == "binary" if ds is not None else len(classes) == 2
    ext = load_external(cfg, classes, positive=classes[1] if binary else None)
    if ext is None:
        raise ValueError("evaluate_external: test_dir is empty; give an external labelled test set folder")
    cls_in, ext_cams = cascade_on(ext, cfg, seg_learn, sym_learn, run.dir / "inputs" / "external",
                                  run.dir / "cams" / "external.npz")
    with lent(cams, ext_cams):
        reports = evaluate_models(run, evaluation(cls_in, cams, cfg), {k: [learn] for k, learn in
                                                                       results.learners.items()}, cls_in).reports
    return pd.DataFrame([{"model": CLASSIFIERS[k], "images": len(cls_in), **pick(reports[f"external_{k}"], METRICS)}
                         for k in results.learners])


# --- attribution, comparison ---------------------------------------------------------------------------------------
def explain(learn: Any, ds: Any, idx: np.ndarray, masks: np.ndarray, cfg: SELCNConfig,
            run: Run) -> tuple[Any, pd.DataFrame]:
    """Attribution maps of an SE-LCN classifier on test rows `idx` (its loaders' CAM input passed along, not
    attributed), scored against `masks` (papers.se_lcn.lae.reference_masks), stored for the viewer: (grid, per-image
    scores). Grad-CAM++ takes ``cam_form``'s denominator, as the symmetry CAMs do."""
    idx = np.asarray(idx)[: cfg.n_attribution]
    form = {m: {"form": cfg.cam_form} for m in cfg.methods if canonical_method(m) == "gradcam++"}
    store = explain_rows(learn.model, ds, idx, cfg.methods, run.dir, dls=learn.dls, masks=masks[: len(idx)],
                         model_name="selcn_classifier", method_kw=form)
    fig = plot_store_grid(store)
    run.save_figure(fig, "attribution_grid")
    return fig, pd.read_csv(run.dir / "attribution_scores.csv")


def cleanup_inputs(run: Run) -> None:
    """Delete the masked/LAE image copies (derived from the data; lae_boxes.csv and cams/ stay)."""
    shutil.rmtree(run.dir / "inputs", ignore_errors=True)


__all__ = ["CLASSIFIERS", "DEVIATIONS", "METRICS", "SELCNConfig", "load_data", "split", "segmenter_data", "split_table",
           "segmenter_variant", "symmetry_variant", "classifier_variants", "train_segmenter", "evaluate_segmenter",
           "build_inputs", "train_symmetry", "cache_cams", "score_symmetry_cams", "train_classifiers",
           "evaluate_external", "evaluation", "explain", "headline_table", "summarize", "cleanup_inputs",
           "baseline_variant"]
