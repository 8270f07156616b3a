"""What every paper notebook shares: the common parameters and the steps data → split → model → train → evaluate.

Notebooks call these one by one (so each step can be shown and explained); nothing here is specific to a paper.
Every config cell, `papermill --help-notebook` and each run record import this module for TrainConfig, so it loads
no torch, fastai or timm: each step imports what it uses when it runs (the `# lazy` imports below).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from lesionkit.config import Config, ConfigError, param
from lesionkit.papers.dataset_params import DATASET_PARAMS, dataset_param_problem

if TYPE_CHECKING:
    from lesionkit.engine.settings import EngineSettings

SYNTHETIC_SOURCES = ("synthetic", "synthetic-null")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Parameters every training notebook has (MONAI's rule: each has `epochs` and `smoke`)."""

    notebook: ClassVar[str] = ""  # notebooks/<notebook>.ipynb, and runs/<notebook>/: the one place it is named
    paper: ClassVar[str] = ""  # the paper's key in lesionkit.papers.reported (empty: no published numbers)
    headline: ClassVar[str] = ""  # the variant key of the model the summary leads with, saved as model.pth
    valid_frac_of_rest: ClassVar[bool] = False  # valid_frac is a share of the non-test rows, not of all rows
    cell_last: ClassVar[tuple[str, ...]] = ("seed", "speedups", "num_workers", "num_processes", "sync_bn", "torch_compile",
                                            "smoke", "interactive", "run_name", "resume",
                                            "split_from")

    data_dir: str = param("synthetic", "dataset folder, or 'synthetic' (the embedded default) / 'synthetic-null' "
                                       "(same images without class signal: the sanity control)")
    data_format: str = param("auto", "dataset layout: auto (detected from the folder's files) or a reader name")
    test_dir: str = param("", "optional external test set folder (empty: hold out lesions of data_dir)")
    bad_metadata: str = param("raise", "impossible ages or unknown sexes in the table: raise (name the rows) or "
                                       "missing (treat them as not recorded)", choices=("raise", "missing"))
    image_size: int = param(128, "training resolution in pixels", ge=32, le=1024)
    epochs: int = param(5, "training epochs", ge=1, le=10_000)
    batch_size: int = param(32, "images per batch", ge=1, le=4096)
    lr: float = param(2e-3, "peak learning rate", ge=1e-7, le=10.0)
    pretrained: bool | str = param(True, "true, false, or a path to a local weight file")
    split: str = param("official", "split rule: official (the dataset's own train/valid/test parts or folds where "
                                    "it has them: ISIC 2017/2018/2019 parts, derm7pt, ISIC 2020 tfrecord folds; else "
                                    "grouped, with a warning) or grouped (by lesion and patient, from seed)",
                       choices=("official", "grouped"))
    valid_frac: float = param(0.15, "share of lesions used for model selection", ge=0.05, le=0.5)
    test_frac: float = param(0.2, "share of lesions held out for the final test", ge=0.05, le=0.5)
    seed: int = param(0, "random seed for splits, sampling and initialisation", ge=0)
    speedups: str = param("auto", "precision and memory format: auto (on a CPU each candidate is timed on the "
                                  "first batch and the fastest kept; on a GPU channels-last and mixed precision), "
                                  "off (fp32), channels_last, bf16 or both",
                          choices=("auto", "off", "channels_last", "bf16", "both"))
    num_workers: int = param(-1, "DataLoader worker processes: -1 auto (none on CPU; up to 8 per process on a GPU, "
                                 "with pinned memory), 0 load in the main process", ge=-1, le=64)
    torch_compile: bool = param(False, "torch.compile the model before training (GPU only; the first epoch pays the "
                                 "compilation)")
    num_processes: int = param(1, "data-parallel training processes started from this notebook (Accelerate's "
                                  "launcher: one per GPU; gloo on CPU); batch_size stays the global batch. Under "
                                  "torchrun or accelerate launch the launcher's count applies", ge=1, le=64)
    sync_bn: bool = param(False, "SyncBatchNorm across processes (GPU only; default: per-process BatchNorm "
                                 "statistics)")
    smoke: bool = param(False, "tiny run (few images, 1 epoch, small size) to check the pipeline")
    interactive: bool | str = param("auto", "ipywidgets viewers and progress bars: auto (on in a live Jupyter kernel, "
                                            "off under papermill), true or false")
    run_name: str = param("", "optional label appended to the run folder's name")
    resume: str = param("", "continue an interrupted or failed run: its run folder, or 'last' (the newest run of this "
                            "notebook); empty: a new run")
    split_from: str = param("", "reuse the train/valid/test split recorded by an earlier run (its run folder); empty: "
                                "make the split from seed")

    def validate(self) -> None:
        for name in DATASET_PARAMS:
            if hasattr(self, name):
                problem = dataset_param_problem(name, getattr(self, name), SYNTHETIC_SOURCES, self.bad_metadata)
                if problem:
                    raise ConfigError(problem)
        if self.split_from and not (Path(self.split_from).expanduser() / "splits.csv").is_file():
            raise ConfigError(f"split_from={self.split_from!r}: no splits.csv there; give the folder of a run that "
                              "recorded its split, or leave it empty")
        if not self.valid_frac_of_rest and self.valid_frac + self.test_frac >= 1:
            raise ConfigError(f"valid_frac={self.valid_frac} and test_frac={self.test_frac} leave no lesions to train "
                              "on (together they must stay under 1, e.g. valid_frac 0.15 and test_frac 0.2)")
        if self.sync_bn and not torch_cuda():
            raise ConfigError("sync_bn=true needs GPUs (torch's SyncBatchNorm has no CPU kernel); leave it false")
        if isinstance(self.interactive, str) and self.interactive.strip().lower() != "auto":
            raise ConfigError(f"interactive={self.interactive!r}: give true, false or auto")
        if isinstance(self.pretrained, str) and not Path(self.pretrained).expanduser().is_file():
            raise ConfigError(f"pretrained={self.pretrained!r} is neither true/false nor an existing weight file")
        if hasattr(self, "attribution_methods"):
            from lesionkit.attribution import canonical_method  # lazy

            try:
                [canonical_method(m) for m in self.methods]
            except ValueError as err:
                raise ConfigError(f"attribution_methods={self.attribution_methods!r}: {err}") from None

    @property
    def is_interactive(self) -> bool:
        """`interactive` resolved: "auto" is on in a live Jupyter kernel, off under papermill or in a script."""
        if isinstance(self.interactive, bool):
            return self.interactive
        from lesionkit.utils.kernel import in_live_kernel  # lazy

        return bool(in_live_kernel())

    @property
    def methods(self) -> list[str]:
        """The comma-separated `attribution_methods` parameter (in configs that have one) as a list."""
        return [m.strip() for m in str(getattr(self, "attribution_methods", "")).split(",") if m.strip()]

    def engine_settings(self) -> EngineSettings:
        """The hardware settings the engine is given explicitly (it never reads this config)."""
        from lesionkit.engine.settings import EngineSettings  # lazy

        return EngineSettings(speedups=self.speedups, torch_compile=self.torch_compile, sync_bn=self.sync_bn,
                              num_processes=self.num_processes)

    def effective(self, **smoke_overrides: Any) -> "TrainConfig":
        """The config actually run: with `smoke`, sizes and epochs shrink to the given overrides."""
        if not self.smoke:
            return self
        import dataclasses

        defaults = {"epochs": 1, "image_size": min(self.image_size, 64), "batch_size": min(self.batch_size, 16)}
        return dataclasses.replace(self, **{**defaults, **smoke_overrides})


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_data_dir(source: str, size: int = 224) -> Path:
    """'synthetic' / 'synthetic-null' → the cached generated set; anything else is a folder path."""
    from lesionkit.data.synthetic import default_synthetic_dir  # lazy

    if source in SYNTHETIC_SOURCES:
        return default_synthetic_dir(signal=source == "synthetic", size=size)
    if not str(source).strip():
        raise ConfigError(f"dataset folder {source!r} is empty: give a folder or one of {list(SYNTHETIC_SOURCES)} "
                          "(an empty path is never read as the working directory)")
    return Path(source).expanduser().resolve()


def load_data(cfg: TrainConfig, max_images: int | None = None):
    """The dataset of `cfg.data_dir`; a class-stratified subset of whole lesions of about `max_images` images (default:
    the config's `max_images` where it has one; with `smoke`, 140)."""
    from lesionkit.data import load_dataset  # lazy
    from lesionkit.data.table import require_two_classes  # lazy

    if max_images is None:
        max_images = getattr(cfg, "max_images", 0) or None
    ds = load_dataset(resolve_data_dir(cfg.data_dir), fmt=cfg.data_format, bad_metadata=cfg.bad_metadata)
    require_two_classes(ds, f"data_dir {cfg.data_dir}")
    if cfg.smoke and max_images is None:
        max_images = 140
    if max_images and len(ds) > max_images:
        ds = ds.subset(lesion_subsample(ds.df, max_images, cfg.seed))
    return ds


def lesion_subsample(df, n: int, seed: int) -> np.ndarray:
    """Positions of whole lesions, sampled per class in proportion, until about `n` images."""
    rng = np.random.default_rng(seed)
    groups = df["lesion_id"].fillna(df["image_id"])
    lesions = df.assign(_g=groups).groupby("_g")["label"].first()
    share = n / len(df)
    keep = []
    for _, ids in lesions.groupby(lesions):
        k = max(2, int(round(len(ids) * share)))
        keep.extend(rng.choice(ids.index.to_numpy(), min(k, len(ids)), replace=False))
    return np.flatnonzero(groups.isin(set(keep)).to_numpy())


def split(ds: Any, cfg: TrainConfig, run: Any, folds: int = 1, valid_frac: float | None = None) -> Any:
    """The run's split (``lesionkit.engine.run_splits``): ``cfg.split_from``'s, else the dataset's official parts
    or folds (``split="official"``, where it has them), else a grouped one from ``cfg.seed``; ``valid_frac`` is a
    share of the rows left after the test hold-out (default: the config's ``valid_frac`` of all rows, rescaled).
    Recorded as splits.csv, and in words as run.json's ``split``. A config whose own ``split`` means something
    else (multimodal's "patient" / "image") gets the grouped rule."""
    from lesionkit.engine import run_splits  # lazy

    if valid_frac is None:
        valid_frac = cfg.valid_frac / (1 - cfg.test_frac)
    rule = "official" if getattr(cfg, "split", "grouped") == "official" else "grouped"
    return run_splits(run, ds, folds=folds, test_frac=cfg.test_frac, valid_frac=valid_frac, seed=cfg.seed,
                      split_from=cfg.split_from, rule=rule)


def model_norm(model: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std a model expects (timm's default_cfg), ImageNet's when it declares none."""
    cfg = getattr(model, "default_cfg", None) or getattr(model, "pretrained_cfg", None) or {}
    return tuple(cfg.get("mean", (0.485, 0.456, 0.406))), tuple(cfg.get("std", (0.229, 0.224, 0.225)))


def evaluate(learn: Any, ds: Any, idx: np.ndarray, run: Any, name: str = "test", tta: bool | str = False,
             figures: bool = True) -> dict[str, Any]:
    """Score rows `idx` like the official scorer, save predictions in the official format and the figures.

    Returns {"report": metrics dict, "probs", "y", "figures": {name: Figure}}; metrics.json gets `report` under `name`.
    """
    from lesionkit.data.loaders import test_dl  # lazy
    from lesionkit.engine import predict_learner, record_evaluation, save_evaluation_figures  # lazy

    probs, y = predict_learner(learn, test_dl(learn.dls, ds, idx, with_labels=True), views=tta)
    report = record_evaluation(run, name, ds, idx, probs, y, figures=False)
    figs = save_evaluation_figures(run, name, y, probs, ds.classes) if figures else {}
    return {"report": report, "probs": probs, "y": y, "figures": figs}


def load_external(cfg: TrainConfig, classes: list[str], positive: str | None = None) -> Any:
    """The optional external test set (`cfg.test_dir`) with the training classes' names and indices; None when not
    given. An ISIC 2017 / 2018 / 2019 download is scored on its most held-out official part only
    (`readers.evaluation_parts`), a layout with an official split column (derm7pt, class folders under test/) on its
    test rows; its classes map onto the training ones by name or synonym (MEL = mel, AK = akiec), PH2's clinical
    classes onto HAM10000's (common and atypical nevi are nv) unless the model learnt PH2's own, and a class with
    test images the model never saw is refused. A binary model (`positive`: its positive class, `classes` =
    [rest, positive]) scores every external class but the positive one as the rest. Rows get the same validation
    as training data."""
    if not cfg.test_dir:
        return None
    from lesionkit.data import load_dataset  # lazy
    from lesionkit.data.readers import evaluation_parts, resolve_format  # lazy
    from lesionkit.data.readers.ph2 import PH2_TARGETS  # lazy

    path, fmt = resolve_format(Path(cfg.test_dir).expanduser().resolve())
    kw = evaluation_parts(path, fmt)
    if fmt == "ph2" and positive is None and not set(classes) <= set(PH2_TARGETS["diagnosis"][2]):
        kw["target"] = "ham"
    ext = load_dataset(path, fmt=fmt, bad_metadata=cfg.bad_metadata, **kw)
    if (ext.df["split"] == "test").any():  # an official split column (derm7pt, train/test class folders): its test rows
        ext = ext.subset(np.flatnonzero((ext.df["split"] == "test").to_numpy()))
    names = _binary_names(ext, classes, positive, cfg.test_dir) if positive else _class_names(ext, classes,
                                                                                              cfg.test_dir)
    ext.df["label"] = ext.df["label"].map(names)
    ext.df["label_idx"] = ext.df["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    ext.classes = list(classes)
    return ext


def _class_names(ext: Any, classes: list[str], test_dir: str) -> dict[str, str]:
    """External class → training class by name or synonym; ValueError for classes with images the model never saw."""
    from lesionkit.data.tasks import find_class  # lazy

    names, unknown = {}, []
    for c in ext.classes:
        try:
            names[c] = find_class(c, classes)
        except ValueError:
            unknown.append(c)
    present = set(ext.df["label"])
    unknown = [c for c in unknown if c in present]  # a layout's class with no test image is harmless
    if unknown:
        raise ValueError(f"test_dir {test_dir}: classes {unknown} were not in the training data {classes}; "
                         "the model never saw them, so they cannot be scored (drop those rows or map them)")
    return names


def _binary_names(ext: Any, classes: list[str], positive: str, test_dir: str) -> dict[str, str]:
    """External class → classes[1] for the positive class (by name or synonym), classes[0] for every other."""
    from lesionkit.data.tasks import find_class  # lazy

    try:
        own = find_class(positive, ext.classes)
    except ValueError:
        raise ValueError(f"test_dir {test_dir}: no class {positive!r} (or a synonym) among its classes "
                         f"{list(ext.classes)}, so the binary {positive}-vs-rest model cannot be scored there") from None
    return {c: classes[1] if c == own else classes[0] for c in ext.classes}


def score_external(learners: dict[str, Any], variants: Any, ext: Any, run: Any,
                   report: Any) -> dict[str, dict[str, Any]]:
    """Each variant's fold-0 learner on every row of the external set ``ext`` with the variant's own test views:
    ``report(y, probs)`` logged and predictions saved as ``external_<key>``; {variant label: report}."""
    from lesionkit.engine import record_evaluation, test_predictions  # lazy

    rows, out = np.arange(len(ext)), {}
    for v in variants:
        if v.key in learners:
            probs, y = test_predictions(learners[v.key], v, ext, rows)
            out[v.label] = record_evaluation(run, f"external_{v.key}", ext, rows, probs, y, figures=False,
                                             report=report(y, probs))
    return out


def load_external_like(cfg: TrainConfig, ds: Any) -> Any:
    """:func:`load_external` with ``ds``'s classes (a binary task's positive class is its second)."""
    return load_external(cfg, list(ds.classes), positive=ds.classes[1] if ds.task == "binary" else None)


def evaluate_external(learn: Any, cfg: TrainConfig, ds: Any, run: Any, tta: bool | str = False) -> dict[str, Any] | None:
    """Score the optional external test set (`cfg.test_dir`) under the name "external"; None when not given."""
    ext = load_external_like(cfg, ds)
    return None if ext is None else evaluate(learn, ext, np.arange(len(ext)), run, name="external", tta=tta)


# --- the skeleton every notebook ends with ---------------------------------------------------------------------------
def start(config_cls: type[TrainConfig], namespace: dict[str, Any]) -> Any:
    """The config cell of every notebook: validate the parameters cell's values into ``config_cls`` and open the run
    record ``runs/<config_cls.notebook>/<run-id>/`` (or reopen one with ``resume``)."""
    from lesionkit.records.runs import start_notebook_run  # lazy

    return start_notebook_run(config_cls.notebook, config_cls, namespace)


def save_models(run: Any, learners: dict[str, Any], headline: str | None = None, prefix: str = "model",
                spec: Callable[[str], dict[str, Any]] | None = None) -> None:
    """Every model as ``<prefix>_<key>.pth`` + ``.json`` (state_dict and the spec that rebuilds it, never a pickle);
    the ``headline`` key's as ``model.pth``. ``spec(key)``: that model's extra spec entries (classes, norm, ...)."""
    from lesionkit.models import model_spec  # lazy

    for key, learn in learners.items():
        name = "model" if key == headline else f"{prefix}_{key}"
        run.save_model(learn.model, name, spec=model_spec(learn.model, **(spec(key) if spec else {})))


def record_summary(run: Any, cfg: TrainConfig, summary: dict[str, Any], ours: dict[str, float] | None = None,
                   label: str = "", *, model_keys: dict[str, str] | None = None, include_unreported: bool = True,
                   paper_names: dict[str, str] | None = None, **metrics: Any) -> dict[str, Any]:
    """The one ending of every notebook: the headline numbers (metrics.json ``summary``, what the demo prints) and,
    given ``ours``, this run beside the paper's reported numbers (``papers.reported.comparison_table``, measured on
    ``label``) saved as comparison.csv; ``paper_names`` adds the paper's name of each metric; ``metrics``: other
    metrics.json entries. Returns {"summary", "comparison"}."""
    table = None
    if ours is not None:
        from lesionkit.papers.reported import comparison_table  # lazy

        table = comparison_table(cfg.paper, ours, label, model_keys=model_keys, include_unreported=include_unreported)
        if paper_names is not None:
            table.insert(1, "paper_metric", table["metric"].map(paper_names))
        run.save_table(table, "comparison.csv")
    run.log_metrics({"summary": summary, **metrics})
    return {"summary": summary, "comparison": table}
