"""multimodal: EfficientNet image features + patient metadata (methods-b §C, built on the 1st-place §A), against
the same network on the image alone, and the six-head artefact/bias classifier of the same paper (§C.6).

Paper choices are the defaults: EfficientNet-B2 from ImageNet weights (timm's TF-ported ``aa_in1k``) at 256 px,
torch Adam without weight decay, one warm-up epoch from 3e-5 to the peak ``lr`` 3e-4 (the code's --init-lr 3e-5
×10) then cosine (§A.7/§C.5), the 1st-place augmentation (§A.6, with albumentations 0.4.6's elastic warp) and
8-view flip/transpose TTA with averaged probabilities (§A.8), metadata = sex, age/90 and one-hot site (§A.3) fitted
on training rows only, missing sex/age imputed with the training mode/median (§C.3); the artefact classifier: torch
Adam 1e-4 without weight decay, constant, 30 epochs, batch 16 (§C.6). Departures, each an option and listed in
``DEVIATIONS`` (``papers.multimodal.deviations``): the split is grouped by lesion and patient (`split_by="image"`
is the code's stratified, non-grouped 80/20, which leaks patients), `n_images` / `image_size` are off (they encode
acquisition, not the patient); the schedule is stepped once per epoch as the code does (``schedule_stepping``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lesionkit.attribution import explain_rows
from lesionkit.attribution.figures import plot_store_grid
from lesionkit.config import ConfigError, param, param_like
from lesionkit.data.loaders import meta_dls
from lesionkit.data.metadata import MetaEncoder
from lesionkit.data.metadata_values import bad_metadata_policy
from lesionkit.data.splits import Splits
from lesionkit.data.splits import make_splits as split_rows
from lesionkit.data.table import require_two_classes
from lesionkit.engine import Schedule, Variant, adam, predict_learner, run_folds, score, train_variant
from lesionkit.engine.evaluation import Evaluation, evaluate_models
from lesionkit.engine.schedules import STEPPINGS
from lesionkit.losses import MultiHeadCrossEntropy
from lesionkit.metrics import fastai_metrics, fold_summary, write_predictions
from lesionkit.models import create_model, model_spec
from lesionkit.papers.common import (
    TrainConfig,
    lesion_subsample,
    load_external,
    model_norm,
    record_summary,
    resolve_data_dir,
    save_models,
    split,
)
from lesionkit.papers.compare.figures import plot_roc_pair as plot
from lesionkit.papers.multimodal.artefacts import (
    artefact_dls,
    artefact_targets,
    artefact_test_dl,
    head_accuracy,
    head_accuracy_table,
)
from lesionkit.papers.multimodal.deviations import DEVIATIONS
from lesionkit.papers.multimodal.melanoma import load_melanoma, split_table, to_melanoma
from lesionkit.papers.multimodal.melanoma import metadata_preview as preview
from lesionkit.records.runs import Run

SCHEDULES = ("warmup_cosine", "one_cycle", "flat_cos", "constant")
WARMUP = 10.0  # §A.7: GradualWarmupScheduler(multiplier=10, total_epoch=1)
MODELS = {"image": "image only", "meta": "image + metadata"}  # variant key -> table label
METRICS = ("auc", "ap", "pauc80", "sensitivity", "specificity", "accuracy", "f1_weighted", "spec_at_sens95")


@dataclass(frozen=True)
class MultimodalConfig(TrainConfig):
    notebook: ClassVar[str] = "multimodal"
    paper: ClassVar[str] = "multimodal"
    headline: ClassVar[str] = "meta"
    renamed: ClassVar[dict[str, str]] = {"split": "split_by"}  # split=patient/image was this notebook's split_by

    data_dir: str = param_like(TrainConfig, "data_dir", "dataset folder (ISIC 2020 layout), or 'synthetic' (the "
                                                        "embedded default) / 'synthetic-null' (same images without "
                                                        "class signal: the sanity control)")
    test_dir: str = param_like(TrainConfig, "test_dir", "optional external test set folder (scored with the fold-0 "
                                                        "models)")
    valid_frac: float = param_like(TrainConfig, "valid_frac", "share of patients used for model selection (one fold; "
                                                              "unused with the image split)")
    test_frac: float = param_like(TrainConfig, "test_frac", "share of patients held out for the final test "
                                                            "(image split: of images)")
    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (64 px, 1 epoch, ~160 images, Lite0) to check the "
                                                   "pipeline")
    backbone: str = param("tf_efficientnet_b2.aa_in1k", "timm EfficientNet for both models (paper: "
                          "efficientnet_pytorch's B2 with TF's ImageNet weights; timm's closest is this tag; untagged "
                          "tf_efficientnet_b2 loads Noisy Student weights)")
    pretrained: bool | str = param(True, "ImageNet weights of the backbone (the paper: B2's): true (installed for "
                                         "lite0/lite2; others from the Hugging Face cache, else download), false, "
                                         "or a local weight file")
    image_size: int = param(256, "training resolution in pixels (paper: 256)", ge=32, le=1024)
    epochs: int = param(20, "epochs per model (paper: 20)", ge=1, le=10_000)
    batch_size: int = param(64, "images per batch (paper: 64)", ge=2, le=4096)
    lr: float = param(3e-4, "peak learning rate of the schedule (torch Adam, no weight decay; the paper's "
                            "warmup_cosine rises from its --init-lr 3e-5 to 10x that, 3e-4)", ge=1e-7, le=10.0)
    schedule: str = param("warmup_cosine", "lr schedule: warmup_cosine (the paper's warm-up from lr/10 over one "
                                           "epoch, then cosine), "
                          + ", ".join(s for s in SCHEDULES if s != "warmup_cosine"),
                          choices=SCHEDULES)
    schedule_stepping: str = param("epoch", "how often the schedule moves: epoch (the code: once per epoch, epoch 1 "
                                            "at lr/10, epoch 2 at lr; smoke runs: batch) or batch (every batch, "
                                            "warmup_cosine reaches 0)",
                                   choices=STEPPINGS)
    split: str = param("grouped", "split rule: grouped (by lesion and patient, from seed; what this notebook has "
                                  "always done) or official (ISIC 2020's tfrecord folds, patient-grouped)",
                       choices=("official", "grouped"))
    split_by: str = param("patient", "patient: grouped by lesion and patient (default); image: the code's "
                                     "stratified 80/20 by image (leaks patients)", choices=("patient", "image"))
    folds: int = param(1, "1: one train/valid/test split; k > 1: k grouped folds of the non-test rows, every fold "
                          "model and their ensemble scored on the same test set", ge=1, le=20)
    preset: str = param("first_place", "augmentation preset: first_place (the paper), fastai or none",
                        choices=("first_place", "fastai", "none"))
    meta_missing: str = param("impute", "missing sex/age: impute (the code, §C.3: modal sex, median age of the "
                                        "training rows) or first_place (the constants -1 / 0)",
                              choices=("impute", "first_place"))
    use_n_images: bool = param(False, "add log1p(images per patient) (1st place; leaks acquisition)")
    use_image_size: bool = param(False, "add ln(JPEG bytes) (1st place; depends on the encoder)")
    backbone_drop_rate: float = param(0.3, "dropout on pooled image features (code: 0.3; 1st place: 0)", ge=0, le=0.9)
    drop_path_rate: float = param(0.2, "drop-connect (stochastic depth) in the backbone's blocks, rising to this "
                                       "rate: efficientnet_pytorch's 0.2, which the code trains with (1st place: 0)",
                                  ge=0, le=0.9)
    tta: bool = param(True, "8-view flip/transpose TTA at test time (1st place; the multimodal code has none)")
    artefacts: bool = param(True, "train the six-head artefact/bias classifier (needs artefact labels)")
    artefact_epochs: int = param(30, "artefact classifier epochs (paper: 30)", ge=1, le=10_000)
    artefact_keep: str = param("last", "artefact classifier weights kept: last (the code: the final epoch) or best "
                                       "(lowest validation loss)", choices=("last", "best"))
    artefact_lr: float = param(1e-4, "peak learning rate of the artefact classifier's schedule (torch Adam, no "
                                     "weight decay, constant; paper: 1e-4)",
                               ge=1e-7, le=10.0)
    artefact_batch_size: int = param(16, "artefact classifier batch size (paper: 16)", ge=2, le=4096)
    attribution: bool = param(True, "attribution maps of the image+metadata model on test images")
    attribution_methods: str = param("integrated_gradients,gradcam++", "comma-separated lesionkit.attribution "
                                                                       "methods")
    n_attribution: int = param(8, "test images to explain", ge=1, le=256)
    max_images: int = param(0, "use at most this many images (whole patients, stratified); 0: all", ge=0)

    def validate(self) -> None:
        super().validate()
        if self.split_by == "image" and self.split == "official":
            raise ConfigError("split_by='image' is the code's stratified 80/20 by image, not a rule over official "
                              "folds: leave split='grouped' with it")

    def effective(self, **overrides: Any) -> "MultimodalConfig":
        """Smoke: 1 epoch at 64 px on ~160 images, Lite0 (offline weights), no TTA, a few attribution images, the
        schedule stepped per batch."""
        if not self.smoke:
            return self
        small = {"epochs": 1, "artefact_epochs": 1, "image_size": min(self.image_size, 64),
                 "batch_size": min(self.batch_size, 16), "artefact_batch_size": min(self.artefact_batch_size, 16),
                 "backbone": "tf_efficientnet_lite0", "pretrained": True, "folds": 1, "tta": False,
                 "n_attribution": min(self.n_attribution, 2), "attribution_methods": "gradcam++",
                 "max_images": self.max_images or 160,
                 "schedule_stepping": "batch"}  # one epoch stepped per epoch would all run at lr/10
        return super().effective(**{**small, **overrides})  # type: ignore[return-value]


# --- data ------------------------------------------------------------------------------------------------------------
def load_data(cfg: MultimodalConfig) -> Any:
    """Melanoma vs rest from `cfg.data_dir` (ISIC 2020 site names); `max_images`: whole patients, stratified."""
    with bad_metadata_policy(cfg.bad_metadata):
        ds = load_melanoma(resolve_data_dir(cfg.data_dir), cfg.data_format)
    require_two_classes(ds, f"data_dir {cfg.data_dir}")
    if cfg.max_images and len(ds) > cfg.max_images:
        patients = ds.df.assign(lesion_id=ds.df["patient_id"].fillna(ds.df["lesion_id"]))
        ds = ds.subset(lesion_subsample(patients, cfg.max_images, cfg.seed))
    return ds


def make_splits(ds: Any, cfg: MultimodalConfig, run: Run) -> Any:
    """The run's split (splits.csv): grouped by lesion and patient with `cfg.folds` folds (`common.split`), or with
    `split_by="image"` the code's stratified 80/20 by image (no groups, no `split_from`) whose validation is the test
    set (it selects and reports on the same 20 %)."""
    if cfg.split_by == "patient":
        return split(ds, cfg, run, folds=cfg.folds)
    test = split_rows(ds.df, test_frac=cfg.test_frac, seed=cfg.seed, group_col=()).test
    splits = Splits(test=test, folds=[(np.setdiff1d(np.arange(len(ds)), test), test)])
    run.save_split(ds, splits)
    return splits


def meta_encoder(ds: Any, splits: Any, cfg: MultimodalConfig) -> Any:
    """The 1st place's encoding fitted on the rows the folds train on (never a test row; one fold: its training
    rows), so both models and every fold share one n_meta."""
    train = np.unique(np.concatenate([tr for tr, _ in splits.folds]))
    return MetaEncoder(use_n_images=cfg.use_n_images, use_image_size=cfg.use_image_size,
                       missing=cfg.meta_missing).fit(ds.df.iloc[train])


def metadata_preview(ds: Any, splits: Any, cfg: MultimodalConfig, n: int = 6) -> pd.DataFrame:
    """The encoded metadata of the first `n` training rows, beside the raw sex / age / site they come from."""
    return preview(ds, splits.folds[0][0][:n], meta_encoder(ds, splits, cfg))


# --- the recipe: image only vs image + metadata ---------------------------------------------------------------------
def variant(ds: Any, splits: Any, cfg: MultimodalConfig, use_meta: bool, encoder: Any = None) -> Any:
    """One model of the comparison (§C.4-C.5): torch Adam (β 0.9/0.999, eps 1e-8, no weight decay), one warm-up
    epoch from lr/10 to the peak `lr` then cosine (stepped once per epoch as the code; `schedule_stepping="batch"`:
    every batch, to 0), best validation AUC kept, 8 views at test (§A.8).
    ``encoder``: a fitted metadata encoder (a saved run's) instead of one fitted on the split's training rows."""
    enc, key = encoder or meta_encoder(ds, splits, cfg), "meta" if use_meta else "image"
    name = "multimodal_b2" if use_meta else "multimodal_b2_image"
    kw = dict(backbone=cfg.backbone, num_classes=2, n_meta=enc.n_features if use_meta else 0,
              backbone_drop_rate=cfg.backbone_drop_rate, drop_path_rate=cfg.drop_path_rate)
    norm = model_norm(create_model(name, **kw))
    y = ds.df["label_idx"].to_numpy()
    both = splits is None or all(len(np.unique(y[va])) == 2 for _, va in splits.folds)
    return Variant(key=key, label=MODELS[key],
                   model=lambda: create_model(name, pretrained=cfg.pretrained, **kw),  # image only: ignores meta
                   dls=lambda tr, va: meta_dls(ds, tr, va, size=cfg.image_size, bs=cfg.batch_size,
                                               preset=cfg.preset, seed=cfg.seed, num_workers=cfg.num_workers,
                                               norm=norm, encoder=enc, leak_check=cfg.split_by == "patient"),
                   optimizer=adam(weight_decay=0.0),
                   schedule=Schedule(cfg.schedule, warmup_epochs=1.0, warmup_factor=WARMUP,
                                     stepping=cfg.schedule_stepping),
                   epochs=cfg.epochs, lr=cfg.lr,
                   monitor="auc" if both else "valid_loss", metrics=fastai_metrics("binary", 2),
                   views="dihedral8" if cfg.tta else "none", average="probs")


def variants(ds: Any, splits: Any, cfg: MultimodalConfig, encoder: Any = None) -> list[Any]:
    return [variant(ds, splits, cfg, use_meta=False, encoder=encoder),
            variant(ds, splits, cfg, use_meta=True, encoder=encoder)]


def train(ds: Any, splits: Any, cfg: MultimodalConfig, run: Run) -> Any:
    """Both models on every fold (`engine.run_folds`: resumable, scored on the test rows, folds.csv; with folds > 1
    also the fold ensemble); the fold-0 weights and the metadata encoder go to the run record."""
    res = run_folds(run, ds, splits, variants(ds, splits, cfg), report=lambda y, p: score(y, p, ds.classes),
                    seed=cfg.seed, ensemble=True, settings=cfg.engine_settings())
    encoders = {key: learn.dls.meta_encoder for key, learn in res.learners.items()}
    save_models(run, res.learners, spec=lambda key: {"classes": ds.classes,
                                                     "meta_features": encoders[key].feature_names})
    list(encoders.values())[-1].save(run.dir / "meta_encoder.json")
    return res


def evaluate(ds: Any, splits: Any, res: Any, run: Run) -> pd.DataFrame:
    """One row per model: test scores of its model (folds > 1: of the fold ensemble, mean probabilities as §A.8),
    the AUC's fold mean ± std (ddof 0), counts; test predictions also in the ISIC 2020 format (image_name,target)."""
    per_fold = res.table[pd.to_numeric(res.table["fold"], errors="coerce").notna()]
    spread = fold_summary(per_fold, metrics=["auc"]).set_index("model")
    rows = []
    for key, label in MODELS.items():
        final = res.table[res.table["model"] == label].iloc[-1]  # the ensemble row, or the only fold's
        write_predictions(run.dir / "predictions", ds.df["image_id"].iloc[splits.test].tolist(),
                          np.mean(res.probs[key], axis=0), ds.classes, y_true=res.y, fmt="isic2020",
                          stem=f"test_{key}")
        rows.append({"model": label, **{m: float(final[m]) for m in METRICS},
                     "auc_fold_mean": spread.loc[label, "auc_mean"], "auc_fold_std": spread.loc[label, "auc_std"],
                     "n_test": len(splits.test), "n_melanoma": int(res.y.sum()),
                     "train_seconds": float(per_fold.loc[per_fold["model"] == label, "seconds"].sum())})
        run.log_metrics({f"test_{key}": rows[-1]})
    table = pd.DataFrame(rows)
    run.save_table(table, "metadata_comparison.csv")
    return table


def load_external_set(cfg: MultimodalConfig, ds: Any) -> Any:
    """`cfg.test_dir` as a melanoma-vs-rest set with the training classes (`common.load_external`: an official
    download's held-out part, every other class scored as the rest) and ISIC 2020 site names where it has them."""
    ext = load_external(cfg, list(ds.classes), positive=ds.classes[1])
    if ext is not None and "anatom_site_general_challenge" in ext.df.columns:  # as load_melanoma: the sites the encoder learnt
        ext.df["site"] = ext.df["anatom_site_general_challenge"]
    return ext


def evaluation(ds: Any, cfg: MultimodalConfig, encoder: Any) -> Evaluation:
    """How both models are scored (``lesionkit.engine.evaluation``): fold 0, metadata encoded by the training
    ``encoder``, the same views, AUC and AP of P(melanoma)."""
    return Evaluation(variants(ds, None, cfg, encoder=encoder), report=lambda y, p: score(y, p, ds.classes, None))


def evaluate_external(ds: Any, splits: Any, res: Any, cfg: MultimodalConfig, run: Run) -> pd.DataFrame | None:
    """Both fold-0 models on the external `test_dir` (`load_external_set`; metadata encoded with the training
    encoder, same views); predictions and reports saved as external_<model>. None without test_dir."""
    ext = load_external_set(cfg, ds)
    if ext is None:
        return None
    encoder = next(iter(res.learners.values())).dls.meta_encoder
    reports = evaluate_models(run, evaluation(ext, cfg, encoder), {k: [learn] for k, learn in res.learners.items()},
                              ext).by_label()
    n_mel = int((ext.df["label_idx"] == 1).sum())
    return pd.DataFrame([{"model": label, "images": len(ext), "melanomas": n_mel, "auc": r["auc"], "ap": r["ap"]}
                         for label, r in reports.items()])


def plot_roc_pair(res: Any) -> Any:
    """ROC curves of both models on the test rows (the probabilities `evaluate` scored)."""
    return plot(res.y, {label: np.mean(res.probs[key], axis=0)[:, 1] for key, label in MODELS.items()})


# --- artefact / bias classifier (§C.6) ------------------------------------------------------------------------------
def artefact_variant(ds: Any, targets: pd.DataFrame, cfg: MultimodalConfig) -> Any:
    """The six-head recipe: sum of per-head cross-entropies, torch Adam (no weight decay) at a constant
    `artefact_lr`, the code's [-1, 1] scaling without augmentation; the last epoch's weights are kept, as the code
    keeps them (``artefact_keep="best"``: the lowest validation loss)."""
    return Variant(key="artefacts", label="artefact heads",
                   model=lambda: create_model("artefact_b2", pretrained=cfg.pretrained, backbone=cfg.backbone,
                                              drop_path_rate=cfg.drop_path_rate),
                   dls=lambda tr, va: artefact_dls(ds, targets, tr, va, cfg.image_size, cfg.artefact_batch_size,
                                                   cfg.seed, cfg.num_workers),
                   optimizer=adam(weight_decay=0.0), schedule=Schedule("constant"), epochs=cfg.artefact_epochs,
                   lr=cfg.artefact_lr, monitor="valid_loss", loss=lambda tr: MultiHeadCrossEntropy(),
                   metrics=[head_accuracy], keep=cfg.artefact_keep)


def train_artefacts(ds: Any, splits: Any, cfg: MultimodalConfig, run: Run) -> dict[str, Any] | None:
    """Train the six heads on fold 0's training rows (`engine.train_variant`) and score every head on the test rows.
    None, with a printed reason, without artefact labels."""
    targets = artefact_targets(ds.df)
    if targets is None:
        print(f"{ds.name}: no artefact labels (hair/black_frame/ruler/bubbles or the six head columns): the "
              "artefact classifier is skipped. The paper's annotation file (gans_biases.csv) was never published.")
        return None
    v, (tr, va) = artefact_variant(ds, targets, cfg), splits.folds[0]
    learn = train_variant(run, v, tr, va, cfg.seed, settings=cfg.engine_settings())
    probs, y = predict_learner(learn, artefact_test_dl(learn.dls, ds, targets, splits.test), n_inp=1)
    table = head_accuracy_table(y, probs.argmax(-1), list(targets.columns))
    run.save_table(table, "artefact_heads.csv")
    save_models(run, {"artefacts": learn}, spec=lambda _: {"heads": list(targets.columns)})
    run.log_metrics({"artefacts": {"mean_accuracy": float(table["accuracy"].mean()),
                                   "per_head": table.set_index("head")["accuracy"].to_dict()}})
    return {"table": table, "learn": learn}


# --- attribution, summary ------------------------------------------------------------------------------------------
def explain(ds: Any, splits: Any, res: Any, cfg: MultimodalConfig, run: Run) -> Any:
    """Maps of the image + metadata model (fold 0) for the first test images (metadata passed along, not
    attributed), stored with the run for the viewer; returns the static grid figure."""
    learn, idx = res.learners["meta"], splits.test[: cfg.n_attribution]
    store = explain_rows(learn.model, ds, idx, cfg.methods, run.dir, dls=learn.dls,
                         model_name=model_spec(learn.model)["name"])
    fig = plot_store_grid(store)
    run.save_figure(fig, "attribution_grid")
    return fig


def summarize(table: pd.DataFrame, artefacts: dict[str, Any] | None, cfg: MultimodalConfig, ds: Any,
              run: Run) -> dict[str, Any]:
    """The headline numbers (metrics.json "summary", what the demo prints) and this run beside the 1st-place AUCs
    the multimodal paper builds on (it reports none itself, §C.7), saved as comparison.csv."""
    meta, image = table.set_index("model").loc[MODELS[cfg.headline]], table.set_index("model").loc[MODELS["image"]]
    summary = {"auc_meta": float(meta["auc"]), "auc_image": float(image["auc"])}
    summary["auc_gain"] = summary["auc_meta"] - summary["auc_image"]
    ours = {**{k: meta[k] for k in ("auc", "ap", "f1_weighted", "accuracy", "spec_at_sens95")},
            "image_only/auc": image["auc"], "metadata_gain/auc": summary["auc_gain"]}
    if artefacts is not None:
        summary["artefact_acc"] = ours["artefacts/mean_head_accuracy"] = float(artefacts["table"]["accuracy"].mean())
    how = f"{cfg.folds}-fold ensemble" if cfg.folds > 1 else "holdout"
    return record_summary(run, cfg, summary, ours, f"{ds.name} ({len(ds)} images, {int(ds.df['label_idx'].sum())} "
                                                   f"melanomas), {cfg.backbone} {cfg.image_size} px, {cfg.epochs} "
                                                   f"epochs, {how}")


__all__ = ["DEVIATIONS", "MultimodalConfig", "load_data", "to_melanoma", "make_splits", "split_table", "meta_encoder",
           "metadata_preview", "variant", "variants", "train", "evaluate", "load_external_set", "evaluation", "evaluate_external",
           "plot_roc_pair", "artefact_variant", "train_artefacts", "explain", "summarize"]
