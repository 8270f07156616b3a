"""Notebook parameters become a validated config: papermill's strings coerced, mistakes refused with help."""
from __future__ import annotations

import pytest

from lesionkit.config import ConfigError
from lesionkit.papers.common import TrainConfig
from lesionkit.papers.quickstart.recipe import QuickstartConfig


def test_papermill_strings_are_coerced() -> None:
    cfg = QuickstartConfig.from_params({"pretrained": "false", "epochs": "3", "lr": "1e-4", "smoke": "True",
                                        "batch_size": 8.0, "tta": 0})
    assert cfg.pretrained is False and cfg.epochs == 3 and cfg.lr == pytest.approx(1e-4)
    assert cfg.smoke is True and cfg.batch_size == 8 and cfg.tta is False


def test_unknown_key_is_refused_with_suggestion_and_valid_list() -> None:
    with pytest.raises(ConfigError) as err:
        QuickstartConfig.from_params({"epoch": 3})
    msg = str(err.value)
    assert "unknown parameter 'epoch'" in msg and "did you mean 'epochs'" in msg
    assert "Valid parameters:" in msg and "image_size (int)" in msg


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        QuickstartConfig.from_params({"epochs": "many", "image_size": 8, "schedule": "cosine"})
    msg = str(err.value)
    assert "'epochs': expected an integer" in msg
    assert "'image_size' = 8 must be >= 32" in msg
    assert "'schedule' = 'cosine' is not one of" in msg


def test_bool_refuses_garbage_and_int_refuses_fractions() -> None:
    with pytest.raises(ConfigError, match="smoke"):
        QuickstartConfig.from_params({"smoke": "maybe"})
    with pytest.raises(ConfigError, match="expected an integer"):
        QuickstartConfig.from_params({"epochs": 2.5})


def test_missing_data_dir_and_weight_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="data_dir .*does not exist"):
        TrainConfig.from_params({"data_dir": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="neither true/false nor an existing weight file"):
        TrainConfig.from_params({"pretrained": str(tmp_path / "w.pth")})
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    assert TrainConfig.from_params({"pretrained": str(weights)}).pretrained == str(weights)


def test_round_trip_through_yaml(tmp_path) -> None:
    cfg = QuickstartConfig.from_params({"epochs": 7, "pretrained": False, "run_name": "a b"})
    cfg.save(tmp_path / "config.yaml")
    assert QuickstartConfig.load(tmp_path / "config.yaml") == cfg


def test_from_notebook_ignores_modules_functions_and_ipython_names() -> None:
    import math

    namespace = {"epochs": 2, "math": math, "In": [], "_": None, "f": lambda: 1, "QuickstartConfig": QuickstartConfig}
    assert QuickstartConfig.from_notebook(namespace).epochs == 2
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'"):
        QuickstartConfig.from_notebook({**namespace, "epoch": 3})


def test_smoke_shrinks_the_effective_config() -> None:
    cfg = QuickstartConfig.from_params({"smoke": True, "epochs": 50, "image_size": 224})
    eff = cfg.effective()
    assert (eff.epochs, eff.image_size) == (1, 64) and cfg.epochs == 50
    assert QuickstartConfig().effective() == QuickstartConfig()


def test_describe_lists_every_parameter_with_help() -> None:
    text = QuickstartConfig.describe()
    assert len(text.splitlines()) == len(QuickstartConfig.fields())
    assert "epochs: int = 5  # training epochs" in text


def test_a_renamed_parameter_is_refused_naming_its_new_name() -> None:
    from lesionkit.papers.arl.recipe import ARLConfig
    from lesionkit.papers.multimodal.recipe import MultimodalConfig

    with pytest.raises(ConfigError, match=r"parameter 'tta' = 'flips8' is now called 'test_views'.*-p test_views flips8"):
        ARLConfig.from_params({"tta": "flips8"})
    assert ARLConfig.from_params({"test_views": "flips8"}).test_views == "flips8"
    # multimodal's `split` now means the rule, as everywhere: its old values name split_by, its new ones are taken
    with pytest.raises(ConfigError, match=r"parameter 'split' = 'image' is now called 'split_by'"):
        MultimodalConfig.from_params({"split": "image"})
    assert MultimodalConfig.from_params({"split_by": "image"}).split_by == "image"
    assert MultimodalConfig().split == "grouped", "the default keeps the grouped split this notebook always used"
    assert MultimodalConfig.from_params({"split": "official"}).split == "official"
    with pytest.raises(ConfigError, match="split_by='image'"):
        MultimodalConfig.from_params({"split": "official", "split_by": "image"})


def test_one_meaning_per_parameter_name_across_notebooks() -> None:
    """A name the notebooks share has one type everywhere, and its choices (where it has some) overlap: a notebook
    may offer fewer or more schedules, but never a disjoint set of values under the same name."""
    import dataclasses
    import typing

    from lesionkit.papers import notebook_configs

    seen: dict[str, tuple[str, object, set | None]] = {}
    clashes = []
    for nb, cls in notebook_configs().items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            choices = set(f.metadata["choices"]) if f.metadata.get("choices") else None
            first = seen.setdefault(f.name, (nb, hints[f.name], choices))
            if first[1] != hints[f.name] or (first[2] is None) != (choices is None) or (
                    choices is not None and not first[2] & choices):
                clashes.append(f"{f.name}: {first[0]} {first[1]} {first[2]} vs {nb} {hints[f.name]} {choices}")
    assert clashes == []


def test_notebook_params_are_the_names_of_the_last_parameters_cells() -> None:
    from lesionkit.config import notebook_params

    history = ["", "# Parameters: ...\nepochs: int = 5\nsmoke: bool = False", "run = 1",
               "# Parameters: ...\nepochs: int = 2\nsmoke: bool = False", "# Parameters\nsmoke = True\n", "x = 1"]
    namespace = {"In": history, "epochs": 2, "smoke": True, "run": 1, "x": 1, "learn": object()}
    assert notebook_params(namespace) == {"epochs": 2, "smoke": True}
    assert notebook_params({**namespace, "In": ["", "run = 1"]})["run"] == 1  # no parameters cell: every global


def test_a_parameter_name_reused_by_a_later_cell_is_named() -> None:
    from lesionkit.config import notebook_params

    history = ["", "# Parameters: ...\nsplit: str = 'official'", "from lesionkit.papers.common import split"]
    with pytest.raises(ConfigError, match=r"parameters \['split'\] hold a function now.*Run the parameters cell"):
        notebook_params({"In": history, "split": lambda: None})
