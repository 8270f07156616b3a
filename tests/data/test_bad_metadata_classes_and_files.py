"""Bad input, round two (issue 13): each case is refused by name with its fix, or handled, never silent, never a
hang; and `data check` lists all of them from one folder in one run."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data import load_dataset
from lesionkit.data.check import check_dataset
from lesionkit.data.errors import DataError, ImageDecodeError, MetadataValueError, TooFewClassesError
from lesionkit.data.images import load_rgb, quick_check
from lesionkit.data.metadata import MetaEncoder


def _folder(root: Path, labels: list[str], ages: list | None = None, sexes: list | None = None,
            layout: str = "csv", encoding: str = "utf-8", site: str = "back") -> Path:
    """A generic labels.csv folder (image_id, label, ...) or a HAM10000 one (lesion_id, image_id, dx, ...)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    n = len(labels)
    for i in range(n):
        Image.new("RGB", (32, 32), (10 * i % 256, 90, 160)).save(root / "images" / f"im{i}.jpg")
    df = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "age": ages or [50.0] * n,
                       "sex": sexes or ["male"] * n, "localization": [site] * n,
                       "filename": [f"images/im{i}.jpg" for i in range(n)]})
    if layout == "ham":
        df.insert(0, "lesion_id", [f"HAM_{i}" for i in range(n)])
        df.insert(2, "dx", labels)
        df.insert(3, "dx_type", "histo")
    else:
        df.insert(1, "label", labels)
    df.to_csv(root / "labels.csv", index=False, encoding=encoding)
    return root


# ---- latin-1 CSV --------------------------------------------------------------------------------------------------

def test_latin1_csv_names_file_line_column_and_the_fix(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel", "nv"])
    df = pd.read_csv(root / "labels.csv")
    df.loc[1, "localization"] = "épaule"
    df.to_csv(root / "labels.csv", index=False, encoding="latin-1")
    with pytest.raises(DataError, match=r"labels\.csv: not UTF-8 text: byte 0xe9 at line 3, column \d+ .*épaule.*"
                                        r"Re-save the file as UTF-8") as e:
        load_dataset(root)
    assert "UnicodeDecodeError" not in str(e.value)
    report = check_dataset(root)                            # noted, and the rest of the table is still checked
    assert any("not UTF-8" in m and "labels.csv" in m for m in report.errors) and report.n_rows == 3


# ---- relative paths -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["csv", "ham"])
def test_relative_dataset_path_is_not_doubled(tmp_path, monkeypatch, layout):
    _folder(tmp_path / "cases" / "x", ["nv", "mel", "nv", "mel"], layout=layout)
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("cases/x")
    assert len(ds) == 4 and all(Path(p).is_file() and Path(p).is_absolute() for p in ds.df.path)
    report = check_dataset("cases/x")
    assert report.ok, report.render()
    (tmp_path / "cases" / "x" / "labels.csv").write_text("")   # the real problem is now named, not hidden
    with pytest.raises(DataError, match=r"cases/x/labels\.csv: the CSV is empty"):
        load_dataset("cases/x")


# ---- impossible metadata ------------------------------------------------------------------------------------------

def test_impossible_ages_and_unknown_sexes_are_refused_naming_the_rows(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel", "nv", "mel"], ages=[-5, 999, 40, "forty"],
                   sexes=["male", "female", "M?", "unknown"])
    with pytest.raises(MetadataValueError) as e:
        load_dataset(root)
    msg = str(e.value)
    for needle in ("3 impossible age(s)", "line 2 (im0: '-5')", "line 3 (im1: '999')", "line 5 (im3: 'forty')",
                   "1 sex value(s)", "line 4 (im2: 'M?')", "bad_metadata='missing'"):
        assert needle in msg, msg
    with pytest.warns(UserWarning, match="treated as not recorded"):
        ds = load_dataset(root, bad_metadata="missing")
    assert ds.df.age.isna().tolist() == [True, True, False, True] and ds.df.sex.isna().tolist()[2:] == [True, True]
    feats = MetaEncoder().fit_transform(ds.df)
    assert feats[:, 1].min() >= 0 and feats[:, 1].max() <= 120 / 90    # no age/90 = 11.1 reaches a model
    assert any("impossible age" in m for m in check_dataset(root).errors)


def test_ages_at_the_range_ends_and_the_isic_coding_load(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel", "nv", "mel"], ages=[0, 85, 120, np.nan])
    assert load_dataset(root).df.age.tolist()[:3] == [0, 85, 120]


def test_unknown_site_is_warned_by_data_check_naming_the_rows(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel"], site="999")
    report = check_dataset(root)
    assert report.ok and any("site value(s) no known layout uses" in w and "im0: 999" in w for w in report.warnings)


# ---- one class ----------------------------------------------------------------------------------------------------

def test_single_class_generic_layout_is_refused(tmp_path):
    root = _folder(tmp_path / "ds", ["nv"] * 4)
    with pytest.raises(TooFewClassesError, match=r"class list is \['nv'\].*at least two classes"):
        load_dataset(root)
    assert any("at least two classes" in m for m in check_dataset(root).errors)


def test_single_class_ham_layout_is_refused_before_training(tmp_path):
    from lesionkit.papers.quickstart.recipe import QuickstartConfig
    from lesionkit.papers.common import load_data

    root = _folder(tmp_path / "ds", ["nv"] * 4, layout="ham")
    assert len(load_dataset(root).classes) == 7                   # the layout's 7 classes, one of them present
    with pytest.raises(TooFewClassesError, match=r"images of 1 class\(es\) only \(\{'nv': 4\}"):
        load_data(QuickstartConfig(data_dir=str(root)))
    report = check_dataset(root)
    assert not report.ok and any("1 class(es) only" in m for m in report.errors)


# ---- FIFO and other non-regular files ------------------------------------------------------------------------------

def test_fifo_named_like_an_image_is_refused_without_hanging(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel", "nv"])
    (root / "images" / "im1.jpg").unlink()
    os.mkfifo(root / "images" / "im1.jpg")
    with pytest.raises(DataError, match=r"not regular files.*im1\.jpg"):
        load_dataset(root)
    fifo_msg = quick_check(root / "images" / "im1.jpg")
    assert fifo_msg and "not a regular file" in fifo_msg
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "lesionkit", "data", "check", str(root)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "not regular files" in proc.stdout and "im1.jpg" in proc.stdout
    assert "not in the folder" not in proc.stdout and time.time() - t0 < 30


# ---- tiny images --------------------------------------------------------------------------------------------------

def test_one_pixel_image_is_refused_naming_it(tmp_path):
    root = _folder(tmp_path / "ds", ["nv", "mel", "nv"])
    Image.new("RGB", (1, 1), (200, 100, 50)).save(root / "images" / "im2.jpg")
    with pytest.raises(ImageDecodeError, match=r"im2\.jpg: 1x1 px is too small"):
        load_rgb(root / "images" / "im2.jpg")
    assert "too small" in quick_check(root / "images" / "im2.jpg")
    assert any("im2.jpg: 1x1 px is too small" in m for m in check_dataset(root).errors)


# ---- everything at once -------------------------------------------------------------------------------------------

def test_data_check_lists_every_round_two_case_in_one_run(tmp_path, monkeypatch):
    """One folder with all of them: a latin-1 CSV, opened by a relative path, one label, impossible ages and sexes,
    an unknown site, a FIFO and a 1x1 image: each reported, exit status 1, in under 10 s."""
    root = _folder(tmp_path / "cases" / "all", ["nv"] * 6, ages=[-5, 999, 40, 50, 60, 70],
                   sexes=["male", "female", "M?", "male", "male", "female"], site="épaule", encoding="latin-1")
    (root / "images" / "im3.jpg").unlink()
    os.mkfifo(root / "images" / "im3.jpg")
    Image.new("RGB", (1, 1)).save(root / "images" / "im4.jpg")
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "lesionkit", "data", "check", "cases/all"], capture_output=True,
                          text=True, timeout=60)
    elapsed = time.time() - t0
    out = proc.stdout
    expected = {"latin-1": "not UTF-8 text", "one class": "at least two classes", "ages": "2 impossible age(s)",
                "sex": "'M?'", "site": "site value(s) no known layout uses", "fifo": "not regular files",
                "1x1": "im4.jpg: 1x1 px is too small"}
    for what, needle in expected.items():
        assert needle in out, f"data check did not report {what!r}:\n{out}"
    assert "cases/all/cases/all" not in out and proc.returncode == 1
    assert elapsed < 10, f"data check took {elapsed:.1f} s"


def test_no_silent_warnings_on_a_clean_folder(tmp_path):
    root = _folder(tmp_path / "ok", ["nv", "mel", "bcc"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset(root)) == 3
