"""multimodal: EfficientNet image features + patient metadata (methods-b §C, built on the 1st-place §A), against
the same network on the image alone, and the six-head artefact/bias classifier of the same paper (§C.6).

Paper choices are the defaults: EfficientNet-B2 at 256 px, Adam 3e-5 with warm-up ×10 then cosine (§A.7/§C.5),
the 1st-place augmentation (§A.6) and 8-view flip/transpose TTA (§A.8), metadata = sex, age/90 and one-hot site
(§A.3) fitted on the training rows only. Deliberate departures, each an option: the split is patient-grouped
(`split="image"` is the code's stratified, non-grouped 80/20, which leaks patients), and `n_images` / `image_size`
are off (they encode acquisition, not the patient; `use_n_images`, `use_image_size` turn them on).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..config import param, param_like
from ..runs import Run, start_notebook_run
from .common import TrainConfig, holdout_splits, model_norm, resolve_data_dir

NOTEBOOK = "multimodal"
PAPER = "multimodal"
# synthetic / shared-data columns -> the six heads of multi_classification.py (bubbles count as "other")
HAIR_LEVELS = {"hair_dense": "dense", "hair_short": "short", "hair_medium": "medium"}
SCHEDULES = ("warmup_cosine", "one_cycle", "flat_cos", "constant")


@dataclass(frozen=True)
class MultimodalConfig(TrainConfig):
    data_dir: str = param_like(TrainConfig, "data_dir", "dataset folder (ISIC 2020 layout), or 'synthetic' (the "
                                                        "embedded default) / 'synthetic-null' (same images without "
                                                        "class signal: the sanity control)")
    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set folder (scored with the last "
                                                        "fold's models)")
    valid_frac: float = param_like(TrainConfig, "valid_frac", "share of patients used for model selection (unused "
                                                              "with split=image)")
    test_frac: float = param_like(TrainConfig, "test_frac", "share of patients held out for the final test "
                                                            "(split=image: of images; unused with folds > 1)")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (64 px, 1 epoch, ~160 images, Lite0) to check the "
                                                   "pipeline")
    backbone: str = param("tf_efficientnet_b2", "timm EfficientNet for both models (paper: B2; offline ImageNet "
                                                "weights exist only for tf_efficientnet_lite0/lite2)")
    pretrained: bool | str = param(False, "true (lite0/lite2 only), false, or a local weight file")
    image_size: int = param(256, "training resolution in pixels (paper: 256)", ge=32, le=1024)
    epochs: int = param(20, "epochs per model (paper: 20)", ge=1, le=10_000)
    batch_size: int = param(64, "images per batch (paper: 64)", ge=2, le=4096)
    lr: float = param(3e-5, "base learning rate; warmup_cosine peaks at 10x (paper: 3e-5)", ge=1e-7, le=10.0)
    schedule: str = param("warmup_cosine", "lr schedule: warmup_cosine (the paper's warm-up x10 + cosine), "
                          + ", ".join(s for s in SCHEDULES if s != "warmup_cosine"),
                          choices=SCHEDULES)
    split: str = param("patient", "patient: grouped by patient_id (default); image: the code's stratified 80/20 "
                                  "by image (leaks patients)", choices=("patient", "image"))
    folds: int = param(1, "1: one train/valid/test split; k > 1: patient-grouped k-fold, pooled out-of-fold AUC",
                       ge=1, le=20)
    preset: str = param("first_place", "augmentation preset: first_place (the paper), fastai or none",
                        choices=("first_place", "fastai", "none"))
    meta_missing: str = param("first_place", "missing sex/age: first_place constants (-1 / 0) or impute "
                                             "(training median / mode)", choices=("first_place", "impute"))
    use_n_images: bool = param(False, "add log1p(images per patient) (1st place; leaks acquisition)")
    use_image_size: bool = param(False, "add ln(JPEG bytes) (1st place; depends on the encoder)")
    backbone_drop_rate: float = param(0.3, "dropout on pooled image features (code: 0.3; 1st place: 0)", ge=0, le=0.9)
    tta: bool = param(True, "8-view flip/transpose TTA at test time (1st place; the multimodal code has none)")
    artefacts: bool = param(True, "train the six-head artefact/bias classifier (needs artefact labels)")
    artefact_epochs: int = param(30, "artefact classifier epochs (paper: 30)", ge=1, le=10_000)
    artefact_lr: float = param(1e-4, "artefact classifier Adam lr, constant (paper: 1e-4)", ge=1e-7, le=10.0)
    artefact_batch_size: int = param(16, "artefact classifier batch size (paper: 16)", ge=2, le=4096)
    attribution: bool = param(True, "attribution maps of the image+metadata model on test images")
    attribution_methods: str = param("integrated_gradients,gradcam++", "comma-separated lesionkit.attribution "
                                                                       "methods")
    n_attribution: int = param(8, "test images to explain", ge=1, le=256)
    max_images: int = param(0, "use at most this many images (whole patients, stratified); 0 = all", ge=0)

    def effective(self, **overrides: Any) -> "MultimodalConfig":
        """Smoke: 1 epoch at 64 px on ~160 images, Lite0 (offline weights), no TTA, a few attribution images."""
        if not self.smoke:
            return self
        small = {"epochs": 1, "artefact_epochs": 1, "image_size": min(self.image_size, 64),
                 "batch_size": min(self.batch_size, 16), "artefact_batch_size": min(self.artefact_batch_size, 16),
                 "backbone": "tf_efficientnet_lite0", "pretrained": True, "folds": 1, "tta": False,
                 "n_attribution": min(self.n_attribution, 2), "attribution_methods": "gradcam++",
                 "max_images": self.max_images or 160}
        return super().effective(**{**small, **overrides})  # type: ignore[return-value]


def start(namespace: dict[str, Any]) -> Run:
    """The config cell: validate the notebook's parameters and open its run record."""
    return start_notebook_run(NOTEBOOK, MultimodalConfig, namespace)


# --- data ------------------------------------------------------------------------------------------------------------


def load_data(cfg: MultimodalConfig) -> Any:
    """The melanoma-vs-rest dataset of `cfg.data_dir`, with ISIC 2020 site names where the table has them."""
    from ..data import load_dataset
    from ..data.detect import detect_format
    from .common import lesion_subsample

    root = resolve_data_dir(cfg.data_dir)
    fmt = cfg.data_format if cfg.data_format != "auto" else detect_format(root)
    kw = {"target": "melanoma"} if fmt in ("synthetic", "isic2020", "isic2017", "ph2") else {}
    ds = to_melanoma(load_dataset(root, fmt=fmt, **kw))
    if "anatom_site_general_challenge" in ds.df.columns:  # the synthetic set carries both HAM and ISIC sites
        ds.df["site"] = ds.df["anatom_site_general_challenge"]
    if cfg.max_images and len(ds) > cfg.max_images:
        ds = ds.subset(lesion_subsample(ds.df.assign(lesion_id=ds.df["patient_id"].fillna(ds.df["lesion_id"])),
                                         cfg.max_images, cfg.seed))
    return ds


def to_melanoma(ds: Any) -> Any:
    """A binary melanoma (index 1) vs other dataset; multiclass sets with a 'mel' class are relabelled."""
    from ..data.table import LesionDataset

    if ds.task == "binary":
        return ds
    if "mel" not in ds.classes:
        raise ValueError(f"{ds.name}: the multimodal notebook needs a melanoma target; classes are {ds.classes}")
    df = ds.df.copy()
    df["label"] = np.where(df["label"] == "mel", "melanoma", "other")
    df["label_idx"] = (df["label"] == "melanoma").astype(int)
    return LesionDataset(ds.name, ds.root, df, ["other", "melanoma"], "binary", {**ds.info, "pos_idx": 1})


def make_splits(ds: Any, cfg: MultimodalConfig) -> list[dict[str, np.ndarray]]:
    """One dict of train/valid/test positions per fold. Patient-grouped unless `split="image"`."""
    from ..data.splits import grouped_holdout, grouped_kfold

    if cfg.split == "image":
        return [_image_split(ds, cfg)]
    if cfg.folds == 1:
        return [holdout_splits(ds, cfg)]
    group = "patient_id" if ds.df["patient_id"].notna().all() else "lesion_id"
    out = []
    for k, (rest, test) in enumerate(grouped_kfold(ds.df, cfg.folds, group_col=group, stratify_col="label_idx",
                                                   seed=cfg.seed)):
        tr, va = grouped_holdout(ds.df.iloc[rest], test_frac=cfg.valid_frac, group_col=group,
                                 stratify_col="label_idx", seed=cfg.seed + 1 + k)
        out.append({"train": rest[tr], "valid": rest[va], "test": test})
    return out


def _image_split(ds: Any, cfg: MultimodalConfig) -> dict[str, np.ndarray]:
    """The code's split (train_test_split(stratify=target, random_state)): 80/20 by image; validation = test, as
    in the code, which selects and reports on the same 20 %."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(ds))
    tr, te = train_test_split(idx, test_size=cfg.test_frac, stratify=ds.df["label_idx"], random_state=cfg.seed)
    return {"train": np.sort(tr), "valid": np.sort(te), "test": np.sort(te)}


def split_table(ds: Any, splits: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    """Images, patients and melanomas per part and fold: what the AUC below rests on."""
    rows = []
    for k, parts in enumerate(splits):
        for part, idx in parts.items():
            sub = ds.df.iloc[idx]
            rows.append({"fold": k, "part": part, "images": len(sub), "patients": sub["patient_id"].nunique(),
                         "melanomas": int((sub["label_idx"] == 1).sum())})
    return pd.DataFrame(rows)


def metadata_preview(ds: Any, parts: dict[str, np.ndarray], cfg: MultimodalConfig, n: int = 6) -> pd.DataFrame:
    """The encoded metadata of the first `n` training rows, beside the raw sex / age / site they come from."""
    from ..data.metadata import MetaEncoder

    enc = MetaEncoder(use_n_images=cfg.use_n_images, use_image_size=cfg.use_image_size,
                      missing=cfg.meta_missing).fit(ds.df.iloc[parts["train"]])
    rows = ds.df.iloc[parts["train"][:n]]
    feats = pd.DataFrame(enc.transform(rows), columns=enc.feature_names, index=rows["image_id"])
    raw = rows.set_index("image_id")[["sex", "age", "site"]].add_prefix("raw_")
    return pd.concat([raw, feats], axis=1)


def stage_history(run: Run, prefix: str) -> pd.DataFrame:
    """history.csv rows of the stages starting with `prefix` (e.g. "meta"), epochs numbered across folds."""
    hist = run.history()
    if hist.empty:
        return hist
    hist = hist[hist["stage"].astype(str).str.startswith(prefix)].drop(columns=["lr", "stage"], errors="ignore")
    return hist.reset_index(drop=True).assign(epoch=lambda d: np.arange(len(d)))


# --- training ------------------------------------------------------------------------------------------------------


def build_learner(ds: Any, parts: dict[str, np.ndarray], cfg: MultimodalConfig, run: Run, use_meta: bool,
                  stage: str = "") -> Any:
    """The multimodal model (n_meta from the fitted encoder) or its image-only twin, on meta_dls (n_inp=2)."""
    from ..data.loaders import meta_dls
    from ..data.metadata import MetaEncoder
    from ..metrics import fastai_metrics
    from ..models import create_model
    from ..train import make_learner

    encoder = MetaEncoder(use_n_images=cfg.use_n_images, use_image_size=cfg.use_image_size,
                          missing=cfg.meta_missing).fit(ds.df.iloc[parts["train"]])
    name = "multimodal_b2" if use_meta else "multimodal_b2_image"
    kw = dict(backbone=cfg.backbone, num_classes=2, n_meta=encoder.n_features if use_meta else 0,
              backbone_drop_rate=cfg.backbone_drop_rate)
    model = create_model(name, pretrained=cfg.pretrained, **kw)
    dls = meta_dls(ds, parts["train"], parts["valid"], size=cfg.image_size, bs=cfg.batch_size, preset=cfg.preset,
                   seed=cfg.seed, num_workers=cfg.num_workers, norm=model_norm(model), encoder=encoder,
                   leak_check=cfg.split == "patient")
    y_valid = ds.df["label_idx"].to_numpy()[parts["valid"]]
    monitor = "auc" if len(np.unique(y_valid)) == 2 else "valid_loss"
    learn = make_learner(dls, _MetaOptional(model, use_meta), run, metrics=fastai_metrics("binary", 2),
                         monitor=monitor, stage=stage or name)
    learn.lesionkit_spec = {"name": name, **kw, "classes": ds.classes, "meta_features": encoder.feature_names}
    return learn


class _MetaOptional(torch.nn.Module):
    """Both models see (image, meta) batches from the same loader; the image-only one ignores meta."""

    def __init__(self, model: torch.nn.Module, use_meta: bool) -> None:
        super().__init__()
        self.model, self.use_meta = model, use_meta

    def get_classifier(self) -> torch.nn.Module:
        return self.model.get_classifier()

    def forward(self, image: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(image, meta if self.use_meta else None)


def fit(learn: Any, epochs: int, lr: float, schedule: str = "warmup_cosine") -> Any:
    """Train and keep the best epoch on the learner's monitor. `lr` is the paper's base rate (--init-lr):
    "warmup_cosine" (§A.7) warms up from lr to 10·lr over the first epoch, then anneals to 0 (per batch here, per
    epoch in the code); the fastai schedules use `lr` as their peak."""
    from .protocol import fit_schedule

    peak = 10 * lr if schedule == "warmup_cosine" else lr
    return fit_schedule(learn, epochs, peak, schedule, monitor=learn.lesionkit_monitor)


def predict(learn: Any, dl: Any, tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """P(classes) and targets of (image, meta, y) batches; `tta` = the 1st place's 8 dihedral views (§A.8)."""
    from ..train import predict as predict_learner

    return predict_learner(learn, dl, tta="dihedral8" if tta else False, n_inp=2)


def run_model(ds: Any, splits: list[dict[str, np.ndarray]], cfg: MultimodalConfig, run: Run,
              use_meta: bool) -> dict[str, Any]:
    """Train one model per fold and predict its test rows. Returns pooled out-of-fold probabilities, per-fold AUCs,
    seconds, and the last fold's learner (kept for attribution). Weights of the last fold go to the run record."""
    from ..data.loaders import test_dl
    from ..metrics import binary_auc
    from ..train import drop_checkpoints

    tag = "meta" if use_meta else "image"
    probs = np.full(len(ds), np.nan)
    fold_auc, t0, learn = [], time.perf_counter(), None
    for k, parts in enumerate(splits):
        learn = build_learner(ds, parts, cfg, run, use_meta, stage=f"{tag}_fold{k}")
        fit(learn, cfg.epochs, cfg.lr, cfg.schedule)
        p, y = predict(learn, test_dl(learn.dls, ds, parts["test"]), tta=cfg.tta)
        probs[parts["test"]] = p[:, 1]
        fold_auc.append(_auc_or_nan(binary_auc, y, p[:, 1]))
        drop_checkpoints(learn)
    run.save_model(learn.model.model, name=f"model_{tag}", spec=learn.lesionkit_spec)
    learn.dls.meta_encoder.save(run.dir / f"meta_encoder_{tag}.json")
    return {"tag": tag, "probs": probs, "fold_auc": fold_auc, "seconds": time.perf_counter() - t0, "learn": learn}


def _auc_or_nan(fn: Any, y: np.ndarray, p: np.ndarray) -> float:
    return float(fn(y, p)) if len(np.unique(y)) == 2 else float("nan")


def evaluate(ds: Any, results: list[dict[str, Any]], run: Run) -> pd.DataFrame:
    """Score each model's pooled test predictions like the ISIC 2020 scorer, save them in its format
    (image_name,target) and return one row per model: AUC (pooled and fold mean ± std), AP, pAUC, sens/spec."""
    from ..metrics import binary_report, write_predictions

    rows = []
    for res in results:
        keep = np.flatnonzero(~np.isnan(res["probs"]))
        y, p = ds.df["label_idx"].to_numpy()[keep].astype(int), res["probs"][keep]
        report = binary_report(y, p) if len(np.unique(y)) == 2 else {"auc": float("nan")}
        write_predictions(run.dir / "predictions", ds.df["image_id"].iloc[keep].tolist(),
                          np.stack([1 - p, p], 1), ds.classes, y_true=y, fmt="isic2020", stem=f"test_{res['tag']}")
        run.log_metrics({f"test_{res['tag']}": report})
        folds = np.asarray(res["fold_auc"], float)
        rows.append({"model": "image + metadata" if res["tag"] == "meta" else "image only",
                     "auc": report.get("auc"), "auc_fold_mean": float(np.nanmean(folds)) if folds.size else np.nan,
                     "auc_fold_std": float(np.nanstd(folds)) if folds.size > 1 else np.nan,
                     "ap": report.get("ap"), "pauc80": report.get("pauc80"),
                     "sensitivity": report.get("sensitivity"), "specificity": report.get("specificity"),
                     "n_test": len(keep), "n_melanoma": int(y.sum()), "train_seconds": round(res["seconds"], 1)})
    table = pd.DataFrame(rows)
    run.save_table(table, "metadata_comparison.csv")
    return table


def evaluate_external(cfg: MultimodalConfig, results: list[dict[str, Any]], run: Run) -> pd.DataFrame:
    """Both models (their last fold) on the external `test_dir`, metadata encoded with each model's training
    encoder; predictions saved as external_<model> in the ISIC 2020 format."""
    from ..data.loaders import test_dl
    from ..metrics import binary_report, write_predictions

    ext = load_data(MultimodalConfig(**{**cfg.to_dict(), "data_dir": cfg.test_dir, "test_dir": "", "max_images": 0,
                                        "smoke": False}))
    rows = []
    for res in results:
        p, y = predict(res["learn"], test_dl(res["learn"].dls, ext, np.arange(len(ext))), tta=cfg.tta)
        report = binary_report(y, p[:, 1]) if len(np.unique(y)) == 2 else {"auc": float("nan")}
        write_predictions(run.dir / "predictions", ext.df["image_id"].tolist(), p, ext.classes, y_true=y,
                          fmt="isic2020", stem=f"external_{res['tag']}")
        run.log_metrics({f"external_{res['tag']}": report})
        rows.append({"model": res["tag"], "images": len(ext), "melanomas": int(y.sum()), "auc": report.get("auc"),
                     "ap": report.get("ap")})
    return pd.DataFrame(rows)


def plot_roc_pair(ds: Any, results: list[dict[str, Any]]) -> Any:
    """ROC curves of the image-only and image + metadata models on the same test rows."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(4.2, 4), layout="constrained")
    ax = fig.subplots()
    y_all = ds.df["label_idx"].to_numpy()
    for res in results:
        keep = ~np.isnan(res["probs"])
        y, p = y_all[keep], res["probs"][keep]
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        label = "image + metadata" if res["tag"] == "meta" else "image only"
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="melanoma vs rest, test rows")
    ax.legend(fontsize=8, loc="lower right")
    return fig


# --- artefact / bias classifier ------------------------------------------------------------------------------------


def artefact_targets(df: pd.DataFrame) -> pd.DataFrame | None:
    """(n, 6) 0/1 table with the heads of ``ARTEFACT_HEADS``, from the head columns themselves or from the synthetic
    set's hair (none/short/medium/dense), black_frame, ruler and bubbles (= other); None when the table has
    neither (real ISIC data ships no artefact labels)."""
    from ..models.multimodal import ARTEFACT_HEADS

    if all(h in df.columns for h in ARTEFACT_HEADS):
        return df[list(ARTEFACT_HEADS)].fillna(0).astype(int).reset_index(drop=True)
    needed = ("hair", "black_frame", "ruler", "bubbles")
    if not all(c in df.columns for c in needed):
        return None
    hair = df["hair"].astype(str).str.strip().str.lower()
    unknown = sorted(set(hair) - {"none", "nan", *HAIR_LEVELS.values()})
    if unknown:
        raise ValueError(f"column 'hair' has value(s) {unknown}; expected none/short/medium/dense")
    out = {head: (hair == level).astype(int).to_numpy() for head, level in HAIR_LEVELS.items()}
    out.update(black_frame=df["black_frame"].fillna(0).astype(int).to_numpy(),
               ruler=df["ruler"].fillna(0).astype(int).to_numpy(),
               other=df["bubbles"].fillna(0).astype(int).to_numpy())
    return pd.DataFrame(out)[list(ARTEFACT_HEADS)]


class GetHeads:
    """Row -> LongTensor (6,) of the artefact head targets (columns `head:<name>`)."""

    def __init__(self, cols: list[str]) -> None:
        self.cols = cols

    def __call__(self, item: Any) -> torch.Tensor:
        return torch.tensor([int(item[c]) for c in self.cols], dtype=torch.long)


def head_accuracy(pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
    """Mean accuracy over heads and images (the per-epoch number the code prints per head)."""
    return (pred.argmax(-1) == targ).float().mean()


def artefact_dls(ds: Any, targets: pd.DataFrame, parts: dict[str, np.ndarray], size: int, bs: int, seed: int = 0,
                 num_workers: int = 0) -> Any:
    """Loaders of the code's preprocessing: resize, [-1, 1] scaling (Normalize 0.5/0.5), no augmentation."""
    from fastai.data.core import Datasets

    from ..data.augment import preset_tfms
    from ..data.loaders import ReadImage, _batch_tfms, _dataloaders

    df = ds.df.reset_index(drop=True).copy()
    cols = [f"head:{h}" for h in targets.columns]
    df[cols] = targets.to_numpy()
    dsets = Datasets(df, tfms=[[ReadImage(size)], [GetHeads(cols)]],
                     splits=[list(parts["train"]), list(parts["valid"])])
    item, _ = preset_tfms("none", size)  # squish: the code's A.Resize(size, size)
    return _dataloaders(dsets, bs, item, _batch_tfms([], ((0.5,) * 3, (0.5,) * 3)), seed, num_workers, False, None,
                        None)


def train_artefacts(ds: Any, parts: dict[str, np.ndarray], cfg: MultimodalConfig, run: Run) -> dict[str, Any] | None:
    """Train the six-head classifier (sum of per-head cross-entropies, Adam at a constant lr, as the code) on the
    training rows and score every head on the test rows. None, with a printed reason, without artefact labels."""
    from fastai.learner import Learner
    from fastai.optimizer import Adam

    from ..losses import MultiHeadCrossEntropy
    from ..models import create_model
    from ..train import RunHistory, drop_checkpoints, fit as lk_fit

    targets = artefact_targets(ds.df)
    if targets is None:
        print(f"{ds.name}: no artefact labels (hair/black_frame/ruler/bubbles or the six head columns): the "
              "artefact classifier is skipped. The paper's annotation file (gans_biases.csv) was never published.")
        return None
    model = create_model("artefact_b2", pretrained=cfg.pretrained, backbone=cfg.backbone)
    dls = artefact_dls(ds, targets, parts, cfg.image_size, cfg.artefact_batch_size, cfg.seed, cfg.num_workers)
    learn = Learner(dls, model, loss_func=MultiHeadCrossEntropy(), opt_func=Adam, metrics=[head_accuracy],
                    path=run.dir, model_dir="checkpoints", cbs=[RunHistory(run, stage="artefacts")])
    learn.lesionkit_monitor = "valid_loss"
    t0 = time.perf_counter()
    lk_fit(learn, cfg.artefact_epochs, cfg.artefact_lr, schedule="constant", fname="best_artefacts")
    seconds = time.perf_counter() - t0
    drop_checkpoints(learn)
    preds, y = _head_preds(learn, dls, ds, targets, parts["test"])
    table = head_accuracy_table(y, preds, list(targets.columns))
    run.save_table(table, "artefact_heads.csv")
    run.save_model(model, name="model_artefacts", spec={"name": "artefact_b2", "backbone": cfg.backbone,
                                                        "heads": list(targets.columns)})
    run.log_metrics({"artefacts": {"mean_accuracy": float(table["accuracy"].mean()),
                                   "per_head": table.set_index("head")["accuracy"].to_dict()}})
    return {"table": table, "seconds": seconds, "learn": learn}


def _head_preds(learn: Any, dls: Any, ds: Any, targets: pd.DataFrame, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = ds.df.reset_index(drop=True).iloc[idx].copy()
    rows[[f"head:{h}" for h in targets.columns]] = targets.to_numpy()[idx]
    dl = dls.test_dl(rows, with_labels=True)
    with learn.no_bar():
        logits, y = learn.get_preds(dl=dl)
    return logits.argmax(-1).numpy(), y.numpy()


def head_accuracy_table(y: np.ndarray, pred: np.ndarray, heads: list[str]) -> pd.DataFrame:
    """Per head: accuracy, recall of 'none' and of 'yes' (the code's per-class accuracy), and prevalence.
    Unlike the code, counts start at 0 (it starts n_correct at 2, inflating accuracy by 2/n)."""
    y, pred = np.asarray(y), np.asarray(pred)
    rows = []
    for j, head in enumerate(heads):
        t, p = y[:, j], pred[:, j]
        rows.append({"head": head, "accuracy": float((t == p).mean()) if len(t) else np.nan,
                     "recall_none": float((p[t == 0] == 0).mean()) if (t == 0).any() else np.nan,
                     "recall_yes": float((p[t == 1] == 1).mean()) if (t == 1).any() else np.nan,
                     "prevalence": float(t.mean()) if len(t) else np.nan, "n": int(len(t))})
    return pd.DataFrame(rows)


# --- attribution, comparison, summary ------------------------------------------------------------------------------


def explain(ds: Any, splits: list[dict[str, np.ndarray]], result: dict[str, Any], cfg: MultimodalConfig,
            run: Run) -> Any:
    """Maps of the image + metadata model for the first test images (metadata passed along, not attributed),
    stored with the run for the viewer; returns the static grid figure."""
    from ..attribution import load_attributions, precompute_attributions
    from ..data.loaders import test_dl
    from ..viz.maps import plot_store_grid

    learn = result["learn"]
    idx = splits[-1]["test"][: cfg.n_attribution]
    image, meta, y = next(iter(test_dl(learn.dls, ds, idx, bs=len(idx))))
    model = learn.model.model
    precompute_attributions(model, image, cfg.methods, run.dir, classes=ds.classes, labels=y.cpu().numpy(),
                            image_ids=ds.df["image_id"].iloc[idx].tolist(), meta=meta, targets="pred",
                            model_name=learn.lesionkit_spec["name"])
    fig = plot_store_grid(load_attributions(run.dir))
    run.save_figure(fig, "attribution_grid")
    return fig


def comparison(table: pd.DataFrame, artefacts: dict[str, Any] | None, cfg: MultimodalConfig, ds: Any,
               run: Run) -> pd.DataFrame:
    """This run beside the 1st-place AUCs the multimodal paper builds on (it reports none itself, §C.7)."""
    from .reported import comparison_table

    by = table.set_index("model")
    test_meta = run.metrics().get("test_meta", {})
    ours = {k: test_meta[k] for k in ("ap", "f1_weighted", "accuracy", "spec_at_sens95") if k in test_meta}
    ours.update({"auc": by.loc["image + metadata", "auc"], "image_only/auc": by.loc["image only", "auc"],
                 "metadata_gain/auc": by.loc["image + metadata", "auc"] - by.loc["image only", "auc"]})
    if artefacts is not None:
        ours["artefacts/mean_head_accuracy"] = float(artefacts["table"]["accuracy"].mean())
    label = (f"{ds.name} ({len(ds)} images, {int(ds.df['label_idx'].sum())} melanomas), {cfg.backbone} "
             f"{cfg.image_size} px, {cfg.epochs} epochs, " + (f"{cfg.folds}-fold" if cfg.folds > 1 else "holdout"))
    out = comparison_table(PAPER, ours, label)
    run.save_table(out, "comparison.csv")
    return out


def summarize(table: pd.DataFrame, artefacts: dict[str, Any] | None, run: Run) -> dict[str, float]:
    """The 2-4 headline numbers the demo prints."""
    by = table.set_index("model")
    summary = {"auc_meta": float(by.loc["image + metadata", "auc"]), "auc_image": float(by.loc["image only", "auc"])}
    summary["auc_gain"] = summary["auc_meta"] - summary["auc_image"]
    if artefacts is not None:
        summary["artefact_acc"] = float(artefacts["table"]["accuracy"].mean())
    run.log_metrics({"summary": summary})
    return summary


__all__ = ["MultimodalConfig", "start", "load_data", "to_melanoma", "make_splits", "split_table", "metadata_preview",
           "stage_history", "build_learner", "fit", "predict", "run_model", "evaluate", "evaluate_external",
           "plot_roc_pair", "artefact_targets", "artefact_dls", "train_artefacts", "head_accuracy_table", "explain",
           "comparison", "summarize"]
