"""Bad input, round three (issue 31), the data layer: symbolic links to image folders are followed by every reader
and by presize, an unreadable folder or table is named as unreadable (not as missing files), `data check` reads a
test-only official download and refuses an empty path or an image file, and the large-image note is true per
format."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import TEST18, official_test_download, refuse_listing
from lesionkit.data import load_dataset
from lesionkit.data.check import check_dataset, large_image_note
from lesionkit.data.errors import DataError
from lesionkit.data.presize import image_files
from lesionkit.data.readers.common import index_images, read_csv

def test_a_symlinked_image_folder_of_a_test_download_is_read_in_full(tmp_path):
    root = official_test_download(tmp_path / "download", tmp_path / "elsewhere" / "images")
    ds = load_dataset(root, parts=("test",))
    assert ds.df["image_id"].tolist() == list(TEST18)
    assert ds.df["path"].map(lambda p: Path(p).is_file()).all()


def test_index_images_follows_links_and_visits_a_loop_once(tmp_path):
    (tmp_path / "real").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "real" / "a.png")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "back").symlink_to(tmp_path / "data", target_is_directory=True)  # a loop
    assert set(index_images(tmp_path / "data")) == {"a"}


def test_presize_walks_linked_folders_too(tmp_path):
    (tmp_path / "real").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "real" / "a.jpg")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    assert [p.name for p in image_files(tmp_path / "data")] == ["a.jpg"]


def test_data_check_reads_a_test_only_official_download(tmp_path):
    root = official_test_download(tmp_path / "download", tmp_path / "images")
    report = check_dataset(root, full=False)
    assert report.ok, report.render()
    assert report.n_rows == 3 and any("checked the official part(s) present: test" in n for n in report.notes)


def test_an_unreadable_image_folder_is_reported_as_unreadable_not_missing(tmp_path, monkeypatch):
    root = official_test_download(tmp_path / "download", tmp_path / "images")
    refuse_listing(tmp_path / "images", monkeypatch)
    try:
        with pytest.raises(DataError, match=r"cannot read the folder .*images") as err:
            load_dataset(root, parts=("test",))
        assert "missing='drop'" not in str(err.value)
    finally:
        (tmp_path / "images").chmod(0o755)


def test_an_unreadable_metadata_csv_names_the_file(tmp_path, monkeypatch):
    csv = tmp_path / "HAM10000_metadata.csv"
    csv.write_text("lesion_id,image_id,dx\n")

    def refuse(*args: object, **kw: object) -> None:
        raise PermissionError(13, "Permission denied", str(csv))

    monkeypatch.setattr(pd, "read_csv", refuse)
    with pytest.raises(DataError, match=r"HAM10000_metadata.csv: the table cannot be read \(Permission denied\)"):
        read_csv(csv)


def test_data_check_refuses_an_empty_path_instead_of_the_working_directory(tmp_path, monkeypatch, synthetic_dir):
    (tmp_path / "copy").symlink_to(synthetic_dir, target_is_directory=True)  # a dataset one folder down
    monkeypatch.chdir(tmp_path)
    report = check_dataset("", full=False)
    assert not report.ok and report.n_rows == 0
    assert "empty dataset path" in report.errors[0]


def test_data_check_of_an_image_file_says_so(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "some.jpg")
    report = check_dataset(tmp_path / "some.jpg")
    expected = f"{tmp_path / 'some.jpg'}: an image file, not a dataset; pass the dataset's folder or its CSV table"
    assert report.errors == [expected]


def test_data_check_names_an_unknown_reader_option(synthetic_dir):
    report = check_dataset(synthetic_dir, full=False, bogus=1)
    assert not report.ok and "reader option(s) ['bogus'] unknown to the read_synthetic reader" in report.errors[0]


@pytest.mark.parametrize("fmt, reduced", [("JPEG", True), ("PNG", False), ("TIFF", False)])
def test_the_large_image_note_is_true_per_format(fmt, reduced):
    note = large_image_note(fmt, 19000, 19000)
    assert ("decoded at a reduced size" in note) == reduced
    assert reduced or "decoded in full (about 1.1 GB" in note


def test_an_unreadable_lost_and_found_at_a_mount_root_is_passed_over(tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "images" / "a.png")
    (tmp_path / "lost+found").mkdir()
    refuse_listing(tmp_path / "lost+found", monkeypatch)
    try:
        assert set(index_images(tmp_path)) == {"a"}
    finally:
        (tmp_path / "lost+found").chmod(0o755)
