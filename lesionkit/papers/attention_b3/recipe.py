"""attention_b3 notebook: "Going Smaller" (iToBoS), four attention modules in EfficientNet-B3, side by side.

One engine Variant per model (spec methods-b §B.6-B.9): SGE-B3, Spatial-B3, S2-MLP-B3, S2-CBAM-B3 and the plain B3
they are measured against, trained on the multiclass diagnosis with the LMF loss, torch AdamW (wd 1e-5), the code's lr
3e-5 warmed up ×10 over one epoch to the peak ``lr`` 3e-4 then cosine, and the best macro one-vs-rest AUC epoch
kept; each scored as a melanoma detector on P(melanoma) with the 8 flip/transpose views by the paper's metrics, on
the held-out rows and (``test_dir``) on an external set with the fold ensemble. Data: ISIC 2019 + 2020 in the 1st
place's 9 classes (``papers.attention_b3.data``). Attention variants: "paper" = External-Attention-pytorch's
defaults (the code's imports: SGE β 0, CBAM kernel 49), "module_papers" = the modules' own papers (β 1, kernel 7).
The remaining departures are ``DEVIATIONS`` (``papers.attention_b3.deviations``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from fastai.losses import CrossEntropyLossFlat

from lesionkit.attribution import explain_rows
from lesionkit.config import ConfigError, param, param_like
from lesionkit.data.loaders import image_dls, test_dl
from lesionkit.data.table import require_two_classes
from lesionkit.data.tasks import find_class
from lesionkit.engine import (
    SCHEDULES,
    Schedule,
    Variant,
    adamw,
    count_params,
    fold_means,
    pick_examples,
    run_folds,
    train_variant,
)
from lesionkit.engine.evaluation import Evaluation, evaluate_models
from lesionkit.engine.schedules import STEPPINGS
from lesionkit.layers.spatial_attention import SPATIAL_INITS
from lesionkit.losses import LMFLoss, class_counts
from lesionkit.metrics import auc_ovr, binary_report, fastai_metrics, write_predictions
from lesionkit.models import create_model
from lesionkit.papers.attention_b3.data import TASKS, read_training_data
from lesionkit.papers.attention_b3.deviations import DEVIATIONS
from lesionkit.papers.common import (
    TrainConfig,
    lesion_subsample,
    load_external,
    model_norm,
    record_summary,
    save_models,
)
from lesionkit.papers.reported import ISIC2020_WINNERS_PROVEAI, reported
from lesionkit.records.runs import Run

MODEL_NAMES = {"sge_b3": "SGE-B3", "spatial_b3": "Spatial-B3", "s2mlp_b3": "S2-MLP-B3", "s2cbam_b3": "S2-CBAM-B3",
               "effb3_baseline": "B3 baseline"}
PAPER_CLASSES = 9
NO_MAP = ("s2mlp_b3", "effb3_baseline")  # S2 attention re-weights channels; the plain B3 has no attention
HEADLINE_COLUMNS = ("auc", "ap", "f1_weighted", "spec_at_sens95", "spec_at_sens95_bootstrap", "accuracy", "params")


@dataclass(frozen=True)
class AttentionB3Config(TrainConfig):
    notebook: ClassVar[str] = "attention_b3"
    paper: ClassVar[str] = "attention_b3"
    valid_frac_of_rest: ClassVar[bool] = True

    data_dir_2019: str = param("", "ISIC 2019 training folder merged into an ISIC 2020 data_dir (the paper's 9-class "
                                   "data; official ISIC_2019_Training_* files or Deotte's jpeg-isic2019-*); empty: "
                                   "found beside jpeg-melanoma-* when data_dir is the 1st-place parent folder")
    task: str = param("auto", "auto (the paper's 9-class diagnosis when ISIC 2019 + 2020 are given, else the "
                              "dataset's own classes), diagnosis9, melanoma (positive vs rest) or classes",
                      choices=TASKS)
    fold_mode: str = param("tfrecord", "ISIC folds from tfrecord: tfrecord (the code: the fold is the tfrecord, its "
                                       "CSVs hold 0-4), or the 1st place's maps of Deotte's 15: default, newfold, oldfold",
                           choices=("tfrecord", "default", "newfold", "oldfold"))
    test_dir: str = param_like(TrainConfig, "test_dir", "external test set (the paper: ProveAI): every fold model and "
                                                        "their mean-probability ensemble scored on P(positive) there")
    seed: int = param_like(TrainConfig, "seed", "random seed for splits, sampling, bootstrap and initialisation")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (Lite0 with its installed ImageNet weights, 64 px, 1 "
                                                  "epoch, 1 fold, ~80 images) to check the pipeline")
    models: str = param("sge_b3,spatial_b3,s2mlp_b3,s2cbam_b3,effb3_baseline", "comma-separated registry names "
                        "to train: the four attention models and effb3_baseline, the plain B3 they are measured "
                        "against")
    backbone: str = param("tf_efficientnet_b3.aa_in1k", "timm EfficientNet the modules go into (paper: geffnet's "
                                                        "tf_efficientnet_b3, whose ImageNet weights are timm's aa_in1k "
                                                        "tag, not the untagged default ns_jft_in1k; "
                                                        "tf_efficientnet_lite0 has offline ImageNet weights)")
    variant: str = param("paper", "'paper' (External-Attention defaults the code imports: SGE beta 0, CBAM kernel "
                                  "49) or 'module_papers' (SGE beta 1, CBAM kernel 7)",
                         choices=("paper", "module_papers"))
    spatial_init: str = param("pytorch", "initial weights of the spatial-attention convs (Spatial-B3 and every CBAM "
                                         "of S2-CBAM-B3): pytorch (nn.Conv2d's default init, as the originals) or "
                                         "zeros (a uniform gate at the start)", choices=SPATIAL_INITS)
    pretrained: bool | str = param(True, "true (the paper: ImageNet B3; offline only from the Hugging Face cache or "
                                         "for tf_efficientnet_lite0/lite2), false, or a weight file")
    image_size: int = param(384, "training resolution in pixels (paper: 384)", ge=32, le=1024)
    loss: str = param("lmf", "'lmf' (0.2 focal + 0.2 LDAM, the paper) or 'ce'", choices=("lmf", "ce"))
    epochs: int = param(35, "training epochs", ge=1, le=10_000)
    batch_size: int = param(64, "images per batch", ge=1, le=4096)
    lr: float = param(3e-4, "peak learning rate of the schedule (the paper's AdamW lr 3e-5, warmed up x10)",
                      ge=1e-7, le=10.0)
    weight_decay: float = param(1e-5, "AdamW weight decay, on every parameter (paper: 1e-5)", ge=0.0, le=1.0)
    schedule: str = param("warmup_cosine", "LR schedule: warmup_cosine (the paper: 1 epoch from lr/10, then cosine), "
                          + ", ".join(s for s in SCHEDULES if s != "warmup_cosine"), choices=SCHEDULES)
    schedule_stepping: str = param("epoch", "how often the schedule moves: epoch (the code: once per epoch, epoch 1 "
                                            "at lr/10, epoch 2 at lr; smoke runs: batch) or batch (every batch, "
                                            "warmup_cosine reaches 0)",
                                   choices=STEPPINGS)
    augment: str = param("first_place", "training augmentation: 'first_place' (the code's albumentations list) or "
                                        "'fastai'", choices=("first_place", "fastai"))
    monitor: str = param("auc_macro", "validation metric for model selection: auc_macro (the code's macro one-vs-rest "
                                      "AUC), bma or valid_loss",
                         choices=("auc_macro", "bma", "valid_loss"))
    validation: str = param("clean", "validation images: clean (resize only, one view) or train_augment (the code: "
                                     "transforms_val is transforms_train, random training augmentations)",
                            choices=("clean", "train_augment"))
    positive: str = param("mel", "class scored as the positive (melanoma) in the binary metrics")
    folds: int = param(5, "1: one train/valid split; >1: cross-validation (the paper: 5), every fold model and "
                          "their ensemble scored on the test set(s)", ge=1, le=10)
    valid_frac: float = param(0.15, "share of the non-test lesions for model selection (one fold)", ge=0.05, le=0.5)
    tta: bool = param(True, "average the 8 flip/transpose views at test time (the code: 10 flip views)")
    n_bootstrap: int = param(1000, "bootstrap resamples for specificity at sensitivity at least 0.95 (0: point only)",
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
        if self.data_dir_2019 and not Path(self.data_dir_2019).expanduser().is_dir():
            raise ConfigError(f"data_dir_2019 {self.data_dir_2019!r} is not a folder; give the ISIC 2019 training "
                              "folder or leave it empty")

    def effective(self, **smoke_overrides: Any) -> "AttentionB3Config":
        defaults = {"image_size": 64, "batch_size": 16, "epochs": 1, "max_images": 80, "n_explain": 2,
                    "n_bootstrap": 50, "backbone": "tf_efficientnet_lite0", "lr": 1e-3, "augment": "fastai", "folds": 1,
                    "schedule_stepping": "batch"}  # one epoch stepped per epoch would all run at lr/10
        return super().effective(**{**defaults, **smoke_overrides})  # type: ignore[return-value]

    @property
    def model_list(self) -> list[str]:
        return [m.strip() for m in self.models.split(",") if m.strip()]

    @property
    def headline(self) -> str:  # type: ignore[override]
        """The model the summary leads with and model.pth holds: SGE-B3 (the paper's best) when trained, else the
        first of ``models``."""
        return "sge_b3" if "sge_b3" in self.model_list else self.model_list[0]

    @property
    def model_kwargs(self) -> dict[str, Any]:
        beta, kernel = (0.0, 49) if self.variant == "paper" else (1.0, 7)
        return {"backbone": self.backbone, "sge_beta_init": beta, "cbam_kernel": kernel,
                "spatial_init": self.spatial_init}


def load(cfg: AttentionB3Config) -> Any:
    """The training rows (`papers.attention_b3.data`: ISIC 2019 + 2020 in 9 classes, or the dataset's own / binary task),
    a class-stratified subset of whole lesions with `max_images` (smoke: about 80)."""
    ds = read_training_data(cfg)
    require_two_classes(ds, f"data_dir {cfg.data_dir}")
    n = cfg.max_images or (140 if cfg.smoke else 0)
    if n and len(ds) > n:
        ds = ds.subset(lesion_subsample(ds.df, n, cfg.seed))
    try:
        find_class(cfg.positive, ds.classes)
    except ValueError as err:
        raise ConfigError(f"positive={cfg.positive!r} ({ds.root}): {err}") from None
    return ds


def build_model(name: str, cfg: AttentionB3Config, n_classes: int, pretrained: bool | str | None = None) -> Any:
    return create_model(name, pretrained=cfg.pretrained if pretrained is None else pretrained,
                        num_classes=n_classes, **cfg.model_kwargs)


def param_table(cfg: AttentionB3Config, n_classes: int) -> pd.DataFrame:
    """Parameters of every model with the paper's 9-class head and with this run's head, and the extra parameters
    the attention adds over the plain backbone (the "up to 95 % fewer parameters" claim is about these totals)."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(["effb3_baseline", *cfg.model_list]):  # the baseline first: its count is base9
        p9 = count_params(build_model(name, cfg, PAPER_CLASSES, pretrained=False))
        pk = p9 if n_classes == PAPER_CLASSES else count_params(build_model(name, cfg, n_classes, pretrained=False))
        rows.append({"model": MODEL_NAMES[name], "params_9_classes": p9, f"params_{n_classes}_classes": pk,
                     "attention_params": p9 - (rows[0]["params_9_classes"] if rows else p9)})
    return pd.DataFrame(rows)


def loss_func(cfg: AttentionB3Config, train_labels: np.ndarray, n_classes: int) -> Any:
    """LMF with class counts of the training rows (the code hard-codes its 9 ISIC counts), or plain CE."""
    return CrossEntropyLossFlat() if cfg.loss == "ce" else LMFLoss(class_counts(train_labels, n_classes))


def variant(name: str, ds: Any, cfg: AttentionB3Config, n_classes: int | None = None) -> Variant:
    """The paper's recipe for model ``name`` (§B.7): torch AdamW (β 0.9/0.999, eps 1e-8, weight decay on every
    parameter), one warmup epoch from lr/10 to the peak lr then cosine (stepped once per epoch as
    the code; ``schedule_stepping="batch"``: every batch, to 0), LMF, the epoch with the best macro
    one-vs-rest AUC, and the 8 flip/transpose views at test time. ``n_classes``: the model's head when ``ds`` is
    a set in other classes (an external positive-vs-rest set)."""
    n_classes = n_classes or ds.n_classes
    norm = model_norm(build_model(name, cfg, n_classes, pretrained=False))
    labels = ds.df["label_idx"].to_numpy()
    return Variant(
        key=name, label=MODEL_NAMES[name], model=lambda: build_model(name, cfg, n_classes),
        dls=lambda tr, va: validation_views(image_dls(ds, tr, va, size=cfg.image_size, bs=cfg.batch_size,
                                                      preset=cfg.augment, seed=cfg.seed,
                                                      num_workers=cfg.num_workers, norm=norm), cfg.validation),
        optimizer=adamw(weight_decay=cfg.weight_decay, betas=(0.9, 0.999), eps=1e-8, decay_bn_bias=True),
        schedule=Schedule(cfg.schedule, warmup_epochs=1.0, warmup_factor=10.0, stepping=cfg.schedule_stepping),
        epochs=cfg.epochs, lr=cfg.lr,
        monitor=cfg.monitor, loss=lambda tr: loss_func(cfg, labels[tr], n_classes),
        metrics=fastai_metrics("multiclass", n_classes), views="dihedral8" if cfg.tta else "none")


def validation_views(dls: Any, validation: str) -> Any:
    """``validation="train_augment"``: the validation loader gets the training transforms (the code's
    ``transforms_val = transforms_train``, §B.5), so each epoch scores freshly augmented images; "clean" leaves
    fastai's resize-only validation. Test loaders are made from the clean validation transforms either way."""
    if validation == "clean":
        return dls
    vd = dls.valid.dataset
    augmented = type(vd)(tls=[tl._new(tl.items, split_idx=0) for tl in vd.tls], n_inp=vd.n_inp)
    dls.loaders[1] = dls.valid.new(augmented, shuffle=False, drop_last=False)
    return dls


def train(ds: Any, splits: Any, cfg: AttentionB3Config, run: Run) -> Any:
    """Every model on every fold (resumable stages), each fold model scored on the fixed test set by `evaluate`:
    ``lesionkit.engine.FoldResults`` (per-fold table, fold-0 learners, test probabilities). The fold-0 models are
    saved: model.pth the headline model, model_<name>.pth the others."""
    res = run_folds(run, ds, splits, [variant(name, ds, cfg) for name in cfg.model_list],
                    report=lambda y, probs: evaluate(probs, y, ds, cfg), seed=cfg.seed, figures=False,
                    settings=cfg.engine_settings())
    save_models(run, res.learners, cfg.headline, spec=lambda _: {"classes": ds.classes})
    return res


def evaluate(probs: np.ndarray, y: np.ndarray, ds: Any, cfg: AttentionB3Config) -> dict[str, Any]:
    """The paper's binary metrics on P(positive), flattened: bootstrap specificity as spec_at_sens95_bootstrap."""
    k = ds.classes.index(find_class(cfg.positive, ds.classes))
    report = melanoma_report((y == k).astype(int), probs[:, k], cfg)
    report["auc_macro_multiclass"] = float(auc_ovr(y, probs)[1])
    return report


def melanoma_report(y01: np.ndarray, p: np.ndarray, cfg: AttentionB3Config) -> dict[str, Any]:
    """§B.9's metrics of P(positive) against 0/1 truth (bootstrap means flattened)."""
    report = binary_report(y01, p, n_bootstrap=cfg.n_bootstrap, seed=cfg.seed)
    boot = report.pop("bootstrap", None)
    if boot:
        report["spec_at_sens95_bootstrap"] = boot["specificity"]["mean"]
        report["sens_at_sens95_bootstrap"] = boot["sensitivity"]["mean"]
    return report


def evaluation(ds: Any, cfg: AttentionB3Config, classes: list[str]) -> Evaluation:
    """How the models of a run trained on ``classes`` are scored on ``ds``, a positive-vs-rest set
    (``lesionkit.engine.evaluation``): every fold model and their mean-probability ensemble, the column of
    ``positive`` as P(positive), §B.9's metrics."""
    k = classes.index(find_class(cfg.positive, classes))

    def unlabelled(learn: Any, rows: np.ndarray) -> Any:  # the set's labels are not the model's classes
        return test_dl(learn.dls, ds, rows, with_labels=False)

    models = [replace(variant(name, ds, cfg, n_classes=len(classes)), test_dl=unlabelled) for name in cfg.model_list]
    return Evaluation(models, report=lambda y, p: melanoma_report(y, p[:, 1], cfg), folds="ensemble",
                      positive_column=k)


def score_external(res: Any, ds: Any, splits: Any, cfg: AttentionB3Config, run: Run) -> pd.DataFrame | None:
    """Every fold model of every variant on ``test_dir`` (the paper's ProveAI role; read by ``load_external``,
    its classes as positive vs rest), and with folds > 1 their ensemble: the mean over folds of the softmax
    probabilities (each already the mean over the test-time views), as the code's predict.py (§A.8, §B.8).
    Predictions go to ``predictions/external_<model>_fold<k>.csv`` / ``_ensemble.csv`` (P(positive), with truth;
    ``_ensemble_probs.csv``: all classes), reports to metrics.json, the rows to external.csv. None without test_dir."""
    k = ds.classes.index(find_class(cfg.positive, ds.classes))
    ext = load_external(cfg, ["rest", ds.classes[k]], positive=cfg.positive)
    if ext is None:
        return None
    learners = {}
    for v in [variant(name, ds, cfg) for name in cfg.model_list]:  # fold 0 trained; the others load their stage
        learners[v.key] = [res.learners[v.key]] + [
            train_variant(run, v, tr, va, cfg.seed, key=f"{v.key}_fold{f}", settings=cfg.engine_settings())
            for f, (tr, va) in enumerate(splits.folds) if f > 0]
    scores = evaluate_models(run, evaluation(ext, cfg, list(ds.classes)), learners, ext)
    for key in learners:
        if f"external_{key}_ensemble" in scores.probs:
            write_predictions(run.dir / "predictions", ext.df["image_id"].tolist(),
                              scores.probs[f"external_{key}_ensemble"], ds.classes, stem=f"external_{key}_ensemble_probs")
    table = scores.table.reindex(columns=["model", "fold", *HEADLINE_COLUMNS[:-1], "images"]).reset_index(drop=True)
    table["positives"] = int(scores.y.sum())
    run.save_table(table, "external.csv")
    return table


def side_by_side(df: pd.DataFrame) -> pd.DataFrame:
    """One row per model: the paper's metrics (fold means) and the parameter count."""
    return pd.DataFrame([{"model": m, **{k: v.get(k, float("nan")) for k in HEADLINE_COLUMNS}}
                         for m, v in fold_means(df).items()])


def summarize(df: pd.DataFrame, params: pd.DataFrame, run: Run, cfg: AttentionB3Config,
              external: pd.DataFrame | None = None) -> dict[str, Any]:
    """Summary (the headline model's AUC, AP, weighted F1, specificity at sensitivity at least 0.95) and the
    comparison: on the external test set's fold ensemble when `external` (score_external's table) is given, as the
    paper's ProveAI numbers are; else the held-out rows' fold means."""
    means = fold_means(df)
    if external is not None:
        final = external.groupby("model", sort=False).tail(1).set_index("model")  # the ensemble row, or fold 0's
        means = {m: {k: float(v) for k, v in r.items() if isinstance(v, (int, float)) and k != "fold"}
                 for m, r in final.iterrows()}
    head = MODEL_NAMES[cfg.headline]
    summary = {k: means[head][k] for k in ("auc", "ap", "f1_weighted", "spec_at_sens95")}
    keys = ("auc", "ap", "f1_weighted", "accuracy", "spec_at_sens95", "spec_at_sens95_bootstrap")
    ours = {f"{label}/{k}": v for label, mm in means.items() for k, v in mm.items() if k in keys}
    n_params = {r["model"]: int(r["params_9_classes"]) for _, r in params.iterrows()}
    ours.update({f"{m}/params": float(p) for m, p in n_params.items()})
    n = df.groupby("model")["fold"].nunique().max()
    label = (f"{cfg.test_dir or cfg.data_dir}, {cfg.positive} vs rest from {len(cfg.model_list)} models' softmax, {cfg.image_size} px, "
             f"{cfg.backbone}, {cfg.epochs} ep" + (", flip TTA" if cfg.tta else "")
             + ((f", ensemble of {n} folds" if external is not None else f", mean of {n} folds") if n > 1 else "")
             + "; params with the paper's 9-class head")
    run.save_table(params, "params.csv")
    result = record_summary(run, cfg, summary, ours, label, include_unreported=False, headline_model=head,
                            **{"external" if external is not None else "test": means, "params": n_params})
    return {**result, "headline": head, "ours": means, "ours_on": label}


def beside_the_winners(result: dict[str, Any]) -> pd.DataFrame:
    """This run's models (``summarize``'s result) beside the paper's four and the ISIC 2020 winners' ensembles on
    ProveAI, as the paper scored them all (methods-b §B.10): one row per model, the paper's metrics, and what each
    row was measured on."""
    keys = [k for k in HEADLINE_COLUMNS if k != "params"]
    rows = [{"model": m, "source": "this run", **{k: v.get(k, float("nan")) for k in keys}, "on": result["ours_on"]}
            for m, v in result["ours"].items()]
    theirs: dict[str, dict[str, Any]] = {}
    for r in [*reported("attention_b3"), *ISIC2020_WINNERS_PROVEAI]:
        if r.metric in keys:
            theirs.setdefault(r.model, {"model": r.model, "source": "reported"})[r.metric] = r.value
            theirs[r.model]["on"] = r.reported_on
    return pd.DataFrame(rows + list(theirs.values()), columns=["model", "source", *keys, "on"])


def explain(res: Any, ds: Any, test: np.ndarray, cfg: AttentionB3Config, run: Run) -> dict[str, Any]:
    """Attribution maps of every fold-0 model for the same test images (picked from the headline model's test
    predictions), each stored in ``attribution/<model>/`` (the viewer's layout), the headline's also at top level."""
    import shutil

    head = "sge_b3" if "sge_b3" in res.learners else next(iter(res.learners))
    idx = test[pick_examples(res.y, res.probs[head][0], cfg.n_explain, cfg.seed)]
    stores = {}
    for name, learn in res.learners.items():
        methods = [m for m in cfg.methods if m != "native" or name not in NO_MAP]
        stores[name] = explain_rows(learn.model, ds, idx, methods, run.dir / "attribution" / name,
                                    size=cfg.image_size, norm=model_norm(learn.model), model_name=MODEL_NAMES[name])
    for f in (run.dir / "attribution" / head).iterdir():
        shutil.copyfile(f, run.dir / f.name)
    return stores


__all__ = ["AttentionB3Config", "load", "build_model", "param_table", "loss_func", "variant",
           "validation_views", "train", "evaluate", "melanoma_report", "evaluation", "score_external", "side_by_side", "summarize",
           "beside_the_winners", "explain", "DEVIATIONS"]
