"""attention_b3 notebook: "Going Smaller" (iToBoS), four attention modules in EfficientNet-B3, side by side.

Pipeline (spec methods-b §B): SGE-B3, Spatial-B3, S2-MLP-B3 and S2-CBAM-B3 (optionally the plain B3) are trained on
the multiclass diagnosis with the LMF loss (0.2 · batch-level class-weighted focal + 0.2 · LDAM), AdamW (wd 1e-5)
with one warmup epoch and cosine annealing, and the epoch with the best macro one-vs-rest AUC is kept (the code's
rule). Each model is then scored as a *melanoma detector* on P(melanoma), with flip TTA, by the paper's metrics
(§B.9): ROC-AUC, PR-AUC (step-wise average precision), support-weighted F1 at 0.5, and the best specificity with
sensitivity ≥ 0.95 (point estimate, plus the seeded bootstrap mean the paper reports). Parameter counts are given for
the paper's 9-class head and for this run's head.

Variants: the repository's attention file is missing; its class names match External-Attention-pytorch, whose
defaults are used by default ("paper": SGE β initialised to 0, CBAM spatial kernel 49). "module_papers" uses the
modules' own papers instead (SGE β = 1, CBAM kernel 7). The code's learning rate 3e-5 is the warmup's start; the
peak after its ×10 warmup is the `lr` here (3e-4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ConfigError, param, param_like
from ..runs import Run, start_notebook_run
from . import protocol
from .common import TrainConfig, load_data

NOTEBOOK = "attention_b3"
PAPER = "attention_b3"
MODEL_NAMES = {"sge_b3": "SGE-B3", "spatial_b3": "Spatial-B3", "s2mlp_b3": "S2-MLP-B3", "s2cbam_b3": "S2-CBAM-B3",
               "effb3_baseline": "B3 baseline"}
PAPER_CLASSES = 9


@dataclass(frozen=True)
class AttentionB3Config(TrainConfig):
    test_dir: str = param_like(TrainConfig, "test_dir", "unused here: the test set is held out from data_dir (kept for "
                                                        "a uniform interface)")
    seed: int = param_like(TrainConfig, "seed", "random seed for splits, sampling, bootstrap and initialisation")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (Lite0 backbone, 64 px, 1 epoch, ~80 images) to check "
                                                   "the pipeline")
    models: str = param("sge_b3,spatial_b3,s2mlp_b3,s2cbam_b3", "comma-separated registry names to train (add "
                                                                "effb3_baseline for the plain B3)")
    backbone: str = param("tf_efficientnet_b3", "timm EfficientNet the modules go into (paper: tf_efficientnet_b3; "
                                                "tf_efficientnet_lite0 has offline ImageNet weights)")
    variant: str = param("paper", "'paper' (External-Attention defaults the code imports: SGE beta 0, CBAM kernel "
                                  "49) or 'module_papers' (SGE beta 1, CBAM kernel 7)",
                         choices=("paper", "module_papers"))
    pretrained: bool | str = param(False, "true (offline weights only for tf_efficientnet_lite0/lite2), false, or "
                                          "a weight file")
    image_size: int = param(384, "training resolution in pixels (paper: 384)", ge=32, le=1024)
    loss: str = param("lmf", "'lmf' (0.2 focal + 0.2 LDAM, the paper) or 'ce'", choices=("lmf", "ce"))
    epochs: int = param(35, "training epochs", ge=1, le=10_000)
    batch_size: int = param(64, "images per batch", ge=1, le=4096)
    lr: float = param(3e-4, "peak learning rate (code: 3e-5 warmed up x10)", ge=1e-7, le=10.0)
    weight_decay: float = param(1e-5, "AdamW weight decay", ge=0.0, le=1.0)
    schedule: str = param("warmup_cosine", "LR schedule: warmup_cosine (the code), "
                          + ", ".join(s for s in protocol.SCHEDULES if s != "warmup_cosine"), choices=protocol.SCHEDULES)
    augment: str = param("first_place", "training augmentation: 'first_place' (the code's albumentations list) or "
                                        "'fastai'", choices=("first_place", "fastai"))
    monitor: str = param("auc_macro", "validation metric for model selection: auc_macro (the code's macro one-vs-rest "
                                      "AUC), bma or valid_loss",
                         choices=("auc_macro", "bma", "valid_loss"))
    positive: str = param("mel", "class scored as the positive (melanoma) in the binary metrics")
    folds: int = param(1, "1: one grouped train/valid split; >1: grouped CV, every model scored on the test set",
                       ge=1, le=10)
    test_frac: float = param(0.2, "share of lesions held out for the test set", ge=0.05, le=0.5)
    valid_frac: float = param(0.15, "share of lesions for model selection (with one fold)", ge=0.05, le=0.5)
    tta: bool = param(True, "average the 8 flip/transpose views at test time (the code: 10 flip views)")
    n_bootstrap: int = param(1000, "bootstrap resamples for specificity at sensitivity >= 0.95 (0: point only)",
                             ge=0, le=100_000)
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)
    attribution: bool = param(True, "explain a few test predictions (Grad-CAM and the native attention maps)")
    attribution_methods: str = param("gradcam,native", "comma-separated attribution methods")
    n_explain: int = param(6, "test images to explain", ge=1, le=64)

    def validate(self) -> None:
        super().validate()
        unknown = [m for m in self.model_list if m not in MODEL_NAMES]
        if unknown or not self.model_list:
            raise ConfigError(f"models={self.models!r}: unknown {unknown}; choose from {list(MODEL_NAMES)}")

    def effective(self, **smoke_overrides: Any) -> "AttentionB3Config":
        defaults = {"image_size": 64, "batch_size": 16, "epochs": 1, "max_images": 80, "n_explain": 2,
                    "n_bootstrap": 50, "backbone": "tf_efficientnet_lite0", "lr": 1e-3, "augment": "fastai"}
        return super().effective(**{**defaults, **smoke_overrides})  # type: ignore[return-value]

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]

    @property
    def model_kwargs(self) -> dict[str, Any]:
        beta, kernel = (0.0, 49) if self.variant == "paper" else (1.0, 7)
        return {"backbone": self.backbone, "sge_beta_init": beta, "cbam_kernel": kernel}


def start(namespace: dict[str, Any]) -> Run:
    """The config cell: validate the notebook's parameters and open its run record."""
    return start_notebook_run(NOTEBOOK, AttentionB3Config, namespace)


def load(cfg: AttentionB3Config) -> Any:
    ds = load_data(cfg, max_images=cfg.max_images or None)
    if cfg.positive not in ds.classes:
        raise ConfigError(f"positive={cfg.positive!r} is not a class of {ds.root}: {ds.classes}")
    return ds


def build_model(name: str, cfg: AttentionB3Config, n_classes: int, pretrained: bool | str | None = None) -> Any:
    from ..models import create_model

    return create_model(name, pretrained=cfg.pretrained if pretrained is None else pretrained,
                        num_classes=n_classes, **cfg.model_kwargs)


def param_table(cfg: AttentionB3Config, n_classes: int) -> Any:
    """Parameters of every model with the paper's 9-class head and with this run's head, and the extra parameters
    the attention adds over the plain backbone (the "up to 95 % fewer parameters" claim is about these totals)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(["effb3_baseline", *cfg.model_list]):  # the baseline first: its count is base9
        p9 = protocol.count_params(build_model(name, cfg, PAPER_CLASSES, pretrained=False))
        pk = p9 if n_classes == PAPER_CLASSES else protocol.count_params(build_model(name, cfg, n_classes,
                                                                                    pretrained=False))
        base9 = rows[0]["params_9_classes"] if rows else p9
        rows.append({"model": MODEL_NAMES[name], "params_9_classes": p9, f"params_{n_classes}_classes": pk,
                     "attention_params": p9 - base9})
    return pd.DataFrame(rows)


def loss_func(cfg: AttentionB3Config, train_labels: np.ndarray, n_classes: int) -> Any:
    """LMF with class counts of the training rows (the code hard-codes its 9 ISIC counts), or plain CE."""
    from ..losses import LMFLoss, class_counts

    if cfg.loss == "ce":
        from fastai.losses import CrossEntropyLossFlat

        return CrossEntropyLossFlat()
    return LMFLoss(class_counts(train_labels, n_classes))


def build_learner(ds: Any, name: str, train_idx: np.ndarray, valid_idx: np.ndarray, cfg: AttentionB3Config,
                  run: Run, stage: str = "") -> Any:
    from ..data.loaders import image_dls
    from ..metrics import fastai_metrics
    from ..train import make_learner
    from .common import model_norm

    model = build_model(name, cfg, ds.n_classes)
    dls = image_dls(ds, train_idx, valid_idx, size=cfg.image_size, bs=cfg.batch_size, preset=cfg.augment,
                    seed=cfg.seed, num_workers=cfg.num_workers, norm=model_norm(model))
    loss = loss_func(cfg, ds.df["label_idx"].to_numpy()[train_idx], ds.n_classes)
    return make_learner(dls, model, run, loss_func=loss, metrics=fastai_metrics("multiclass", ds.n_classes),
                        monitor=cfg.monitor, opt_func=protocol.opt_func("adam", wd=cfg.weight_decay), stage=stage)


def predict_test(learn: Any, ds: Any, idx: np.ndarray, cfg: AttentionB3Config) -> tuple[np.ndarray, Any]:
    """Softmax probabilities and labels on rows `idx`, averaged over the 8 flip/transpose views when `tta`."""
    from ..data.views import tta_dl
    from .common import model_norm

    if not cfg.tta:
        return protocol.predict_probs(learn.model, learn.dls.test_dl(ds.df.iloc[idx], with_labels=True))
    dl = tta_dl(ds, idx, size=cfg.image_size, views="flips8", bs=cfg.batch_size, norm=model_norm(learn.model))
    return protocol.predict_views(learn.model, dl)


def evaluate(probs: np.ndarray, y: np.ndarray, ds: Any, cfg: AttentionB3Config) -> dict[str, Any]:
    """The paper's binary metrics on P(positive), flattened: bootstrap specificity as spec_at_sens95_bootstrap."""
    from ..metrics import binary_report

    k = ds.classes.index(cfg.positive)
    report = binary_report((y == k).astype(int), probs[:, k], n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    boot = report.pop("bootstrap", None)
    if boot:
        report["spec_at_sens95_bootstrap"] = boot["specificity"]["mean"]
        report["sens_at_sens95_bootstrap"] = boot["sensitivity"]["mean"]
    from ..metrics import auc_ovr

    report["auc_macro_multiclass"] = float(auc_ovr(y, probs)[1])
    return report


def train_and_test(ds: Any, cv: protocol.CVSplits, cfg: AttentionB3Config, run: Run) -> tuple[Any, dict[str, Any]]:
    """Every model on every fold, each scored on the fixed test set; (per-fold DataFrame, {name: fold-0 learner})."""
    import pandas as pd

    from ..train import drop_checkpoints

    kept: dict[str, Any] = {}
    frames = []
    for name in cfg.model_list:
        def fit_eval(k: int, tr: np.ndarray, va: np.ndarray, name: str = name) -> dict[str, Any]:
            learn = build_learner(ds, name, tr, va, cfg, run, stage=f"{name}_fold{k}")
            protocol.fit_schedule(learn, cfg.epochs, cfg.lr, cfg.schedule, monitor=cfg.monitor,
                                  fname=f"best_{name}_{k}")
            probs, y = predict_test(learn, ds, cv.test, cfg)
            protocol.record_evaluation(run, f"test_{name}_fold{k}", ds, cv.test, probs, y, figures=False, log=False)
            if k == 0:
                learn.test_preds = (probs, y)  # fold 0's test predictions, reused to pick images to explain
                kept[name] = learn
            return {**evaluate(probs, y, ds, cfg), "params": protocol.count_params(learn.model)}

        frames.append(protocol.cross_validate(cv, fit_eval, model=MODEL_NAMES[name], run=run))
    for learn in kept.values():
        drop_checkpoints(learn)
    return pd.concat(frames, ignore_index=True), kept


HEADLINE_COLUMNS = ("auc", "ap", "f1_weighted", "spec_at_sens95", "spec_at_sens95_bootstrap", "accuracy", "params")


def side_by_side(df: Any) -> Any:
    """One row per model: the paper's metrics (fold means) and the parameter count."""
    means = protocol.fold_means(df)
    import pandas as pd

    return pd.DataFrame([{"model": m, **{k: v.get(k, float("nan")) for k in HEADLINE_COLUMNS}}
                         for m, v in means.items()])


def summarize(df: Any, params: Any, run: Run, cfg: AttentionB3Config) -> dict[str, Any]:
    """Summary (the headline model's AUC, AP, weighted F1, specificity at sensitivity >= 0.95) and the comparison."""
    from .reported import comparison_table

    means = protocol.fold_means(df)
    head = "SGE-B3" if "SGE-B3" in means else next(iter(means))
    m = means[head]
    summary = {"auc": m["auc"], "ap": m["ap"], "f1_weighted": m["f1_weighted"], "spec_at_sens95": m["spec_at_sens95"]}
    keys = ("auc", "ap", "f1_weighted", "accuracy", "spec_at_sens95", "spec_at_sens95_bootstrap")
    ours = {f"{label}/{k}": v for label, mm in means.items() for k, v in mm.items() if k in keys}
    ours.update({f"{r['model']}/params": float(r["params_9_classes"]) for _, r in params.iterrows()})
    n = df.groupby("model")["fold"].nunique().max()
    label = (f"{cfg.data_dir}, {cfg.positive} vs rest from "
             f"{len(cfg.model_list)} models' softmax, {cfg.image_size} px, {cfg.backbone}, {cfg.epochs} ep"
             + (", flip TTA" if cfg.tta else "") + (f", mean of {n} folds" if n > 1 else "")
             + "; params with the paper's 9-class head")
    table = comparison_table(PAPER, ours, label, include_unreported=False)
    run.save_table(table, "comparison.csv")
    run.save_table(params, "params.csv")
    run.log_metrics({"summary": summary, "headline_model": head,
                     "test": means, "params": {r["model"]: int(r["params_9_classes"]) for _, r in params.iterrows()}})
    return {"summary": summary, "comparison": table, "headline": head}


def save_models(kept: dict[str, Any], cfg: AttentionB3Config, ds: Any, run: Run) -> None:
    """model.pth = the headline model (SGE-B3 when trained, else the first); model_<name>.pth for the others."""
    head = "sge_b3" if "sge_b3" in kept else next(iter(kept))
    for name, learn in kept.items():
        spec = {"name": name, "kwargs": {"num_classes": ds.n_classes, **cfg.model_kwargs}, "classes": ds.classes}
        run.save_model(learn.model, name="model" if name == head else f"model_{name}", spec=spec)


def explain(kept: dict[str, Any], ds: Any, idx: np.ndarray, cfg: AttentionB3Config, run: Run) -> dict[str, Any]:
    """Attribution maps of every model for the same test images, each stored in ``attribution/<model>/`` (the
    viewer's layout) and the headline model's also at the run's top level."""
    from ..attribution import load_attributions, precompute_attributions
    from .common import model_norm

    methods = cfg.methods
    stores = {}
    for name, learn in kept.items():
        model_methods = [m for m in methods if m != "native" or name != "s2mlp_b3"]  # S2 attention has no map
        x = protocol.model_inputs(ds, idx, cfg.image_size, norm=model_norm(learn.model))
        out = run.dir / "attribution" / name
        precompute_attributions(learn.model, x, model_methods, out, classes=ds.classes,
                                labels=ds.df["label_idx"].to_numpy()[idx],
                                image_ids=ds.df["image_id"].iloc[idx].tolist(), targets="pred", batch_size=8,
                                model_name=MODEL_NAMES[name])
        stores[name] = load_attributions(out)
    head = "sge_b3" if "sge_b3" in stores else next(iter(stores))
    import shutil

    for f in (run.dir / "attribution" / head).iterdir():
        shutil.copyfile(f, run.dir / f.name)
    return stores


__all__ = ["AttentionB3Config", "start", "load", "build_model", "param_table", "loss_func", "build_learner",
           "predict_test", "evaluate", "train_and_test", "side_by_side", "summarize", "save_models", "explain"]
