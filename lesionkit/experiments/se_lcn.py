"""se_lcn: the SE-LCN cascade (methods-a §3): lesion segmentation → masked / LAE inputs → symmetry classifier →
its Grad-CAM++ maps, cached to disk → diagnosis classifier whose E-layer takes the map as an extra feature channel.

Three networks trained one after the other, no joint loss (§3.1). Paper choices are the defaults: DeepLabV3+
(Xception) with Dice + 0.05·rank loss and poly-decayed Adam 1e-3; SqueezeNet symmetry net, Adam 3.3445e-5, wd 9.669e-4,
batch 8, 1/count-weighted CE, early stopping on validation loss (patience 10); EfficientNet-B4 + E-layer, Adam
1.2009e-4, wd 1.0796e-4, batch 32, unweighted CE, patience 25; inputs in [0, 1] without online augmentation (the code's
transforms are identity) and class-balanced training (the code balances offline: NV down to 2000, the others
up with flipped/rotated copies; here by sampling); CAMs of the symmetry net trained on LAE inputs ("none_lae", the
paper's best row), at 224 px; 4 fold models evaluated on one held-out test set, mean ± std.

Fixed on purpose (methods-a §3.7): every split is grouped by lesion/patient, and when all stages use one dataset they
share one split, so no test image trains any stage (the original's symmetry set holds 322 classification-test images);
CAMs go into one .npz per dataset (image ids + float16 maps) instead of one pickled-model-dependent .npy per image.
"Without CAM" is the same classifier with an all-zero CAM channel: the ablation isolates what the map adds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import ConfigError, param, param_like
from ..runs import Run, start_notebook_run
from .common import TrainConfig, model_norm, resolve_data_dir

NOTEBOOK = "se_lcn"
PAPER = "se_lcn"
INPUT_MODES = ("none", "mask", "lae")


@dataclass(frozen=True)
class SELCNConfig(TrainConfig):
    data_dir: str = param_like(TrainConfig, "data_dir", "classifier dataset (HAM10000 layout), or 'synthetic' (the "
                                                        "embedded default) / 'synthetic-null' (same images without "
                                                        "class signal: the sanity control)")
    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set folder for the classifier (empty: "
                                                        "hold out lesions of data_dir)")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (64 px, 1 epoch per stage, ~160 images, Lite0) to check "
                                                   "the pipeline")
    seg_data_dir: str = param("", "dataset with lesion masks and a symmetry label for the segmentation and "
                                  "symmetry stages (empty: data_dir; e.g. PH2)")
    image_size: int = param(256, "resolution of all three networks (paper: 256; a multiple of 16)", ge=32, le=1024)
    epochs: int = param(100, "classifier epochs (paper: at most 100, early stopping)", ge=1, le=10_000)
    batch_size: int = param(32, "classifier batch size (paper: 32)", ge=2, le=4096)
    lr: float = param(1.2009e-4, "classifier Adam lr (paper's tuned value)", ge=1e-7, le=10.0)
    wd: float = param(1.0796e-4, "classifier Adam weight decay (L2, as torch.optim.Adam)", ge=0, le=1.0)
    patience: int = param(25, "classifier early stopping on validation loss (paper: 25; 0 = off)", ge=0)
    balanced: bool = param(True, "class-balanced sampling of classifier training rows (the paper trains on an "
                                 "offline class-balanced copy of HAM10000)")
    pretrained: bool | str = param(False, "ImageNet init of the segmenter encoder and classifier backbone: true "
                                          "(lite0/lite2 only), false, or a weight file")
    classifier_backbone: str = param("efficientnet_b4", "timm backbone of the diagnosis classifier (paper: B4)")
    folds: int = param(4, "classifier fold models (paper: 4-fold CV, each tested on the same test set)", ge=1, le=20)
    classifier_input: str = param("none", "classifier input: none (image), mask (image x mask) or lae",
                                  choices=INPUT_MODES)
    cam_source: str = param("lae", "symmetry net input, hence its CAM: none, mask or lae (paper best: lae)",
                            choices=INPUT_MODES)
    lae_enlarge: float = param(0.2, "LAE box enlargement per side, share of the box size", ge=0.0, le=2.0)
    cam_size: int = param(224, "size of the cached CAMs (paper: fixed 224)", ge=8, le=1024)
    seg_encoder: str = param("tu-xception41", "DeepLabV3+ encoder (smp name; paper: Xception)")
    seg_epochs: int = param(0, "segmentation epochs (0: same as epochs; paper: 500)", ge=0, le=10_000)
    seg_batch_size: int = param(32, "segmentation batch size (paper: 32)", ge=2, le=4096)
    seg_lr: float = param(1e-3, "segmentation Adam lr, poly-decayed (power 0.9)", ge=1e-7, le=10.0)
    rank_lambda: float = param(0.05, "weight of the rank loss beside Dice (paper: 0.05)", ge=0.0, le=10.0)
    sym_epochs: int = param(0, "symmetry net epochs (0: same as epochs; paper: at most 100)", ge=0, le=10_000)
    sym_batch_size: int = param(8, "symmetry net batch size (paper: 8)", ge=2, le=4096)
    sym_lr: float = param(3.3445e-5, "symmetry net Adam lr (paper's tuned value)", ge=1e-7, le=10.0)
    sym_wd: float = param(9.669e-4, "symmetry net Adam weight decay", ge=0.0, le=1.0)
    sym_patience: int = param(10, "symmetry net early stopping on validation loss (0 = off)", ge=0)
    sym_weighted: bool = param(True, "1/count class weights in the symmetry loss (paper: yes)")
    schedule: str = param("paper", "paper (constant Adam, poly decay for segmentation) or fastai's one_cycle",
                          choices=("paper", "one_cycle"))
    attribution: bool = param(True, "attribution maps of the SE-LCN classifier, scored against the lesion masks")
    attribution_methods: str = param("gradcam++", "comma-separated lesionkit.attribution methods (paper: "
                                                  "Grad-CAM++ at the E-layer)")
    n_attribution: int = param(8, "test images to explain", ge=1, le=256)
    max_images: int = param(0, "classifier images to use (whole lesions, stratified); 0 = all", ge=0)
    seg_max_images: int = param(0, "segmentation/symmetry images to use when seg_data_dir is set; 0 = all", ge=0)

    def validate(self) -> None:
        super().validate()
        if self.image_size % 16:
            raise ConfigError(f"image_size={self.image_size} must be a multiple of 16 (DeepLabV3+ output stride)")
        if self.seg_data_dir and self.seg_data_dir not in ("synthetic",) and not Path(self.seg_data_dir).exists():
            raise ConfigError(f"seg_data_dir {self.seg_data_dir!r} does not exist; give a folder with lesion masks "
                              "(e.g. PH2) or leave it empty to use data_dir")

    def stage_epochs(self, stage: str) -> int:
        value = {"seg": self.seg_epochs, "sym": self.sym_epochs}.get(stage, 0)
        return value or self.epochs

    def effective(self, **overrides: Any) -> "SELCNConfig":
        """Smoke: one epoch per stage at 64 px on ~160 images, Lite0 encoder and backbone (offline weights)."""
        if not self.smoke:
            return self
        small = {"epochs": 1, "seg_epochs": 1, "sym_epochs": 1, "image_size": 64, "cam_size": 64, "folds": 1,
                 "batch_size": 16, "seg_batch_size": 16, "sym_batch_size": 16, "pretrained": True,
                 "seg_encoder": "tu-tf_efficientnet_lite0", "classifier_backbone": "tf_efficientnet_lite0",
                 "n_attribution": min(self.n_attribution, 4), "max_images": self.max_images or 160,
                 "seg_max_images": self.seg_max_images or 80}
        return super().effective(**{**small, **overrides})  # type: ignore[return-value]


def start(namespace: dict[str, Any]) -> Run:
    """The config cell: validate the notebook's parameters and open its run record."""
    return start_notebook_run(NOTEBOOK, SELCNConfig, namespace)


# --- data ------------------------------------------------------------------------------------------------------------


def _load(source: str, fmt: str, purpose: str) -> Any:
    from ..data import load_dataset
    from ..data.detect import detect_format

    root = resolve_data_dir(source)
    fmt = fmt if fmt != "auto" else detect_format(root)
    targets = {"classifier": {"synthetic": "dx", "ph2": "ham"},
               "symmetry": {"synthetic": "asymmetric", "ph2": "asymmetric"}}[purpose]
    kw = {"target": targets[fmt]} if fmt in targets else {}
    if purpose == "symmetry" and fmt not in targets:
        raise ValueError(f"{root}: the symmetry stage needs a symmetry label (the synthetic set's `symmetry` column or "
                         f"PH2's asymmetry); '{fmt}' has none. Set seg_data_dir to such a dataset.")
    return load_dataset(root, fmt=fmt, **kw)


def load_data(cfg: SELCNConfig) -> tuple[Any, Any]:
    """(classifier dataset, segmentation + symmetry dataset). Without `seg_data_dir` both are `data_dir`, same rows
    in the same order (diagnosis resp. binary asymmetry as label)."""
    from .common import lesion_subsample

    cls_ds = _load(cfg.data_dir, cfg.data_format, "classifier")
    seg_source = cfg.seg_data_dir or cfg.data_dir
    seg_ds = _load(seg_source, cfg.data_format if not cfg.seg_data_dir else "auto", "symmetry")
    if cfg.max_images and len(cls_ds) > cfg.max_images:
        keep = lesion_subsample(cls_ds.df, cfg.max_images, cfg.seed)
        cls_ds = cls_ds.subset(keep)
        if not cfg.seg_data_dir:
            seg_ds = seg_ds.subset(keep)
    if cfg.seg_data_dir and cfg.seg_max_images and len(seg_ds) > cfg.seg_max_images:
        seg_ds = seg_ds.subset(lesion_subsample(seg_ds.df, cfg.seg_max_images, cfg.seed))
    if not seg_ds.has_masks:
        raise ValueError(f"{seg_ds.root}: no lesion masks (mask_path is empty): the segmentation stage needs them")
    return cls_ds, seg_ds


def shared_source(cls_ds: Any, seg_ds: Any) -> bool:
    """True when both stages read the same images (then they must share one split)."""
    ids = cls_ds.df["image_id"].to_numpy()
    return len(cls_ds) == len(seg_ds) and bool((ids == seg_ds.df["image_id"].to_numpy()).all())


def make_splits(cls_ds: Any, seg_ds: Any, cfg: SELCNConfig) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(classifier split, segmentation/symmetry split), grouped by lesion/patient; identical when the data is."""
    from .common import holdout_splits

    cls_parts = holdout_splits(cls_ds, cfg)
    return cls_parts, (cls_parts if shared_source(cls_ds, seg_ds) else holdout_splits(seg_ds, cfg))


def split_table(parts_by_stage: dict[str, tuple[Any, dict[str, np.ndarray]]]) -> pd.DataFrame:
    rows = []
    for stage, (ds, parts) in parts_by_stage.items():
        for part, idx in parts.items():
            counts = ds.df["label"].iloc[idx].value_counts()
            rows.append({"stage": stage, "part": part, "images": len(idx),
                         **{c: int(counts.get(c, 0)) for c in ds.classes}})
    return pd.DataFrame(rows).fillna(0)


# --- shared training glue --------------------------------------------------------------------------------------------


def _fit(learn: Any, epochs: int, lr: float, schedule: str, monitor: str, patience: int = 0, fname: str = "best",
         poly: bool = False) -> Any:
    """Train, keep the best epoch on `monitor`, optionally stop early. schedule "paper": constant lr (or poly decay
    lr·(1 − t)^0.9 with `poly`, the segmentation schedule); "one_cycle": fastai's."""
    from fastai.callback.schedule import ParamScheduler, SchedPoly
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback

    cbs: list[Any] = [SaveModelCallback(monitor=monitor, fname=fname, with_opt=False)]
    if patience:
        cbs.append(EarlyStoppingCallback(monitor=monitor, patience=patience))
    with learn.no_bar():
        if schedule == "one_cycle":
            learn.fit_one_cycle(epochs, lr, cbs=cbs)
        else:
            if poly:
                cbs.append(ParamScheduler({"lr": SchedPoly(lr, 0.0, 0.9)}))
            learn.fit(epochs, lr, cbs=cbs)
    return learn


# --- stage 1: segmentation ------------------------------------------------------------------------------------------


def train_segmenter(seg_ds: Any, parts: dict[str, np.ndarray], cfg: SELCNConfig, run: Run) -> Any:
    """DeepLabV3+ on image + mask loaders (flips/affine applied to both), Dice + λ·rank loss, best val Jaccard."""
    from fastai.metrics import Dice, JaccardCoeff

    from ..data.loaders import mask_dls
    from ..losses import DiceRankLoss
    from ..models import create_model
    from ..train import make_learner

    model = create_model("selcn_segmenter", pretrained=cfg.pretrained, encoder=cfg.seg_encoder)
    dls = mask_dls(seg_ds, parts["train"], parts["valid"], size=cfg.image_size, bs=cfg.seg_batch_size,
                   preset="fastai", seed=cfg.seed, num_workers=cfg.num_workers, norm=model_norm(model))
    learn = make_learner(dls, model, run, loss_func=DiceRankLoss(lam=cfg.rank_lambda),
                         metrics=[Dice(), JaccardCoeff()], monitor="jaccard_coeff", stage="segmentation")
    t0 = time.perf_counter()
    _fit(learn, cfg.stage_epochs("seg"), cfg.seg_lr, cfg.schedule, "jaccard_coeff", fname="best_seg", poly=True)
    learn.lesionkit_seconds = time.perf_counter() - t0
    run.save_model(model, name="model_segmenter", spec={"name": "selcn_segmenter", "encoder": cfg.seg_encoder,
                                                        "image_size": cfg.image_size})
    return learn


def predict_masks(learn: Any, ds: Any, idx: np.ndarray | None = None, bs: int = 16) -> np.ndarray:
    """(N, S, S) bool lesion masks (argmax of the 2 classes) for rows `idx` (default: all) of any dataset."""
    rows = ds.df if idx is None else ds.df.iloc[np.asarray(idx)]
    dl = learn.dls.test_dl(rows, with_labels=False, bs=bs)
    learn.model.eval()
    out = []
    with torch.no_grad():
        for (x,) in dl:
            out.append(learn.model(x.as_subclass(torch.Tensor)).argmax(1).bool().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1, 1), bool)


def true_masks(ds: Any, idx: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size) bool ground-truth masks, resized (nearest) as the loaders squish the images."""
    from PIL import Image

    from ..data.images import load_mask

    out = []
    for path in ds.df["mask_path"].iloc[np.asarray(idx)]:
        m = load_mask(path).resize((size, size), Image.NEAREST)
        out.append(np.asarray(m) > 0)
    return np.stack(out) if out else np.zeros((0, size, size), bool)


def segmentation_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """SE-LCN's per-image Dice, Jaccard, sensitivity, specificity and pixel accuracy, then the nan-mean (§3.5)."""
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"predicted masks {pred.shape} and true masks {truth.shape} differ in shape")
    p, g = pred.reshape(len(pred), -1), truth.reshape(len(truth), -1)
    inter, ps, gs = (p & g).sum(1), p.sum(1), g.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per = {"dice": 2 * inter / (ps + gs), "jaccard": inter / (ps + gs - inter),
               "sensitivity": inter / gs, "specificity": (~p & ~g).sum(1) / (~g).sum(1),
               "pixel_accuracy": (p == g).mean(1)}
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in per.items()}


def evaluate_segmenter(learn: Any, seg_ds: Any, idx: np.ndarray, cfg: SELCNConfig, run: Run) -> dict[str, Any]:
    pred = predict_masks(learn, seg_ds, idx)
    truth = true_masks(seg_ds, idx, cfg.image_size)
    scores = segmentation_scores(pred, truth)
    run.log_metrics({"segmentation_test": scores})
    return {"scores": scores, "pred": pred, "truth": truth}


# --- stage 2: LAE / masked inputs ------------------------------------------------------------------------------------


def masked_inputs(ds: Any, masks: np.ndarray, mode: str, size: int, out_dir: Path, enlarge: float = 0.2) -> Any:
    """The dataset whose images are `mode`-processed at size × size (written as PNG under `out_dir`, like the
    original's run_seg.py): "none" returns `ds` unchanged, "mask" keeps the predicted lesion, "lae" keeps the
    enlarged box around its largest contour (pixels outside set to 0). `masks` align with the rows of `ds`."""
    from PIL import Image

    from ..data.images import load_rgb
    from ..data.table import LesionDataset
    from ..models.se_lcn import lae_mask

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


def lae_table(ds: Any, masks: np.ndarray, enlarge: float = 0.2) -> pd.DataFrame:
    """The LAE boxes (x0, y0, x1, y1 in mask pixels; empty for no lesion), as the original's coordinates.csv."""
    from ..models.se_lcn import lae_box

    rows = []
    for image_id, mask in zip(ds.df["image_id"], masks):
        box = lae_box(mask, enlarge)
        rows.append({"image_id": image_id, **dict(zip(("x0", "y0", "x1", "y1"), box or (np.nan,) * 4)),
                     "mask_fraction": float(np.asarray(mask).mean())})
    return pd.DataFrame(rows)


def predict_all_masks(seg_learn: Any, cls_ds: Any, seg_ds: Any) -> dict[str, np.ndarray]:
    """The segmenter's masks for every image of both datasets (computed once when they are the same)."""
    seg_masks = predict_masks(seg_learn, seg_ds)
    cls_masks = seg_masks if shared_source(cls_ds, seg_ds) else predict_masks(seg_learn, cls_ds)
    return {"seg": seg_masks, "cls": cls_masks}


def build_inputs(cls_ds: Any, seg_ds: Any, masks: dict[str, np.ndarray], cfg: SELCNConfig, run: Run) -> dict[str, Any]:
    """The three input sets of the cascade: symmetry-net training images and CAM images (`cam_source`), classifier
    images (`classifier_input`). Masked/LAE copies go under the run's inputs/ (removed by `cleanup_inputs`); the LAE
    boxes of the classifier images are kept as lae_boxes.csv."""
    run.save_table(lae_table(cls_ds, masks["cls"], cfg.lae_enlarge), "lae_boxes.csv")
    make = partial(masked_inputs, size=cfg.image_size, enlarge=cfg.lae_enlarge)
    return {"symmetry": make(seg_ds, masks["seg"], cfg.cam_source, out_dir=run.dir / "inputs" / "seg"),
            "cam": make(cls_ds, masks["cls"], cfg.cam_source, out_dir=run.dir / "inputs" / "cls"),
            "classifier": make(cls_ds, masks["cls"], cfg.classifier_input, out_dir=run.dir / "inputs" / "cls")}


def plot_segmentation(seg_ds: Any, idx: np.ndarray, seg: dict[str, Any], size: int, n: int = 6) -> Any:
    """Test images with the true (white) and predicted (cyan) lesion outlines and each image's Dice."""
    from matplotlib.figure import Figure
    from PIL import Image

    from ..data.images import load_rgb

    n = min(n, len(idx))
    fig = Figure(figsize=(2.2 * n, 2.5), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, i, pred, truth in zip(axes, np.asarray(idx)[:n], seg["pred"], seg["truth"]):
        ax.imshow(np.asarray(load_rgb(seg_ds.df["path"].iloc[i], min_side=size).resize((size, size), Image.BILINEAR)))
        ax.contour(truth.astype(float), levels=[0.5], colors="w", linewidths=1)
        if pred.any():
            ax.contour(pred.astype(float), levels=[0.5], colors="c", linewidths=1)
        dice = segmentation_scores(pred[None], truth[None])["dice"]
        ax.set_title(f"{seg_ds.df['image_id'].iloc[i]}  Dice {dice:.2f}", fontsize=7)
        ax.set_axis_off()
    return fig


# --- stage 3: symmetry net and its CAMs ------------------------------------------------------------------------------


def train_symmetry(sym_ds: Any, parts: dict[str, np.ndarray], cfg: SELCNConfig, run: Run) -> Any:
    """SqueezeNet on the symmetry label (0 symmetric vs 1/2 asymmetric), inputs in [0, 1], 1/count-weighted CE,
    Adam with L2 weight decay, early stopping on validation loss."""
    from fastai.optimizer import Adam

    from ..data.loaders import image_dls
    from ..metrics import fastai_metrics
    from ..models import create_model
    from ..train import make_learner

    model = create_model("selcn_symmetry")
    dls = image_dls(sym_ds, parts["train"], parts["valid"], size=cfg.image_size, bs=cfg.sym_batch_size,
                    preset="none", seed=cfg.seed, num_workers=cfg.num_workers, norm=model_norm(model))
    weight = class_weights(sym_ds.df["label_idx"].to_numpy()[parts["train"]], sym_ds.n_classes) \
        if cfg.sym_weighted else None
    learn = make_learner(dls, model, run, loss_func=torch.nn.CrossEntropyLoss(weight=weight),
                         metrics=fastai_metrics(sym_ds.task, sym_ds.n_classes), monitor="valid_loss",
                         opt_func=partial(Adam, wd=cfg.sym_wd, decouple_wd=False), stage="symmetry")
    t0 = time.perf_counter()
    _fit(learn, cfg.stage_epochs("sym"), cfg.sym_lr, cfg.schedule, "valid_loss", cfg.sym_patience, fname="best_sym")
    learn.lesionkit_seconds = time.perf_counter() - t0
    run.save_model(model, name="model_symmetry", spec={"name": "selcn_symmetry", "classes": sym_ds.classes,
                                                       "input": cfg.cam_source})
    return learn


def evaluate_symmetry(sym_learn: Any, sym_ds: Any, idx: np.ndarray, run: Run) -> dict[str, Any]:
    """Symmetry test scores (accuracy, weighted F1 as the paper, AUC, ...); predictions saved as symmetry_test."""
    from .common import evaluate

    report = evaluate(sym_learn, sym_ds, idx, run, name="symmetry_test", figures=False)["report"]
    return {k: report[k] for k in ("accuracy", "f1_weighted", "auc", "sensitivity", "specificity") if k in report}


def cache_cams(sym_learn: Any, cam_ds: Any, cfg: SELCNConfig, run: Run, name: str = "classifier") -> Path:
    """Compute the symmetry CAM of every image of `cam_ds` once and cache it under the run's cams/."""
    cams = compute_cams(sym_learn, cam_ds, cfg.cam_size)
    return save_cams(run.dir / "cams" / f"{name}.npz", cam_ds.df["image_id"].tolist(), cams)


def score_symmetry_cams(sym_learn: Any, sym_ds: Any, seg_ds: Any, idx: np.ndarray, cfg: SELCNConfig,
                        run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SE-LCN's CAM scores of the symmetry net on test rows against the ground-truth masks: per image and
    summarised (mean ± std, IoU and overlap nan-skipping as the original's nanmean)."""
    from ..attribution import summarize_scores

    cams = compute_cams(sym_learn, sym_ds.subset(idx), cfg.cam_size)
    df = cam_scores(cams, true_masks(seg_ds, idx, cfg.cam_size), seg_ds.df["image_id"].iloc[idx].tolist(),
                    "symmetry net")
    run.save_table(df, "cam_scores.csv")
    summary = summarize_scores(df)
    run.log_metrics({"symmetry_cam": summary.iloc[0].drop(["model", "method"]).to_dict()})
    return df, summary


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """w_c = 1 / count_c in class-index order (the original sorted by label name, misaligning HAM's weights)."""
    counts = np.bincount(np.asarray(y, int), minlength=n_classes).astype(float)
    return torch.tensor(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0), dtype=torch.float32)


def compute_cams(sym_learn: Any, ds: Any, size: int, bs: int = 16) -> np.ndarray:
    """(N, size, size) Grad-CAM++ maps of the symmetry net for every row of `ds` (its argmax class, last Fire
    expand3x3 activation, min-max normalised per image)."""
    dl = sym_learn.dls.test_dl(ds.df, with_labels=False, bs=bs)
    model = sym_learn.model
    out = [model.symmetry_cam(x.as_subclass(torch.Tensor), size=(size, size))[:, 0].cpu().numpy() for (x,) in dl]
    return np.concatenate(out) if out else np.zeros((0, size, size), np.float32)


def save_cams(path: Path, image_ids: list[str], cams: np.ndarray) -> Path:
    """The CAM cache: one .npz with image ids and float16 maps (the original wrote <id>.npy per image)."""
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


def cam_scores(cams: np.ndarray, masks: np.ndarray, image_ids: list[str], label: str) -> pd.DataFrame:
    """Pointing game, IoU with the dilated mask and overlap per image (lesionkit.attribution.scores)."""
    from ..attribution import score_maps

    return score_maps(np.asarray(cams, np.float32), masks, image_ids, model=label, method="gradcam++")


# --- stage 4: the E-layer classifier ----------------------------------------------------------------------------------


class GetCam:
    """Row -> (1, h, w) float CAM from the cache, looked up by image_id; `zero` gives the no-CAM ablation."""

    def __init__(self, cams: dict[str, np.ndarray], zero: bool = False) -> None:
        self.cams, self.zero = cams, zero
        self.shape = next(iter(cams.values())).shape if cams else (1, 1)

    def __call__(self, item: Any) -> torch.Tensor:
        image_id = str(item["image_id"])
        if image_id not in self.cams:
            raise KeyError(f"no cached CAM for image {image_id!r}: compute CAMs for every row of the dataset")
        cam = np.zeros(self.shape, np.float32) if self.zero else self.cams[image_id]
        return torch.from_numpy(np.asarray(cam, np.float32))[None]


def cam_dls(ds: Any, cams: dict[str, np.ndarray], train_idx: np.ndarray, valid_idx: np.ndarray, size: int, bs: int,
            seed: int = 0, num_workers: int = 0, zero: bool = False, norm: Any = None, balanced: bool = False) -> Any:
    """(image, CAM) → label loaders (n_inp=2), no augmentation (the original's online transforms are identity,
    and a flip would have to move the CAM too). `balanced`: training rows drawn with replacement, weight 1/class
    count (the original trains on an offline class-balanced copy of HAM10000 instead)."""
    from fastai.data.core import Datasets
    from fastai.data.transforms import Categorize

    from ..data.augment import preset_tfms
    from ..data.loaders import GetLabel, ReadImage, _batch_tfms, _dataloaders, prepare_split

    tr, va = prepare_split(ds, train_idx, valid_idx, verify=True, leak_check=True)
    dsets = Datasets(ds.df, tfms=[[ReadImage(size)], [GetCam(cams, zero)],
                                  [GetLabel(), Categorize(vocab=ds.classes, sort=False)]],
                     splits=[list(tr), list(va)], n_inp=2)
    item, _ = preset_tfms("none", size)  # squish, as the symmetry net's loaders that made the CAMs
    return _dataloaders(dsets, bs, item, _batch_tfms([], norm), seed, num_workers, balanced,
                        ds.df["label"].to_numpy()[tr], None)


def classifier_folds(ds: Any, parts: dict[str, np.ndarray], folds: int,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, valid) positions per fold model: the train+valid rows re-split into `folds` lesion-grouped folds
    (folds = 1: the holdout's own train/valid)."""
    from ..data.splits import grouped_kfold

    if folds == 1:
        return [(parts["train"], parts["valid"])]
    pool = np.sort(np.concatenate([parts["train"], parts["valid"]]))
    return [(pool[tr], pool[va]) for tr, va in grouped_kfold(ds.df.iloc[pool], folds, stratify_col="label_idx",
                                                             seed=seed)]


def train_classifier(ds: Any, cams: dict[str, np.ndarray], parts: dict[str, np.ndarray], cfg: SELCNConfig, run: Run,
                     with_cam: bool = True) -> dict[str, Any]:
    """Fold models of the EfficientNet + E-layer classifier, each scored on the same test rows. With
    `with_cam=False` the CAM channel is all zeros. Returns per-fold reports, the mean ± std and the last learner."""
    from fastai.optimizer import Adam

    from ..metrics import fastai_metrics
    from ..models import create_model
    from ..train import drop_checkpoints, make_learner
    from .common import evaluate

    tag = "with_cam" if with_cam else "without_cam"
    reports, figures, t0, learn = [], {}, time.perf_counter(), None
    for k, (tr, va) in enumerate(classifier_folds(ds, parts, cfg.folds, cfg.seed)):
        model = create_model("selcn_classifier", pretrained=cfg.pretrained, backbone=cfg.classifier_backbone,
                             num_classes=ds.n_classes, with_symmetry_net=False)
        dls = cam_dls(ds, cams, tr, va, cfg.image_size, cfg.batch_size, cfg.seed + k, cfg.num_workers,
                      zero=not with_cam, norm=model_norm(model), balanced=cfg.balanced)
        learn = make_learner(dls, model, run, metrics=fastai_metrics(ds.task, ds.n_classes), monitor="valid_loss",
                             opt_func=partial(Adam, wd=cfg.wd, decouple_wd=False), stage=f"{tag}_fold{k}")
        _fit(learn, cfg.epochs, cfg.lr, cfg.schedule, "valid_loss", cfg.patience, fname=f"best_{tag}")
        res = evaluate(learn, ds, parts["test"], run, name=f"test_{tag}_fold{k}", figures=k == 0)
        reports.append(res["report"])
        figures = figures or res["figures"]
        drop_checkpoints(learn)
    keys = ("balanced_accuracy", "accuracy", "f1_macro", "kappa", "auc_macro")
    summary = {k: fold_mean_std([r[k] for r in reports]) for k in keys}
    run.log_metrics({f"test_{tag}": summary})
    run.save_model(learn.model, name=f"model_classifier_{tag}",
                   spec={"name": "selcn_classifier", "backbone": cfg.classifier_backbone, "classes": ds.classes,
                         "with_symmetry_net": False, "cam": "cached" if with_cam else "zeros"})
    return {"tag": tag, "reports": reports, "summary": summary, "seconds": time.perf_counter() - t0, "learn": learn,
            "figures": figures}


def fold_mean_std(values: list[float]) -> dict[str, float]:
    """Mean and population std (numpy's, as the paper) over fold models; NaN folds (a class absent) skipped."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if v.size else float("nan"), "std": float(v.std()) if v.size > 1 else float("nan")}


def classifier_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per model: mean ± std over fold models of the paper's metrics (balanced accuracy, κ, macro F1)."""
    rows = []
    for res in results:
        row: dict[str, Any] = {"model": "SE-LCN (with CAM)" if res["tag"] == "with_cam" else "without CAM (zeros)"}
        for k, v in res["summary"].items():
            row[k], row[f"{k}_std"] = v["mean"], v["std"]
        row["folds"], row["train_seconds"] = len(res["reports"]), round(res["seconds"], 1)
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_external(cfg: SELCNConfig, seg_learn: Any, sym_learn: Any, results: list[dict[str, Any]],
                      cams: dict[str, np.ndarray], run: Run) -> pd.DataFrame:
    """Run the whole cascade on the external `test_dir`: predicted masks → inputs → cached CAMs (added to `cams`,
    which the classifiers' loaders read) → both classifiers (their last fold model). One row per model."""
    ext = _load(cfg.test_dir, "auto", "classifier")
    ext_masks = predict_masks(seg_learn, ext)
    make = partial(masked_inputs, size=cfg.image_size, enlarge=cfg.lae_enlarge, out_dir=run.dir / "inputs" / "external")
    cam_in, cls_in = make(ext, ext_masks, cfg.cam_source), make(ext, ext_masks, cfg.classifier_input)
    ext_cams = compute_cams(sym_learn, cam_in, cfg.cam_size)
    save_cams(run.dir / "cams" / "external.npz", cam_in.df["image_id"].tolist(), ext_cams)
    cams.update({str(i): m.astype(np.float32) for i, m in zip(cam_in.df["image_id"], ext_cams)})
    from .common import evaluate

    rows = []
    for res in results:
        report = evaluate(res["learn"], cls_in, np.arange(len(cls_in)), run, name=f"external_{res['tag']}",
                          figures=False)["report"]
        rows.append({"model": res["tag"], "images": len(cls_in),
                     **{k: report[k] for k in ("balanced_accuracy", "accuracy", "f1_macro", "kappa")}})
    return pd.DataFrame(rows)


# --- figures, attribution, comparison ------------------------------------------------------------------------------


def plot_cascade(ds: Any, idx: np.ndarray, pred_masks: np.ndarray, inputs: Any, cams: dict[str, np.ndarray],
                 size: int, n: int = 6) -> Any:
    """Rows = images; columns = image with predicted mask outline, the symmetry net's input, its CAM."""
    from matplotlib.figure import Figure
    from PIL import Image

    from ..data.images import load_rgb
    from ..viz.maps import overlay

    idx = np.asarray(idx)[:n]
    fig = Figure(figsize=(6.6, 2.2 * len(idx) + 0.3), layout="constrained")
    axes = fig.subplots(len(idx), 3, squeeze=False)
    for r, i in enumerate(idx):
        img = np.asarray(load_rgb(ds.df["path"].iloc[i], min_side=size).resize((size, size)))
        src = np.asarray(load_rgb(inputs.df["path"].iloc[i], min_side=size).resize((size, size)))
        cam = cams[str(inputs.df["image_id"].iloc[i])]
        cam = np.asarray(Image.fromarray(cam).resize((size, size), Image.BILINEAR))
        axes[r, 0].imshow(img)
        axes[r, 0].contour(pred_masks[i].astype(float), levels=[0.5], colors="w", linewidths=1)
        axes[r, 1].imshow(src)
        axes[r, 2].imshow(overlay(src, cam))
        axes[r, 0].set_title(f"{ds.df['image_id'].iloc[i]} | {ds.df['label'].iloc[i]}", fontsize=7, loc="left")
    for c, title in enumerate(("image + predicted mask", "symmetry-net input", "symmetry Grad-CAM++")):
        ax = axes[0, c]
        ax.set_title(f"{title}\n{ax.get_title(loc='left')}" if c == 0 else title, fontsize=8, loc="left" if c == 0
                     else "center")
        if c == 0:
            ax.set_title("", loc="center")
    for ax in axes.flat:
        ax.set_axis_off()
    return fig


def attribution_masks(cls_ds: Any, idx: np.ndarray, pred_masks: np.ndarray, size: int) -> tuple[np.ndarray, str]:
    """Masks to score the classifier's maps against: ground truth where the dataset has masks, else the
    segmenter's predictions (as the cascade itself would); the second value says which."""
    if cls_ds.has_masks and cls_ds.df["mask_path"].iloc[np.asarray(idx)].notna().all():
        return true_masks(cls_ds, idx, size), "ground-truth masks"
    return pred_masks[np.asarray(idx)], "predicted masks (no ground truth in this dataset)"


def explain(result: dict[str, Any], ds: Any, idx: np.ndarray, masks: np.ndarray, cfg: SELCNConfig,
            run: Run) -> tuple[Any, pd.DataFrame]:
    """Attribution maps of the SE-LCN classifier (its CAM input passed along, not attributed) on test rows,
    scored against `masks` (ground truth where the dataset has it, else the segmenter's); stored for the viewer."""
    from ..attribution import load_attributions, precompute_attributions
    from ..data.loaders import test_dl
    from ..viz.maps import plot_store_grid

    learn = result["learn"]
    idx = np.asarray(idx)[: cfg.n_attribution]
    image, cam, y = next(iter(test_dl(learn.dls, ds, idx, bs=len(idx))))
    precompute_attributions(learn.model, image, cfg.methods, run.dir, classes=ds.classes, labels=y.cpu().numpy(),
                            image_ids=ds.df["image_id"].iloc[idx].tolist(), meta=cam, masks=masks[: len(idx)],
                            targets="pred", model_name="selcn_classifier")
    fig = plot_store_grid(load_attributions(run.dir))
    run.save_figure(fig, "attribution_grid")
    scores = pd.read_csv(run.dir / "attribution_scores.csv")
    return fig, scores


def comparison(seg: dict[str, float], classifiers: pd.DataFrame, cam_summary: pd.DataFrame, cfg: SELCNConfig,
               cls_ds: Any, seg_ds: Any, run: Run) -> pd.DataFrame:
    """This run beside SE-LCN's numbers (methods-a §3.6), each row labelled with the data it was measured on."""
    from .reported import comparison_table

    ours: dict[str, float] = {f"seg/{k}": v for k, v in seg.items() if k in ("dice", "jaccard")}
    for _, row in classifiers.iterrows():
        prefix = "with_cam" if row["model"].startswith("SE-LCN") else "without_cam"
        ours.update({f"{prefix}/{k}": row[k] for k in ("balanced_accuracy", "accuracy", "f1_macro", "kappa")})
    for col in ("pointing_game_mean", "iou_mean", "overlap_mean"):
        if col in cam_summary.columns:
            ours[f"symmetry_cam/{col.removesuffix('_mean')}"] = float(cam_summary[col].iloc[0])
    paper_row = f"SE-LCN ({cfg.classifier_input}_{cfg.cam_source})"
    keys = {paper_row: "with_cam", "EfficientNet-B4 (standalone)": "without_cam", "DeepLabV3+ segmentation": "seg"}
    label = (f"classifier: {cls_ds.name} ({len(cls_ds)} images), seg/symmetry: {seg_ds.name} ({len(seg_ds)}), "
             f"{cfg.image_size} px, {cfg.classifier_backbone}, {cfg.epochs} epochs, {cfg.folds} fold model(s)")
    out = comparison_table(PAPER, ours, label, model_keys=keys)
    run.save_table(out, "comparison.csv")
    return out


def summarize(seg: dict[str, float], classifiers: pd.DataFrame, cam_summary: pd.DataFrame,
              run: Run) -> dict[str, float]:
    """The headline numbers the demo prints."""
    by = classifiers.set_index("model")["balanced_accuracy"]
    summary = {"bacc_cam": float(by.iloc[0]), "bacc_no_cam": float(by.iloc[-1]), "dice": float(seg["dice"])}
    if "pointing_game_mean" in cam_summary.columns:
        summary["pointing_game"] = float(cam_summary["pointing_game_mean"].iloc[0])
    run.log_metrics({"summary": summary})
    return summary


def cleanup_inputs(run: Run) -> None:
    """Delete the masked/LAE image copies (derived from the data; the run keeps lae_boxes.csv to rebuild them)."""
    import shutil

    shutil.rmtree(run.dir / "inputs", ignore_errors=True)


__all__ = ["SELCNConfig", "start", "load_data", "shared_source", "make_splits", "split_table", "train_segmenter",
           "predict_masks", "true_masks", "segmentation_scores", "evaluate_segmenter", "masked_inputs", "lae_table",
           "predict_all_masks", "build_inputs", "plot_segmentation", "evaluate_symmetry", "cache_cams",
           "score_symmetry_cams", "attribution_masks", "train_symmetry", "class_weights", "compute_cams", "save_cams",
           "load_cams", "cam_scores", "GetCam", "cam_dls", "classifier_folds", "train_classifier", "classifier_table",
           "evaluate_external", "plot_cascade", "explain", "comparison", "summarize", "cleanup_inputs"]
