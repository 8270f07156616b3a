"""One source of parameters: each notebook's `parameters` cell is generated from its Config class and must not drift.

Regenerate the cells after changing a Config with `python -m lesionkit params` (`--check` lists the differences).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import typing
from pathlib import Path

import pytest

import lesionkit
from conftest import REPO
from lesionkit.config import ConfigError
from lesionkit.notebook.cell import (parameters_cell, parameters_cell_differences, PARAMETERS_HEADER, notebook_config, parameters_cell_values,
                                     sync_parameters_cell)
from lesionkit.papers import NOTEBOOK_CONFIGS
from lesionkit.papers.common import TrainConfig
from lesionkit.papers.quickstart.recipe import QuickstartConfig

NOTEBOOKS = sorted(NOTEBOOK_CONFIGS)
CELL_TYPES = {bool: "bool", int: "int", float: "float", str: "str", bool | str: "str"}


def _path(name: str) -> Path:
    return REPO / "notebooks" / f"{name}.ipynb"


def assert_cell_matches(path: Path, cls: type) -> None:
    """The cell's names (in the class's cell order), type names and defaults (after `from_params`) are the class's."""
    cell = parameters_cell_values(path)
    names = [f.name for f in cls.cell_fields()]
    assert list(cell) == names, f"{path.name}: names differ from {cls.__name__}"
    hints = typing.get_type_hints(cls)
    assert {n: t for n, (_, t, _) in cell.items()} == {n: CELL_TYPES[hints[n]] for n in names}, \
        f"{path.name}: type names differ from {cls.__name__}"
    coerced = cls.from_params({n: v for n, (v, _, _) in cell.items()})
    assert coerced == cls(), f"{path.name}: defaults differ from {cls.__name__}"
    assert {n: c for n, (_, _, c) in cell.items()} == {f.name: f.metadata["help"] for f in cls.cell_fields()}
    assert parameters_cell_differences(cls, path) == []


def test_every_notebook_has_a_config_class() -> None:
    assert sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_the_config_class(name: str) -> None:
    assert_cell_matches(_path(name), notebook_config(name))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_cell_is_exactly_the_generated_one(name: str, tmp_path) -> None:
    copy = tmp_path / f"{name}.ipynb"
    shutil.copy(_path(name), copy)
    assert sync_parameters_cell(copy, notebook_config(name)) is False, \
        f"{name}.ipynb is out of date: run `python -m lesionkit params`"
    assert copy.read_bytes() == _path(name).read_bytes()


def _edit_cell(path: Path, old: str, new: str) -> None:
    nb = json.loads(path.read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(cell["source"])
    assert old in source
    cell["source"] = source.replace(old, new)
    path.write_text(json.dumps(nb, indent=1))


@pytest.mark.parametrize("old, new, expected", [
    ("epochs: int = 5  #", "epochs: int = 4  #", "epochs: default 4 in the cell, 5 in QuickstartConfig"),
    ('pretrained: str = "true"', 'pretrained: str = "false"', "pretrained: default 'false'"),
    ("lr: float = 2e-3", "lr: float = 0.0020", None),  # the same value written differently: no difference
    ("tta: bool = True", "tta: str = True", "tta: type str in the cell, bool"),
    ("# training epochs\n", "# epochs\n", "epochs: help 'epochs' in the cell"),
    ("max_images: int = 0", "max_image: int = 0", "max_image: in the cell, not a field"),
    ("seed: int = 0  # random seed for splits, sampling and initialisation\n", "",
     "seed: a field of QuickstartConfig, missing from the cell"),
])
def test_a_drifted_cell_is_reported(old: str, new: str, expected: str | None, tmp_path) -> None:
    copy = tmp_path / "00_quickstart.ipynb"
    shutil.copy(_path("00_quickstart"), copy)
    _edit_cell(copy, old, new)
    diffs = parameters_cell_differences(QuickstartConfig, copy)
    if expected is None:
        assert diffs == []
        return
    assert any(expected in d for d in diffs), diffs
    with pytest.raises(AssertionError):
        assert_cell_matches(copy, QuickstartConfig)


def test_sync_rewrites_a_drifted_cell_and_keeps_the_rest(tmp_path) -> None:
    import nbformat

    copy = tmp_path / "arl.ipynb"
    shutil.copy(_path("arl"), copy)
    _edit_cell(copy, "epochs: int = 100", "epochs: int = 7")
    cls = notebook_config("arl")
    assert parameters_cell_differences(cls, copy)
    assert sync_parameters_cell(copy, cls) is True
    assert parameters_cell_differences(cls, copy) == []
    before, after = (nbformat.read(str(p), as_version=nbformat.NO_CONVERT) for p in (_path("arl"), copy))
    assert (after.nbformat, after.nbformat_minor) == (before.nbformat, before.nbformat_minor)
    assert [(c.get("id"), c.metadata, c.source) for c in after.cells] == \
        [(c.get("id"), c.metadata, c.source) for c in before.cells]


def test_sync_keeps_the_cells_first_comment_line(tmp_path) -> None:
    copy = tmp_path / "00_quickstart.ipynb"
    shutil.copy(_path("00_quickstart"), copy)
    _edit_cell(copy, PARAMETERS_HEADER, "# my parameters")
    assert sync_parameters_cell(copy, QuickstartConfig) is False  # the header is the cell's own
    _edit_cell(copy, "epochs: int = 5", "epochs: int = 4")
    assert sync_parameters_cell(copy, QuickstartConfig) is True
    nb = json.loads(copy.read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert "".join(cell["source"]).splitlines()[0] == "# my parameters"
    assert cell["outputs"] == [] and cell["execution_count"] is None


def test_generated_cell_renders_bool_or_str_as_a_string_papermill_can_type() -> None:
    text = parameters_cell(QuickstartConfig)
    assert text.splitlines()[0] == PARAMETERS_HEADER
    assert 'pretrained: str = "true"  # ' in text and 'interactive: str = "auto"  # ' in text
    assert "lr: float = 2e-3  # peak learning rate" in text
    cfg = QuickstartConfig.from_params({"pretrained": "true", "interactive": "auto"})
    assert cfg.pretrained is True and cfg.interactive == "auto"
    assert QuickstartConfig.from_params({"pretrained": "false", "interactive": "false"}).interactive is False


def test_float_literals_read_back_exactly() -> None:
    from lesionkit.notebook.cell import _float_literal

    for x in (2e-3, 1.2009e-4, 3.3445e-5, 9.669e-4, 2.08e-5, 1e-5, 0.15, 0.0, 1.0, 1 / 3, 12345.678):
        assert float(_float_literal(x)) == x
    assert (_float_literal(1e-4), _float_literal(0.05)) == ("1e-4", "0.05")


def test_parser_refuses_what_is_not_a_parameter_line(tmp_path) -> None:
    for old, new, message in [("epochs: int = 5", "epochs: int = 2 + 3", "not given a literal"),
                              ("tta: bool = True", "print(1)", "not a `name: type = literal` assignment"),
                              ("max_images: int = 0", "max_images: int = 0\nmax_images: int = 1", "assigned twice")]:
        copy = tmp_path / "nb.ipynb"
        shutil.copy(_path("00_quickstart"), copy)
        _edit_cell(copy, old, new)
        with pytest.raises(ValueError, match=message):
            parameters_cell_values(copy)


def test_interactive_accepts_true_false_auto(monkeypatch) -> None:
    from lesionkit.utils import kernel

    for value, expected in (("true", True), (False, False), ("AUTO", "AUTO"), ("auto", "auto")):
        assert TrainConfig.from_params({"interactive": value}).interactive == expected
    with pytest.raises(ConfigError, match="interactive='sometimes': give true, false or auto"):
        TrainConfig.from_params({"interactive": "sometimes"})
    assert TrainConfig(interactive=True).is_interactive is True
    assert TrainConfig(interactive=False).is_interactive is False
    monkeypatch.setattr(kernel, "in_live_kernel", lambda: True)
    assert TrainConfig().is_interactive is True
    monkeypatch.setattr(kernel, "in_live_kernel", lambda: False)
    assert TrainConfig().is_interactive is False


def test_resume_and_split_from_are_declared_everywhere() -> None:
    """Every training notebook can resume and reuse a split (evaluate.ipynb trains nothing); all have interactive."""
    for name in NOTEBOOKS:
        fields = {f.name: f for f in dataclasses.fields(notebook_config(name))}
        assert fields["interactive"].default == "auto" and fields["smoke"].default is False
        if name != "evaluate":
            assert fields["resume"].default == "" and fields["split_from"].default == ""


def test_quickstart_max_images_subsamples(synthetic_dir) -> None:
    from lesionkit.papers.quickstart.recipe import load_data

    full = load_data(QuickstartConfig(data_dir=str(synthetic_dir)))
    part = load_data(QuickstartConfig(data_dir=str(synthetic_dir), max_images=len(full) // 3))
    assert len(part) < len(full)
    assert set(part.df["lesion_id"]) < set(full.df["lesion_id"])
    assert part.df.groupby("lesion_id").size().to_dict() == \
        full.df[full.df["lesion_id"].isin(set(part.df["lesion_id"]))].groupby("lesion_id").size().to_dict()


def test_public_names_resolve() -> None:
    assert lesionkit.RunConfig is TrainConfig and lesionkit.TrainConfig is TrainConfig
    unresolved = []
    for name in lesionkit.__dir__():
        try:
            getattr(lesionkit, name)
        except (AttributeError, ImportError) as err:
            unresolved.append(f"{name}: {err!r}")
    assert not unresolved, unresolved


@pytest.mark.parametrize("name", sorted(NOTEBOOK_CONFIGS))
def test_papermill_itself_reads_every_parameter(name: str) -> None:
    """papermill's own parser (what `-p` injection and `--help-notebook` use) must parse every line of the cell:
    a help comment holding '=' made it skip the line ("Unable to parse line") and warn "unknown parameter"."""
    import papermill as pm

    found = pm.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb"))
    assert list(found) == [f.name for f in notebook_config(name).cell_fields()]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_config_cell_does_not_rebind_a_parameter(name: str) -> None:
    """The config cell reads the parameters cell's names from the namespace: an import or assignment of one of
    them before start() (`from lesionkit.papers.common import split`) would replace its value."""
    import ast

    cells = json.loads(_path(name).read_text())["cells"]
    config = next("".join(c["source"]) for c in cells if "= start(" in "".join(c["source"]))
    bound = {(a.asname or a.name).split(".")[0] for n in ast.walk(ast.parse(config))
             if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    bound |= {n.id for n in ast.walk(ast.parse(config)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assert not bound & set(parameters_cell_values(_path(name))), f"{name}: config cell rebinds a parameter"
