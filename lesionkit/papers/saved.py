"""A finished run folder as a model to use again: ``load_run(path)`` gives back its settings, classes,
preprocessing and every saved fold model, ready to score another dataset the way its notebook scored ``test_dir``.

The run's own recipe rebuilds each model (its notebook's Variant: architecture, loaders, normalisation, size,
test-time views and averaging) with ImageNet weights off, and the weights come from the record: every finished
stage's ``checkpoints/<stage>_final.pth`` (each fold's), else the fold-0 ``model*.pth`` that every notebook saves.
Each fold model predicts in the precision its fit used (stages.json's ``speedups``), so an evaluation here repeats
the notebook's numbers. An SE-LCN run's segmenter and symmetry net are read back too, and every image set goes
through its cascade (hair removal, masks, LAE inputs, Grad-CAM++ maps) before its classifiers see it
(``papers.se_lcn.reuse``); a comparison run's entries get their metadata encoder and CAM cascade the same way
(``papers.compare.reuse``).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from lesionkit.config import coerce
from lesionkit.papers import notebook_configs
from lesionkit.papers.saved_recipes import HOOKS, Hooks, RunLoadError, external, read_json, recipe_cfg, shape_only

LOADABLE = ("00_quickstart", "arl", "patch_attention", "attention_b3", "multimodal", "se_lcn", "compare")


@dataclass
class SavedRun:
    """A completed run: ``cfg`` (config.yaml, as it ran), the model's ``classes`` and ``task``, and the recipe
    that rebuilds its models. ``evaluate``/``predict`` on any dataset go through ``lesionkit.engine.evaluation``."""

    dir: Path
    notebook: str
    cfg: Any
    classes: list[str]
    task: str
    info: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict, repr=False)  # what a hook built once (SE-LCN's cascade)

    @property
    def name(self) -> str:
        return f"{self.notebook}/{self.dir.name}"

    @property
    def positive(self) -> str | None:
        """The class its binary scores are read against (the model's, or Going Smaller's ``positive``)."""
        if self.notebook == "attention_b3":
            return str(self.cfg.positive)
        from lesionkit.data.external import positive_class  # lazy

        return positive_class(self.classes, self.task)

    def preprocessing(self) -> dict[str, Any]:
        """What an image goes through before the model, as recorded: size, normalisation, views and averaging."""
        spec = read_json(self.dir / "model.json") if (self.dir / "model.json").is_file() else {}
        models = self.variants()
        return {"image_size": self.cfg.image_size, "norm": spec.get("norm", "the model's (timm default_cfg)"),
                "views": {v.key: v.views for v in models}, "averaging": {v.key: v.average for v in models}}

    def test_set(self, path: str | Path, model_inputs: bool = True) -> Any:
        """The folder ``path`` read as the notebook reads ``test_dir``: its held-out official part, classes mapped
        onto the model's (a binary model: its positive class against the rest). A set with classes a multiclass
        model never saw (ISIC 2020's "unknown", an archive's "other") is read as melanoma against the rest when
        both have melanoma: ``ds.info["scored_as"]`` says so. ``model_inputs``: as the models read it
        (:meth:`model_inputs`), else as the folder holds it."""
        try:
            ds = _hook(self).test_set(self, str(path))
        except ValueError as err:
            melanoma = self._melanoma()
            if self.task != "multiclass" or melanoma is None or "never saw them" not in str(err):
                raise
            ds = external(self, str(path), ["rest", melanoma], melanoma)
            ds.info["scored_as"] = f"{melanoma} vs rest ({err})"
            print(f"{path}: classes the model never saw, scored as {melanoma} vs rest", flush=True)
        return self.model_inputs(ds) if model_inputs else ds

    def model_inputs(self, ds: Any) -> Any:
        """``ds`` as the run's models read it: unchanged, except for SE-LCN, whose classifiers read the output of
        its cascade (hair-free images, their masks' LAE crops, the symmetry net's maps)."""
        inputs = _hook(self).inputs
        return ds if inputs is None else inputs(self, ds)

    def evaluation(self, ds: Any) -> Any:
        """The notebook's :class:`lesionkit.engine.evaluation.Evaluation` built on dataset ``ds``; on a
        melanoma-vs-rest set (``test_set``'s fallback) the model's melanoma column read as P(melanoma)."""
        if ds is None or list(ds.classes) == self.classes or self.notebook == "attention_b3":
            return _hook(self).evaluation(self, recipe_cfg(self.cfg), ds)
        from lesionkit.engine import score  # lazy
        from lesionkit.engine.evaluation import Evaluation  # lazy

        model_ds = in_model_classes(self, ds)
        ev = _hook(self).evaluation(self, recipe_cfg(self.cfg), model_ds)
        models = [v if v.test_dl else replace(v, test_dl=_test_loader_on(model_ds)) for v in ev.variants]
        return Evaluation(models, report=lambda y, p: score(y, p, list(ds.classes)), folds=ev.folds,
                          positive_column=self.classes.index(self._melanoma()))

    def _melanoma(self) -> str | None:
        from lesionkit.data.tasks import find_class  # lazy

        try:
            return find_class("mel", self.classes)
        except ValueError:
            return None

    def learners(self, ev: Any, ds: Any) -> dict[str, list[Any]]:
        """{variant key: its fold models as fastai Learners on ``ds``'s loaders}, weights read from the record."""
        out = self.models(ev.variants, ds)
        if not out:
            raise RunLoadError(f"{self.dir}: no weights of {[v.key for v in ev.variants]} (no checkpoints/<stage>"
                               "_final.pth nor model*.pth): the run saved no model; train it again")
        return out

    def models(self, variants: list[Any], ds: Any) -> dict[str, list[Any]]:
        """{key: fold Learners} of the ``variants`` whose weights the record holds, loaders built on ``ds``."""
        from lesionkit.engine.runner import stage_states  # lazy
        from lesionkit.engine.speed import keep_speed, recorded_speed  # lazy

        stages, out = stage_states(self), {}
        train, valid = _loader_parts(ds)
        for v in variants:
            files = self._weight_files(v.key, stages)
            models = []
            for path, record in files:
                learn = replace(v, loss=None, metrics=()).learner(train, valid)
                _load_weights(learn.model, path)
                speed = recorded_speed(record.get("speedups"), record.get("precision"))
                if speed is not None:  # predicts in the precision and memory format its fit used
                    keep_speed(learn.model, speed)
                learn.model.to(learn.dls.device)
                models.append(learn)
            if models:
                out[v.key] = models
        return out

    def _weight_files(self, key: str, stages: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
        """Every fold's final weights of variant ``key`` (fold order) with its stage record, else its fold-0 model
        file."""
        keys = [key] if key in stages else [f"{key}_fold{k}" for k in range(len(stages)) if f"{key}_fold{k}" in stages]
        found = [(self.dir / stages[k]["weights"], stages[k]) for k in keys
                 if stages[k].get("status") == "done" and (self.dir / stages[k]["weights"]).is_file()]
        if found:
            return found
        headline = getattr(self.cfg, "headline", "")
        name = "model" if key == headline else f"model_{key}"
        first = stages.get(keys[0], {}) if keys else {}
        return [(self.dir / f"{name}.pth", first)] if (self.dir / f"{name}.pth").is_file() else []

    def variants(self, ds: Any = None) -> list[Any]:
        """The run's models as its recipe declares them (on ``ds``; default: an empty set in its classes)."""
        return list(self.evaluation(ds if ds is not None else shape_only(self)).variants)

    def explain(self, learn: Any, ds: Any, rows: np.ndarray, methods: list[str], record: Any) -> Any:
        """Attribution maps of ``learn`` for ``rows``, made as the notebook makes them (its inputs, sizes and method
        settings), stored under ``record.dir`` for the viewer."""
        hook = _hook(self).explain
        if hook is not None:
            cfg = replace(recipe_cfg(self.cfg), attribution_methods=",".join(methods))
            return hook(learn, ds, rows, cfg, record)
        from lesionkit.attribution import explain_rows  # lazy

        return explain_rows(learn.model, ds, rows, methods, record.dir, dls=learn.dls,
                            model_name=f"{self.notebook}:{type(learn.model).__name__}")


def load_run(path: str | Path) -> SavedRun:
    """The completed run folder ``path`` as a :class:`SavedRun`; RunLoadError naming the file and the fix for a
    folder that is not a completed run, a notebook these commands cannot rebuild, or a config from another layout."""
    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        raise RunLoadError(f"{run_dir}: no such run folder; give a folder under runs/<notebook>/ that a notebook run "
                           "wrote")
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise RunLoadError(f"{run_dir}: no run.json, so this is not a run record; give a folder under "
                           "runs/<notebook>/<run-id>/")
    info = read_json(info_path)
    status = info.get("status")
    if status != "completed":
        raise RunLoadError(f"{info_path}: status {status!r}, not completed; finish it with -p resume {run_dir} "
                           "(or score a completed run)")
    notebook = str(info.get("notebook") or run_dir.parent.name)
    configs = notebook_configs()
    if notebook not in configs:
        raise RunLoadError(f"{info_path}: notebook {notebook!r} is not one of lesionkit's {sorted(configs)}")
    if notebook not in LOADABLE:
        raise RunLoadError(f"{run_dir}: a {notebook} run trains no model (it scores other runs); give a run of "
                           f"one of {', '.join(LOADABLE)}")
    cfg = _recorded_config(configs[notebook], run_dir / "config.yaml")
    classes, task = _classes(run_dir, notebook, cfg)
    return SavedRun(dir=run_dir, notebook=notebook, cfg=cfg, classes=classes, task=task, info=info)


# --- reading the record --------------------------------------------------------------------------------------------
def _recorded_config(cls: type, path: Path) -> Any:
    """config.yaml as ``cls`` without re-checking paths (the data folder may live elsewhere now); renamed keys
    follow ``cls.renamed``, unknown ones mean another layout."""
    if not path.is_file():
        raise RunLoadError(f"{path}: missing; a run that stopped at its config cell has no model to load")
    params = yaml.safe_load(path.read_text()) or {}
    params = {cls.renamed.get(k, k): v for k, v in params.items()}
    hints, fields = typing.get_type_hints(cls), {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise RunLoadError(f"{path}: settings {unknown} are not parameters of this lesionkit's {cls.__name__}; the "
                           "run comes from another layout: load it with the lesionkit version that wrote it")
    try:
        return cls(**{k: coerce(hints[k], v) for k, v in params.items()})
    except TypeError as err:
        raise RunLoadError(f"{path}: {err}") from None


def _classes(run_dir: Path, notebook: str, cfg: Any) -> tuple[list[str], str]:
    """The model's classes (model.json's, else the first model_<key>.json that names them) and task."""
    specs = sorted(run_dir.glob("model*.json"), key=lambda p: p.name != "model.json")
    if not specs:
        raise RunLoadError(f"{run_dir}: no model.json / model_<key>.json; the run saved no model")
    classes = next((c for c in (read_json(p).get("classes") for p in specs) if isinstance(c, list)), None)
    if classes is None or len(classes) < 2:
        raise RunLoadError(f"{specs[0]}: no class list (\"classes\"); the model cannot be scored")
    task = "binary" if len(classes) == 2 and notebook != "attention_b3" else "multiclass"
    return [str(c) for c in classes], task


def _load_weights(model: Any, path: Path) -> None:
    from lesionkit.models.pretrained import load_tensors  # lazy

    state = load_tensors(path)
    if not isinstance(state, dict):
        raise RunLoadError(f"{path}: holds a {type(state).__name__}, not a state_dict; the weights file is damaged")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise RunLoadError(f"{path}: the weights do not fit the model its config.yaml / model.json describe "
                           f"({first}); the file belongs to another run or was edited") from None


def _loader_parts(ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two group-disjoint parts of ``ds`` (the first lesion / patient, the rest): what a recipe's loaders are built
    from; neither is trained on, predictions come from test loaders over the evaluated rows."""
    from lesionkit.data.splits import group_codes  # lazy

    codes = group_codes(ds.df)
    first = codes == codes[0]
    if first.all():
        raise RunLoadError(f"{ds.root}: every image belongs to one lesion or patient; give at least two lesions")
    return np.flatnonzero(first), np.flatnonzero(~first)


def in_model_classes(saved: SavedRun, ds: Any) -> Any:
    """``ds``'s rows in the model's classes: what its recipe's loaders are built on when the truth is another
    task's (a melanoma-vs-rest set). Predictions never read these labels; a positive row keeps the model's
    melanoma class, every other row gets the model's first class."""
    from lesionkit.data.table import LesionDataset  # lazy

    if list(ds.classes) == saved.classes:
        return ds
    positive = ds.df["label_idx"].to_numpy() == 1 if len(ds.classes) == 2 else np.zeros(len(ds), bool)
    melanoma = saved._melanoma() or saved.classes[0]
    df = ds.df.assign(label=np.where(positive, melanoma, saved.classes[0]),
                      label_idx=np.where(positive, saved.classes.index(melanoma), 0))
    return LesionDataset(ds.name, ds.root, df, saved.classes, saved.task, dict(ds.info))


def _test_loader_on(model_ds: Any) -> Callable[[Any, np.ndarray], Any]:
    def test_loader(learn: Any, rows: np.ndarray) -> Any:
        from lesionkit.data.loaders import test_dl  # lazy

        return test_dl(learn.dls, model_ds, rows, with_labels=True)
    return test_loader


def _hook(saved: SavedRun) -> Hooks:
    return HOOKS[saved.notebook]


__all__ = ["LOADABLE", "RunLoadError", "SavedRun", "in_model_classes", "load_run"]
