"""What each notebook means by "score its models on this set", for ``papers.saved``: how a saved run of it reads
an external set, which Evaluation scores it, the notebook's own explain, and what a set becomes before its models
read it (SE-LCN's cascade, the comparison's entries' inputs). Also the record readers both modules share.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable


class RunLoadError(ValueError):
    """A folder that cannot be used as a trained model, with the file and the fix in its message."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunLoadError(f"{path}: cannot be read as JSON ({err}); the run record is damaged") from None


def recipe_cfg(cfg: Any) -> Any:
    """The run's settings with ImageNet weights off: the saved weights replace them."""
    return replace(cfg, pretrained=False) if hasattr(cfg, "pretrained") else cfg


def shape_only(saved: Any) -> Any:
    """An empty dataset in the model's classes (what building a recipe's variants needs to know)."""
    import pandas as pd

    from lesionkit.data.table import CANONICAL_COLUMNS, LesionDataset  # lazy

    return LesionDataset("none", saved.dir, pd.DataFrame(columns=list(CANONICAL_COLUMNS)), saved.classes,
                         saved.task)


@dataclass(frozen=True)
class Hooks:
    """One notebook's answers; each function takes the SavedRun first."""

    test_set: Callable[[Any, str], Any]
    evaluation: Callable[[Any, Any, Any], Any]
    explain: Callable[..., Any] | None = None  # the notebook's own (learn, ds, rows, cfg, run); None: loader inputs
    inputs: Callable[[Any, Any], Any] | None = None  # a set -> what the models read (None: the set itself)


def external(saved: Any, path: str, classes: list[str], positive: str | None) -> Any:
    from lesionkit.papers.common import load_external  # lazy

    return load_external(replace(saved.cfg, test_dir=path), classes, positive)


def _quickstart_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.quickstart import recipe  # lazy

    return recipe.evaluation(ds, cfg)


def _arl_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.arl import recipe  # lazy

    return recipe.evaluation(ds, cfg)


def _patch_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.patch_attention import recipe  # lazy

    return recipe.evaluation(ds, cfg)


def _b3_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.attention_b3 import recipe  # lazy

    return recipe.evaluation(ds, cfg, saved.classes)


def _b3_test_set(saved: Any, path: str) -> Any:
    from lesionkit.data.tasks import find_class  # lazy

    return external(saved, path, ["rest", find_class(saved.cfg.positive, saved.classes)], saved.cfg.positive)


def _multimodal_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.data.metadata import MetaEncoder  # lazy
    from lesionkit.papers.multimodal import recipe  # lazy

    path = saved.dir / "meta_encoder.json"
    if not path.is_file():
        raise RunLoadError(f"{path}: missing; the metadata model cannot encode age, sex and site without it")
    return recipe.evaluation(ds, cfg, MetaEncoder.load(path))


def _multimodal_test_set(saved: Any, path: str) -> Any:
    from lesionkit.papers.multimodal import recipe  # lazy

    return recipe.load_external_set(replace(saved.cfg, test_dir=path), shape_only(saved))


def _same_classes(saved: Any, path: str) -> Any:
    return external(saved, path, saved.classes, saved.positive)


def _arl_explain(*args: Any) -> Any:
    from lesionkit.papers.arl import recipe  # lazy

    return recipe.explain(*args)


def _patch_explain(*args: Any) -> Any:
    from lesionkit.papers.patch_attention import recipe  # lazy

    return recipe.explain(*args)


def _symmetry_classes(saved: Any) -> list[str] | None:
    """The symmetry net's classes (model_symmetry.json), None when the record has none."""
    path = saved.dir / "model_symmetry.json"
    classes = read_json(path).get("classes") if path.is_file() else None
    return classes if isinstance(classes, list) else None


def segmenter_norm(run_dir: Path) -> str:
    """The segmenter's input normalisation as model_segmenter.json records it; "imagenet" for a record written
    before the choice existed (its segmenter trained on ImageNet-normalised inputs)."""
    path = run_dir / "model_segmenter.json"
    kwargs = read_json(path).get("kwargs", {}) if path.is_file() else {}
    return str(kwargs.get("input_norm", "imagenet"))


def _se_lcn_cascade(saved: Any) -> Any:
    """The run's segmenter and symmetry net, read once."""
    if "cascade" not in saved.parts:
        from lesionkit.papers.se_lcn.reuse import load_cascade  # lazy

        classes = _symmetry_classes(saved)
        if classes is None:
            raise RunLoadError(f"{saved.dir / 'model_symmetry.json'}: missing or without \"classes\"; the symmetry "
                               "net cannot be rebuilt, so no CAMs: train the run again")
        saved.parts["cascade"] = load_cascade(recipe_cfg(saved.cfg), saved.models, classes, segmenter_norm(saved.dir))
    return saved.parts["cascade"]


def _se_lcn_inputs(saved: Any, ds: Any) -> Any:
    return _se_lcn_cascade(saved).inputs(ds)


def _se_lcn_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.se_lcn import recipe  # lazy

    return recipe.evaluation(ds, _se_lcn_cascade(saved).cams, cfg)


def _compare_context(saved: Any) -> Any:
    """The entries' shared inputs (metadata encoder, the CAM entry's cascade), read once."""
    if "context" not in saved.parts:
        from lesionkit.papers.compare.reuse import saved_context  # lazy

        saved.parts["context"] = saved_context(recipe_cfg(saved.cfg), saved.dir, shape_only(saved), saved.models,
                                               _symmetry_classes(saved), segmenter_norm(saved.dir))
    return saved.parts["context"]


def _compare_inputs(saved: Any, ds: Any) -> Any:
    from lesionkit.papers.compare.reuse import inputs  # lazy

    return inputs(_compare_context(saved), ds)


def _compare_eval(saved: Any, cfg: Any, ds: Any) -> Any:
    from lesionkit.papers.compare.reuse import evaluation  # lazy

    return evaluation(_compare_context(saved), ds)


HOOKS = {
    "00_quickstart": Hooks(_same_classes, _quickstart_eval),
    "arl": Hooks(_same_classes, _arl_eval, _arl_explain),
    "patch_attention": Hooks(_same_classes, _patch_eval, _patch_explain),
    "attention_b3": Hooks(_b3_test_set, _b3_eval),
    "multimodal": Hooks(_multimodal_test_set, _multimodal_eval),
    "se_lcn": Hooks(_same_classes, _se_lcn_eval, inputs=_se_lcn_inputs),
    "compare": Hooks(_same_classes, _compare_eval, inputs=_compare_inputs),
}


__all__ = ["HOOKS", "Hooks", "RunLoadError", "external", "read_json", "recipe_cfg", "shape_only"]
