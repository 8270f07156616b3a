"""Every notebook's deviation list is built from its paper package's DEVIATIONS and is true of its config."""
from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from lesionkit.config import Config, param
from lesionkit.papers.deviations import Deviation, problems, render

ROOT = Path(__file__).resolve().parents[2]
PAPERS: tuple[str, ...] = ("arl", "patch_attention", "attention_b3", "multimodal", "se_lcn")


def _recipe(paper: str):
    return importlib.import_module(f"lesionkit.papers.{paper}.recipe")


def _config_cls(module):
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, Config) and v.__module__ == module.__name__]
    assert len(classes) == 1, classes
    return classes[0]


@pytest.mark.parametrize("paper", PAPERS)
def test_each_listed_deviation_is_true_of_the_config(paper):
    module = _recipe(paper)
    assert module.DEVIATIONS, f"{paper} declares no deviations"
    assert problems(_config_cls(module), module.DEVIATIONS) == []


@pytest.mark.parametrize("paper", PAPERS)
def test_the_notebook_renders_its_deviations_from_the_code(paper):
    """The section is a heading plus a call: no hand-written list beside it that could say something else."""
    cells = json.loads((ROOT / "notebooks" / f"{paper}.ipynb").read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    heading = [i for i, s in enumerate(sources) if s.startswith("## Remaining deviations")]
    assert len(heading) == 1, f"{paper}: one '## Remaining deviations' heading expected"
    i = heading[0]
    assert "\n- " not in sources[i], f"{paper}: the deviation list is hand-written in markdown"
    assert cells[i + 1]["cell_type"] == "code" and "show_deviations(run, " in sources[i + 1]


def test_every_learning_rate_means_the_peak_of_its_schedule():
    """One meaning of `lr` in every notebook (issue 30): the peak of the schedule, said in its help text."""
    from lesionkit.papers import notebook_configs

    rates = [(nb, f) for nb, cls in notebook_configs().items() for f in dataclasses.fields(cls)
             if f.name == "lr" or f.name.endswith("_lr")]
    assert len(rates) >= 10
    for nb, f in rates:
        assert f.metadata["help"].startswith("peak learning rate of the"), f"{nb}.{f.name}: {f.metadata['help']}"


@dataclass(frozen=True)
class _Toy(Config):
    flips: str = param("dihedral", "augmentation", choices=("dihedral", "flip_rotate"))


def test_a_false_default_or_a_refused_option_is_found():
    true = Deviation("Augmentation", "90° turns added.", "flips", "dihedral", "neither", option="flip_rotate")
    assert problems(_Toy, (true,)) == []
    wrong_default = Deviation("Augmentation", "x", "flips", "flip_rotate", "code")
    refused = Deviation("Augmentation", "x", "flips", "dihedral", "neither", option="rot90")
    unknown = Deviation("Augmentation", "x", "flip", "dihedral")
    found = problems(_Toy, (wrong_default, refused, unknown))
    assert len(found) == 3
    assert "flips='flip_rotate' by default" in found[0] and "'dihedral'" in found[0]
    assert "rot90" in found[1] and "no field 'flip'" in found[2]


def test_render_names_the_default_the_option_and_the_run_value():
    item = Deviation("Augmentation", "90° turns added.", "flips", "dihedral", "neither", option="flip_rotate")
    fixed = Deviation("Weights", "timm's ImageNet weights.")
    text = render((item, fixed), _Toy(flips="flip_rotate"))
    assert text.splitlines()[0] == ('- **Augmentation.** 90° turns added. Default `flips="dihedral"` (neither\'s); '
                                    'option `flips="flip_rotate"`; this run: `flips="flip_rotate"`.')
    assert text.splitlines()[1] == "- **Weights.** timm's ImageNet weights."


def test_follows_must_say_whose_variant():
    with pytest.raises(ValueError, match="follows"):
        Deviation("x", "y", "flips", "dihedral", "papers")
