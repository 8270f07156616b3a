"""What every paper notebook shares: the common parameters and the steps data → split → model → train → evaluate.

Notebooks call these one by one (so each step can be shown and explained); nothing here is specific to a paper.
Every config cell, `papermill --help-notebook` and each run record import this module for TrainConfig, so it loads
no torch, fastai or timm: each step imports what it uses when it runs (the `# lazy` imports below).
"""
from __future__ import annotations

import dataclasses
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
    cell_first: ClassVar[tuple[str, ...]] = ("smoke",)  # the first thing to try: a tiny run that works anywhere
    valid_frac_of_rest: ClassVar[bool] = False  # valid_frac is a share of the non-test rows, not of all rows
    cell_last: ClassVar[tuple[str, ...]] = ("seed", "deterministic", "speedups", "num_workers", "num_processes",
                                            "sync_bn", "torch_compile", "interactive", "run_name", "resume",
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
    lr: float = param(2e-3, "peak learning rate of the schedule", ge=1e-7, le=10.0)
    pretrained: bool | str = param(True, "true, false, or a path to a local weight file")
    split: str = param("official", "split rule: official (the dataset's own train/valid/test parts or folds where "
                                    "it has them: ISIC 2017/2018/2019 parts, derm7pt, ISIC 2020 tfrecord folds; else "
                                    "grouped, with a warning) or grouped (by lesion and patient, from seed)",
                       choices=("official", "grouped"))
    valid_frac: float = param(0.15, "share of lesions used for model selection", ge=0.05, le=0.5)
    test_frac: float = param(0.2, "share of lesions held out for the final test", ge=0.05, le=0.5)
    seed: int = param(0, "random seed for splits, sampling and initialisation", ge=0)
    deterministic: bool = param(False, "GPU only: deterministic algorithms, so the same seed repeats a run exactly "
                                       "(slower); false: cuDNN benchmark picks the fastest kernels. CPU runs repeat "
                                       "either way")
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
                if problem and name == "data_dir":
                    problem += '.\nQuickest way on: data_dir = "synthetic" (the embedded synthetic set)'
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

    def weights_needed(self) -> dict[str, tuple[str, str]]:
        """The timm architectures whose ImageNet weights these settings load: {arch: (its pretrained parameter, the
        parameter that names the arch)}. Default: the backbone named by a `backbone` or `arch` field when
        `pretrained` is true."""
        chooser = next((n for n in ("backbone", "arch") if hasattr(self, n)), None)
        return {getattr(self, chooser): ("pretrained", chooser)} if chooser and self.pretrained is True else {}

    def check_machine(self) -> None:
        """Refuse, in the config cell, what this machine cannot run: GPU-only options without a GPU, and ImageNet
        weights that are neither installed, nor cached, nor downloadable; each message names the parameter and
        the quickest way on (`smoke = True` where a smoke run needs none of it)."""
        if self.torch_compile and not torch_cuda():
            raise ConfigError("torch_compile = True needs a GPU (this machine has none): set torch_compile = False")
        missing = missing_weights(self)
        if not missing:
            return
        needs = ", ".join(f"{param} {arch!r}" if str(getattr(self, param)).removeprefix("tu-") == arch else
                          f"{arch} ({param} = {getattr(self, param)!r})" for arch, (_, param) in missing.items())
        flags = list(dict.fromkeys(flag for flag, _ in missing.values()))
        ways = [f'{flag} = "false" (random initialisation)' for flag in flags]
        if not self.smoke and not missing_weights(dataclasses.replace(self, smoke=True).effective()):
            ways.insert(0, "smoke = True (a tiny run that needs none of them)")
        fetch = " and ".join(f"`{cmd}`" for cmd in fetch_commands(missing))
        ways.append(f"fetch them: {fetch} on a machine with internet, then copy its cache here")
        raise ConfigError(f"{type(self).__name__}: {' and '.join(flags)} = true needs ImageNet weights of {needs}, "
                          "which this machine lacks (no weight package, not in the Hugging Face cache, no connection "
                          "to the hub).\nQuickest ways on: " + "; or ".join(ways) + ".")

    @property
    def is_interactive(self) -> bool:
        """`interactive` resolved: "auto" is on in a live Jupyter kernel, off under papermill or in a script."""
        from lesionkit.utils.kernel import interactive_on  # lazy

        return interactive_on(self.interactive)

    @property
    def methods(self) -> list[str]:
        """The comma-separated `attribution_methods` parameter (in configs that have one) as a list."""
        return [m.strip() for m in str(getattr(self, "attribution_methods", "")).split(",") if m.strip()]

    def engine_settings(self) -> EngineSettings:
        """The hardware settings the engine is given explicitly (it never reads this config)."""
        from lesionkit.engine.settings import EngineSettings  # lazy

        return EngineSettings(speedups=self.speedups, torch_compile=self.torch_compile, sync_bn=self.sync_bn,
                              num_processes=self.num_processes, deterministic=self.deterministic)

    def effective(self, **smoke_overrides: Any) -> "TrainConfig":
        """The config actually run: with `smoke`, sizes and epochs shrink to the given overrides."""
        if not self.smoke:
            return self
        import dataclasses

        defaults = {"epochs": 1, "image_size": min(self.image_size, 64), "batch_size": min(self.batch_size, 16)}
        return dataclasses.replace(self, **{**defaults, **smoke_overrides})


def missing_weights(cfg: TrainConfig) -> dict[str, tuple[str, str]]:
    """The entries of ``cfg.weights_needed()`` whose weights this machine cannot load."""
    needed = cfg.weights_needed()
    if not needed:
        return {}
    from lesionkit.models.pretrained import weights_reachable  # lazy

    return {arch: why for arch, why in needed.items() if not weights_reachable(arch)}


def fetch_commands(missing: dict[str, tuple[str, str]]) -> list[str]:
    """The commands that fetch the ``missing`` weights."""
    from lesionkit.models.pretrained import fetch_command  # lazy

    return [fetch_command(arch) for arch in missing]


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


def load_external(cfg: TrainConfig, classes: list[str], positive: str | None = None) -> Any:
    """The optional external test set (``cfg.test_dir``) in the model's classes
    (:func:`lesionkit.data.external.load_test_set`: its most held-out official part, classes mapped by name or
    synonym, a binary model's other classes as the rest); None when not given."""
    if not cfg.test_dir:
        return None
    from lesionkit.data.external import load_test_set  # lazy

    return load_test_set(cfg.test_dir, classes, positive, bad_metadata=cfg.bad_metadata)


def load_external_like(cfg: TrainConfig, ds: Any) -> Any:
    """:func:`load_external` with ``ds``'s classes and positive class (``data.external.positive_class``)."""
    from lesionkit.data.external import positive_class  # lazy

    return load_external(cfg, list(ds.classes), positive=positive_class(ds.classes, ds.task))


# --- the skeleton every notebook ends with ---------------------------------------------------------------------------
def start(config_cls: type[TrainConfig], namespace: dict[str, Any]) -> Any:
    """The config cell of every notebook: validate the parameters cell's values into ``config_cls`` and open the run
    record ``runs/<config_cls.notebook>/<run-id>/`` (or reopen one with ``resume``). With ``num_processes`` > 1 the
    kernel stays off the GPU until its stages are launched (forked workers cannot use CUDA after their parent has)."""
    from lesionkit.parallel import distributed  # lazy
    from lesionkit.records.runs import start_notebook_run  # lazy

    run = start_notebook_run(config_cls.notebook, config_cls, namespace)
    if getattr(run.cfg, "num_processes", 1) > 1 and distributed.world_size() == 1:
        distributed.keep_parent_off_gpu()  # the launches fork: preview batches before them stay on the CPU
    return run


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
