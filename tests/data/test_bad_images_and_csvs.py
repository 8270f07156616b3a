"""Every bad input of issue 3, generated in tmp_path: converted correctly or refused with an error naming it,
and `python -m lesionkit data check` lists all of them at once."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lesionkit.data import load_dataset
from lesionkit.cli.data import main as check_main
from lesionkit.data.check import check_dataset
from lesionkit.data.errors import (DuplicateIdError, ImageDecodeError, ImageTooLargeError, MissingColumnError,
                                   MissingFileError, UnknownLabelError, UnsafePathError)
from lesionkit.data.images import load_mask, load_rgb, quick_check
from lesionkit.data.metadata import MetaEncoder

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def write_images(d: Path) -> dict[str, Path]:
    """One file per image case; returns name -> path."""
    d.mkdir(parents=True, exist_ok=True)
    f = {k: d / v for k, v in dict(good="good.jpg", corrupt="corrupt.jpg", truncated="truncated.jpg",
                                   empty="empty.jpg", cmyk="cmyk.jpg", gray="gray.png", palette="palette.png",
                                   rgba="rgba.png", gray16="gray16.png", rgb16="rgb16.png", exif="exif.jpg",
                                   large="large.jpg").items()}
    good = np.zeros((48, 64, 3), np.uint8)
    good[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    Image.fromarray(good).save(f["good"], quality=95)
    f["corrupt"].write_bytes(b"this is not an image\x00" * 40)
    data = _jpeg_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
    f["truncated"].write_bytes(data[: len(data) // 2])
    f["empty"].write_bytes(b"")
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(f["cmyk"], quality=95)       # pure red in CMYK
    Image.new("L", (32, 32), 100).save(f["gray"])
    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(1, (16, 0, 32, 32))                                                  # left red, right blue
    pal.save(f["palette"])
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (255, 0, 0, 255)                                                # left opaque red
    rgba[:, 16:] = (0, 255, 0, 0)                                                  # right fully transparent
    Image.fromarray(rgba, "RGBA").save(f["rgba"])
    g16 = np.full((16, 16), 65535, np.uint16)
    g16[:, 8:] = 32768
    Image.fromarray(g16).save(f["gray16"])
    c16 = np.zeros((16, 16, 3), np.uint16)
    c16[..., 0], c16[..., 1], c16[..., 2] = 65535, 32768, 256                      # RGB
    cv2.imwrite(str(f["rgb16"]), c16[..., ::-1])
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20], stored[:, 20:] = RED, BLUE                                     # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6                                                               # display rotated 90 deg CW
    Image.fromarray(stored).save(f["exif"], quality=95, exif=exif)
    Image.new("L", (9500, 9500), 90).save(f["large"], quality=75)                  # 90 MP: above Pillow's warning
    return f


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_images(tmp_path_factory.mktemp("bad") / "images")


@pytest.mark.parametrize("name,reason", [("corrupt", "not a readable image"), ("truncated", "truncated"),
                                         ("empty", "empty \\(0 bytes\\)")])
def test_broken_images_are_refused_naming_the_file(files, name, reason):
    with pytest.raises(ImageDecodeError, match=reason) as e:
        load_rgb(files[name])
    assert str(files[name]) in str(e.value) and "data check" in str(e.value)
    assert str(files[name]) in quick_check(files[name])                # the cheap pre-flight catches it too


def test_missing_file_names_it(tmp_path):
    with pytest.raises(MissingFileError, match="nope.jpg"):
        load_rgb(tmp_path / "nope.jpg")


def _px(img: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    assert img.mode == "RGB"
    return img.getpixel(xy)


def test_colour_modes_are_converted_correctly(files):
    assert np.abs(np.subtract(_px(load_rgb(files["cmyk"]), (5, 5)), RED)).max() <= 3
    assert _px(load_rgb(files["gray"]), (5, 5)) == (100, 100, 100)
    pal = load_rgb(files["palette"])
    assert _px(pal, (2, 2)) == RED and _px(pal, (30, 2)) == BLUE
    rgba = load_rgb(files["rgba"])
    assert _px(rgba, (2, 2)) == RED and _px(rgba, (30, 2)) == (0, 0, 0)        # transparent -> background
    g16 = load_rgb(files["gray16"])
    assert _px(g16, (0, 0)) == (255, 255, 255) and _px(g16, (15, 0)) == (128, 128, 128)   # rescaled, not clipped
    assert _px(load_rgb(files["rgb16"]), (3, 3)) == (255, 128, 1)


def test_exif_rotation_is_applied(files):
    img = load_rgb(files["exif"])
    assert img.size == (20, 40)                                        # upright: portrait
    top, bottom = np.asarray(img)[5, 10], np.asarray(img)[35, 10]
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_very_large_image_decodes_reduced_or_is_refused(files):
    img = load_rgb(files["large"], min_side=224)                        # JPEG draft: never 90 MP in memory
    assert img.mode == "RGB" and 224 <= min(img.size) <= 4 * 224 and img.size[0] == img.size[1]
    assert abs(int(np.asarray(img).mean()) - 90) <= 2
    with pytest.raises(ImageTooLargeError, match=r"9500x9500 .* exceeds max_pixels"):
        load_rgb(files["large"], max_pixels=50_000_000)


def test_masks_binarised(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[2:6, 2:6] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    Image.fromarray(m > 0).save(tmp_path / "m1.png")                     # 1-bit, like PH2
    for p in ("m.png", "m1.png"):
        a = np.asarray(load_mask(tmp_path / p))
        assert set(np.unique(a)) == {0, 1} and a.sum() == 16


# ---- CSV problems ------------------------------------------------------------------------------------------------

HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "filename"]


def _ham_folder(root: Path, rows: list[list], extra: dict[str, list] | None = None) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=HAM_HEADER)
    for k, v in (extra or {}).items():
        df[k] = v
    for k, fn in enumerate(df.filename):
        p = root / str(fn)
        if str(fn).startswith("images/ok") and not p.exists():
            Image.new("RGB", (32, 32), (180, 120, 40 * k % 256)).save(p)      # distinct bytes per image
    df.to_csv(root / "labels.csv", index=False)
    return root


def _ok(i: int, dx: str = "nv", **kw) -> list:
    row = [f"HAM_{i}", f"ISIC_{i}", dx, "histo", 50.0, "male", "back", f"images/ok{i}.jpg"]
    for k, v in kw.items():
        row[HAM_HEADER.index(k)] = v
    return row


def test_csv_duplicate_ids_name_the_lines(tmp_path):
    root = _ham_folder(tmp_path, [_ok(1), _ok(2), _ok(3, image_id="ISIC_1")])
    with pytest.raises(DuplicateIdError, match=r"line 2 \(ISIC_1\), line 4 \(ISIC_1\)"):
        load_dataset(root)


def test_csv_unknown_label_names_the_row(tmp_path):
    root = _ham_folder(tmp_path, [_ok(1), _ok(2, dx="melanoma")])
    with pytest.raises(UnknownLabelError, match=r"line 3 \(ISIC_2: 'melanoma'\)"):
        load_dataset(root)


def test_csv_path_escaping_the_folder_is_refused(tmp_path):
    root = _ham_folder(tmp_path / "ds", [_ok(1), _ok(2, filename="../../etc/passwd")])
    with pytest.raises(UnsafePathError, match=r"line 3.*'\.\./\.\./etc/passwd'.*outside the data folder"):
        load_dataset(root)


def test_csv_file_missing_from_folder(tmp_path):
    root = _ham_folder(tmp_path, [_ok(1), _ok(2), _ok(3, filename="images/gone.jpg")])
    with pytest.raises(MissingFileError, match=r"line 4 .*gone\.jpg.*missing='drop'"):
        load_dataset(root)
    with pytest.warns(UserWarning, match="dropped 1 row"):
        assert len(load_dataset(root, missing="drop")) == 2


def test_csv_missing_or_renamed_column(tmp_path):
    root = _ham_folder(tmp_path, [_ok(1), _ok(2)])
    df = pd.read_csv(root / "labels.csv")
    df.drop(columns="dx").to_csv(root / "nolabel.csv", index=False)
    with pytest.raises(MissingColumnError, match="no column for 'label'"):
        load_dataset(root / "nolabel.csv")
    with pytest.raises(MissingColumnError, match="'mydx'"):
        load_dataset(root / "nolabel.csv", columns={"label": "mydx"})
    meta = df.drop(columns="filename").rename(columns={"dx": "diagnosis"})
    (root / "labels.csv").unlink()
    meta.to_csv(root / "HAM10000_metadata.csv", index=False)
    with pytest.raises(MissingColumnError, match=r"missing column\(s\) \['dx'\].*'diagnosis' looks like 'dx'"):
        load_dataset(root, "ham10000")


def test_nan_metadata_loads_and_encodes_without_nan(tmp_path):
    root = _ham_folder(tmp_path, [_ok(1), _ok(2, age=np.nan, sex=np.nan, localization=np.nan), _ok(3, sex="female")])
    ds = load_dataset(root)
    assert ds.df.age.isna().sum() == 1 and ds.df.sex.isna().sum() == 1 and ds.df.site.isna().sum() == 1
    feats = MetaEncoder().fit_transform(ds.df)
    assert np.isfinite(feats).all() and feats[1, 0] == -1 and feats[1, 1] == 0 and feats[1, -1] == 1


# ---- data check lists everything at once -------------------------------------------------------------------------

def test_data_check_reports_every_problem(files, tmp_path, capsys):
    root = tmp_path / "seeded"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, p in files.items():
        (root / "images" / p.name).write_bytes(p.read_bytes())
    (root / "images" / "copy.jpg").write_bytes(files["good"].read_bytes())       # same bytes, another id
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "good_mask.png")   # wrong size
    rows, leaky_split = [], []
    for i, name in enumerate(files):
        rows.append(_ok(i, filename=f"images/{files[name].name}", image_id=name))
        leaky_split.append("train")
    rows.append(_ok(90, image_id="copy", filename="images/copy.jpg"))
    rows.append(_ok(91, image_id="missing", filename="images/missing.jpg"))
    rows.append(_ok(92, image_id="good"))                                        # duplicate id
    rows.append(_ok(93, image_id="strange", dx="melanoma"))                     # unknown label
    rows.append(_ok(94, image_id="escape", filename="../../etc/passwd"))        # unsafe path
    rows.append(_ok(95, image_id="nanmeta", filename="images/good.jpg", age=np.nan, sex=np.nan))
    rows.append(_ok(96, image_id="leak", lesion_id="HAM_0", filename="images/good.jpg"))  # HAM_0 also in train
    leaky_split += ["train", "train", "train", "train", "train", "train", "test"]
    masks = [np.nan] * len(rows)
    masks[0] = "masks/good_mask.png"
    _ham_folder(root, rows, extra={"mask_filename": masks, "split": leaky_split})

    report = check_dataset(root)
    text = report.render()
    expected = {
        "corrupt": "corrupt.jpg: not a readable image", "truncated": "truncated.jpg: image data is truncated",
        "empty": "empty.jpg: file is empty", "missing": "missing.jpg", "duplicate id": "appear on several rows",
        "unknown label": "'melanoma'", "unsafe path": "../../etc/passwd", "nan metadata": "age missing (NaN)",
        "leak": "lesion_id(s) in more than one part: HAM_0", "same bytes": "identical image files",
        "mask size": "mask is 10x10", "cmyk": "CMYK image, converted", "gray": "grayscale image, converted",
        "palette": "palette image", "rgba": "RGBA image", "16-bit gray": "16-bit image",
        "16-bit colour": "16-bit colour PNG", "exif": "EXIF orientation 6", "large": "very large (9500x9500)",
        "counts": "class counts: akiec 0"}
    for what, needle in expected.items():
        assert needle in text, f"data check did not report {what!r}:\n{text}"
    assert not report.ok
    assert check_main(["check", str(root), "--quick"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_data_check_passes_a_clean_folder_and_reports_a_missing_column(tmp_path, capsys):
    root = _ham_folder(tmp_path / "clean", [_ok(1), _ok(2, dx="mel")])
    assert check_main(["check", str(root)]) == 0
    assert "OK: no errors" in capsys.readouterr().out
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_csv(root / "labels.csv").rename(columns={"dx": "diagnosis"}).drop(columns="filename").to_csv(
        bad / "HAM10000_metadata.csv", index=False)
    report = check_dataset(bad)
    assert not report.ok and "'diagnosis' looks like 'dx'" in report.errors[0]
