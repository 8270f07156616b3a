"""00_quickstart: a timm classifier trained with fastai on a grouped split, scored like the ISIC challenge."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from lesionkit.config import param, param_like
from lesionkit.papers.common import TrainConfig, load_data, load_external_like, model_norm, save_models, split
from lesionkit.records.runs import Run


@dataclass(frozen=True)
class QuickstartConfig(TrainConfig):
    notebook: ClassVar[str] = "00_quickstart"
    headline: ClassVar[str] = "model"

    pretrained: bool | str = param_like(TrainConfig, "pretrained", "true, false, or a path to a local weight file "
                                                                   "(ImageNet Lite0 weights ship offline)")
    arch: str = param("tf_efficientnet_lite0", "timm or lesionkit model name (lesionkit.list_models())")
    schedule: str = param("one_cycle", "learning-rate schedule: one_cycle, flat_cos or constant",
                          choices=("one_cycle", "flat_cos", "constant"))
    balance: str = param("loss", "class imbalance: loss (cross-entropy weighted N/(K n_c), every image once per "
                                 "epoch), sampler (each class drawn equally often) or none (plain cross-entropy)",
                         choices=("loss", "sampler", "none"))
    split: str = param("grouped", "split rule: grouped (by lesion and patient, from seed; no paper to follow) or "
                                  "official (the dataset's own parts or folds where it has them)",
                       choices=("official", "grouped"))
    tta: bool = param(True, "average test predictions over flips")
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)


def variant(ds: Any, cfg: QuickstartConfig) -> Any:
    """The recipe: the registry's model (offline weights), loaders normalised for it, fastai's schedule, torch's
    AdamW with its defaults, selection on AUC (binary) or balanced accuracy, and (``balance``) class-weighted
    cross-entropy or class-balanced sampling, since balanced accuracy scores every class alike while HAM10000 is
    two-thirds nevi: plain cross-entropy reaches 0.95-0.98 AUC on the minority classes but 0.40-0.55 sensitivity."""
    from fastai.losses import CrossEntropyLossFlat

    from lesionkit.data.loaders import image_dls  # lazy: QuickstartConfig imports cheaply
    from lesionkit.engine import Schedule, Variant, adamw  # lazy: QuickstartConfig imports cheaply
    from lesionkit.losses import balanced_class_weights  # lazy: QuickstartConfig imports cheaply
    from lesionkit.metrics import fastai_metrics  # lazy: QuickstartConfig imports cheaply
    from lesionkit.models import create_model  # lazy: QuickstartConfig imports cheaply

    def model() -> Any:
        return create_model(cfg.arch, pretrained=cfg.pretrained, num_classes=ds.n_classes)

    norm = model_norm(create_model(cfg.arch, pretrained=False, num_classes=ds.n_classes))
    labels = ds.df["label_idx"].to_numpy()

    def loss(tr: Any) -> Any:
        weight = balanced_class_weights(labels[tr], ds.n_classes) if cfg.balance == "loss" else None
        return CrossEntropyLossFlat(weight=weight)
    return Variant(key=cfg.headline, label=cfg.arch, model=model,
                   dls=lambda tr, va: image_dls(ds, tr, va, size=cfg.image_size, bs=cfg.batch_size, seed=cfg.seed,
                                                num_workers=cfg.num_workers, norm=norm,
                                                balanced=cfg.balance == "sampler"),
                   optimizer=adamw(weight_decay=0.01), schedule=Schedule(cfg.schedule), epochs=cfg.epochs,
                   lr=cfg.lr, monitor="auc" if ds.task == "binary" else "bma", loss=loss,
                   metrics=fastai_metrics(ds.task, ds.n_classes), views="flips4" if cfg.tta else "none")


def train(ds: Any, splits: Any, cfg: QuickstartConfig, run: Run) -> Any:
    """Train the recipe on the split's train/valid rows (resumable), save model.pth + model.json; the Learner."""
    from lesionkit.engine import train_variant  # lazy: QuickstartConfig imports cheaply

    v = variant(ds, cfg)
    tr, va = splits.folds[0]
    learn = train_variant(run, v, tr, va, cfg.seed, settings=cfg.engine_settings())
    save_models(run, {v.key: learn}, cfg.headline, spec=lambda _: {"classes": ds.classes})
    return learn


def evaluation(ds: Any, cfg: QuickstartConfig) -> Any:
    """How the model is scored (``lesionkit.engine.evaluation``): its own test views, the score command's report."""
    from lesionkit.engine import score  # lazy: QuickstartConfig imports cheaply
    from lesionkit.engine.evaluation import Evaluation  # lazy: QuickstartConfig imports cheaply

    return Evaluation([variant(ds, cfg)], report=lambda y, p: score(y, p, ds.classes))


def evaluate(learn: Any, ds: Any, rows: Any, cfg: QuickstartConfig, run: Run, name: str = "test") -> dict[str, Any]:
    """Score rows ``rows`` like the official scorer: predictions in the official format, the report under ``name``
    in metrics.json, confusion matrix and ROC figures. {"report", "probs", "y", "figures"}."""
    from lesionkit.engine.evaluation import evaluate_models  # lazy: QuickstartConfig imports cheaply

    scores = evaluate_models(run, evaluation(ds, cfg), {cfg.headline: [learn]}, ds, rows, name=name, figures=True,
                             key_in_name=False)
    return {"report": scores.reports[name], "probs": scores.probs[name], "y": scores.y, "figures": scores.figures}


def evaluate_external(learn: Any, ds: Any, cfg: QuickstartConfig, run: Run) -> dict[str, Any] | None:
    """The optional external test set (``test_dir``: its held-out part, classes mapped onto the model's) scored the
    same way under the name "external"; None when not given."""
    ext = load_external_like(cfg, ds)
    return None if ext is None else evaluate(learn, ext, None, cfg, run, name="external")


__all__ = ["QuickstartConfig", "load_data", "split", "variant", "train", "evaluate", "evaluate_external"]
