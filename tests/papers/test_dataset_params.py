"""Bad input, round three (issue 31), the config cell: every dataset-folder parameter is checked before anything
runs (an empty data_dir is refused, never read as the working directory; test_dir and map_dir are read in full, so
a bad one stops the run before its first epoch, naming the parameter), fractions are checked with the user's own
values, split_from must hold a split."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TEST18, official_test_download, refuse_listing
from lesionkit.config import ConfigError
from lesionkit.data.readers.ham10000 import HAM_CLASSES
from lesionkit.papers.attention_b3.recipe import AttentionB3Config
from lesionkit.papers.common import load_external, resolve_data_dir
from lesionkit.papers.compare.recipe import CompareConfig
from lesionkit.papers.quickstart.recipe import QuickstartConfig
from lesionkit.records.runs import start_run


def refusal(cls: type, **params: object) -> str:
    with pytest.raises(ConfigError) as err:
        cls.from_params(params)
    return str(err.value)


def test_an_empty_data_dir_is_refused_not_resolved_to_the_working_directory(tmp_path, monkeypatch, synthetic_dir):
    (tmp_path / "copy").symlink_to(synthetic_dir, target_is_directory=True)  # a dataset lying one folder down
    monkeypatch.chdir(tmp_path)
    assert "data_dir '' is empty (an unset shell variable?)" in refusal(QuickstartConfig, data_dir="")
    assert "data_dir '  ' is empty" in refusal(QuickstartConfig, data_dir="  ")
    with pytest.raises(ConfigError, match="is empty"):
        resolve_data_dir("")


@pytest.mark.parametrize("name", ["test_dir", "sym_data_dir", "seg_data_dir", "map_dir"])
def test_a_blank_optional_folder_is_refused_and_an_empty_one_means_unset(name):
    assert f"{name} ' ' is empty" in refusal(CompareConfig, **{name: " "})
    assert getattr(CompareConfig.from_params({name: ""}), name) == ""


def test_a_symlinked_official_test_download_passes_and_is_scored_in_full(tmp_path):
    root = official_test_download(tmp_path / "download", tmp_path / "elsewhere")
    cfg = QuickstartConfig.from_params({"test_dir": str(root)})
    ext = load_external(cfg, list(HAM_CLASSES))
    assert ext.df["image_id"].tolist() == list(TEST18) and len(ext) == 3


def test_a_test_dir_without_its_images_stops_the_run_at_its_config_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    root = official_test_download(tmp_path / "download", tmp_path / "elsewhere")
    for f in (tmp_path / "elsewhere").iterdir():
        f.unlink()
    with pytest.raises(ConfigError, match=r"test_dir '.*download' cannot be used: .*no image file found"):
        start_run("00_quickstart", QuickstartConfig, {"test_dir": str(root)})
    (record,) = (tmp_path / "runs" / "00_quickstart").iterdir()
    assert json.loads((record / "run.json").read_text())["status"] == "failed"
    assert not (record / "history.csv").exists() and not (record / "config.yaml").exists()  # no epoch ran


def test_an_unreadable_test_dir_is_named_before_the_first_epoch(tmp_path, monkeypatch):
    root = official_test_download(tmp_path / "download", tmp_path / "elsewhere")
    refuse_listing(tmp_path / "elsewhere", monkeypatch)
    try:
        message = refusal(QuickstartConfig, test_dir=str(root))
    finally:
        (tmp_path / "elsewhere").chmod(0o755)
    assert "test_dir '" in message and "cannot read the folder" in message


def test_a_map_dir_of_no_known_layout_is_refused_by_name(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    assert "map_dir '" in refusal(CompareConfig, map_dir=str(tmp_path))
    assert "map_dir '/no/such/folder' does not exist" in refusal(CompareConfig, map_dir="/no/such/folder")


def test_fractions_that_leave_nothing_to_train_are_named_with_the_users_values():
    message = refusal(QuickstartConfig, valid_frac=0.5, test_frac=0.5)
    assert "valid_frac=0.5 and test_frac=0.5 leave no lesions to train on" in message
    assert "1.0" not in message.split("Valid parameters")[0]
    assert AttentionB3Config.from_params({"valid_frac": 0.5, "test_frac": 0.5}).valid_frac == 0.5  # of the rest


def test_split_from_must_hold_a_split(tmp_path):
    assert "split_from=" in refusal(QuickstartConfig, split_from=str(tmp_path))
    (tmp_path / "splits.csv").write_text("image_id,fold,part\n")
    assert QuickstartConfig.from_params({"split_from": str(tmp_path)}).split_from == str(tmp_path)


def test_an_existing_data_dir_still_passes(synthetic_dir):
    assert Path(QuickstartConfig.from_params({"data_dir": str(synthetic_dir)}).data_dir) == synthetic_dir
