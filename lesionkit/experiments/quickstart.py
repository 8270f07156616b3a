"""00_quickstart: a timm classifier trained with fastai on a grouped split, scored like the ISIC challenge."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import param, param_like
from ..runs import Run, start_notebook_run
from .common import TrainConfig, evaluate, evaluate_external, holdout_splits, load_data, model_norm

NOTEBOOK = "00_quickstart"


@dataclass(frozen=True)
class QuickstartConfig(TrainConfig):
    pretrained: bool | str = param_like(TrainConfig, "pretrained", "true, false, or a path to a local weight file "
                                                                   "(ImageNet Lite0 weights ship offline)")
    arch: str = param("tf_efficientnet_lite0", "timm or lesionkit model name (lesionkit.list_models())")
    schedule: str = param("one_cycle", "learning-rate schedule: one_cycle, flat_cos or constant",
                          choices=("one_cycle", "flat_cos", "constant"))
    tta: bool = param(True, "average test predictions over flips")
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)


def start(namespace: dict[str, Any]) -> Run:
    """The config cell: validate the notebook's parameters and open its run record."""
    return start_notebook_run(NOTEBOOK, QuickstartConfig, namespace)


def build_learner(ds: Any, splits: dict, cfg: QuickstartConfig, run: Run) -> Any:
    """Model from the registry (offline weights), DataLoaders normalised for it, a Learner writing to `run`."""
    from ..data.loaders import image_dls
    from ..metrics import fastai_metrics
    from ..models import create_model
    from ..train import make_learner

    model = create_model(cfg.arch, pretrained=cfg.pretrained, num_classes=ds.n_classes)
    dls = image_dls(ds, splits["train"], splits["valid"], size=cfg.image_size, bs=cfg.batch_size,
                    seed=cfg.seed, num_workers=cfg.num_workers, norm=model_norm(model))
    metrics = fastai_metrics(ds.task, ds.n_classes)
    monitor = "auc" if ds.task == "binary" else "bma"
    learn = make_learner(dls, model, run, metrics=metrics, monitor=monitor)
    run.info["model_spec"] = {"name": cfg.arch, "num_classes": ds.n_classes, "classes": ds.classes}
    return learn


def train(learn: Any, cfg: QuickstartConfig, run: Run) -> Any:
    from ..train import drop_checkpoints, fit

    fit(learn, cfg.epochs, cfg.lr, schedule=cfg.schedule)
    run.save_model(learn.model, spec=run.info["model_spec"])
    drop_checkpoints(learn)
    return learn


__all__ = ["QuickstartConfig", "start", "load_data", "holdout_splits", "build_learner", "train", "evaluate", "evaluate_external"]
