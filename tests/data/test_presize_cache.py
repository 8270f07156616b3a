"""The pre-resized image cache (lesionkit.data.presize): what training sees from the cache matches what it sees
from the original, a changed source gets a new entry, small images are read as they are, the CLI fills the cache
once, and ReadImage / image_dls read through it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lesionkit.__main__ import main as lesionkit_main
from lesionkit.data.images import load_rgb
from lesionkit.data.presize import cache_dir, cached_path, presize_one, presized

SIZE = 256


def make_image(path: Path, w: int = 2400, h: int = 1600, seed: int = 0, **save: object) -> Path:
    """Smooth gradients plus filled ellipses (edges where resampling differences show), saved quality 95."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.stack([200 * x / w + 30, 150 + 60 * np.sin(3 * y / h + seed), 120 * (x + y) / (w + h) + 60], -1)
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    draw, rng = ImageDraw.Draw(img), np.random.default_rng(seed)
    for _ in range(12):
        cx, cy = int(rng.integers(w // 10, w - w // 10)), int(rng.integers(h // 10, h - h // 10))
        r = int(rng.integers(w // 60, w // 8))
        draw.ellipse([cx - r, cy - 0.7 * r, cx + r, cy + 0.7 * r], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img.save(path, **({"quality": 95} if path.suffix == ".jpg" else {}), **save)
    return path


def training_view(path: Path, size: int = SIZE) -> np.ndarray:
    """What the loader hands the model: the robust decode at min_side=size, squished to size x size."""
    return np.asarray(load_rgb(path, min_side=size).resize((size, size), Image.BILINEAR), dtype=np.float32)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cached_image_trains_like_the_original(tmp_path, cache):
    src = make_image(tmp_path / "big.jpg")
    entry = presized(src, SIZE)
    assert entry != src and entry.parent == cache / "presized" / str(SIZE) and entry.is_file()
    assert entry.name.startswith("big-") and entry.suffix == ".jpg"
    with Image.open(entry) as im:
        assert im.size == (384, 256) and im.mode == "RGB" and im.format == "JPEG"
    diff = np.abs(training_view(entry) - training_view(src)).mean()
    assert diff < 2.0, diff  # measured 0.93 levels (of 255): the cache costs no visible detail at training size
    assert presized(src, SIZE) == entry  # idempotent: the second call finds it


def test_entry_is_upright_rgb_and_png_for_lossless_sources(tmp_path):
    """An EXIF-rotated RGBA PNG: the entry is PNG, RGB, upright (portrait), shorter side exactly `size`."""
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees
    src = make_image(tmp_path / "rot.png", 1800, 1200)
    Image.open(src).convert("RGBA").save(src, exif=exif)
    entry = presize_one(src, 200)
    with Image.open(entry) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (200, 300)
    upright = np.asarray(load_rgb(src).resize((200, 300), Image.LANCZOS), dtype=np.float32)
    assert np.abs(np.asarray(Image.open(entry), dtype=np.float32) - upright).mean() < 2.0


def test_changed_source_gets_a_new_entry(tmp_path):
    src = make_image(tmp_path / "img.jpg", seed=0)
    old = presized(src, SIZE)
    make_image(src, seed=1)  # new content under the same name
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    new = presized(src, SIZE)
    assert new != old and new.is_file() and cached_path(src, SIZE) == new
    now = training_view(src)
    assert np.abs(training_view(new) - now).mean() < 2.0
    assert np.abs(training_view(old) - now).mean() > 10.0  # the old entry really shows something else


def test_small_images_are_read_as_they_are(tmp_path, cache):
    mid = make_image(tmp_path / "mid.jpg", 700, 500)  # shorter side 500 <= 2 x 256: not worth a cache entry
    tiny = make_image(tmp_path / "tiny.png", 300, 200)  # shorter side 200 <= 256: never upscaled
    assert presized(mid, SIZE) == mid and presized(tiny, SIZE) == tiny
    assert presize_one(tiny, SIZE) == tiny
    assert not cache_dir(SIZE).exists() or not any(cache_dir(SIZE).iterdir())
    big = make_image(tmp_path / "big.jpg", 1200, 800)
    assert presized(big, SIZE, create=False) == big and not cached_path(big, SIZE).exists()


def test_cli_fills_the_cache_once(tmp_path, capsys):
    data, root = tmp_path / "data", tmp_path / "elsewhere"
    (data / "nevus").mkdir(parents=True)
    make_image(data / "nevus" / "a.jpg", 1200, 800)
    make_image(data / "b.JPG", 900, 1300, seed=2)
    make_image(data / "small.png", 300, 200)
    (data / "notes.txt").write_text("not an image")
    assert lesionkit_main(["data", "presize", str(data), "--size", "200", "--cache", str(root)]) == 0
    out = capsys.readouterr().out
    assert "written 2, already cached 0, small (read as they are) 1, failed 0" in out, out
    entries = sorted(p.name for p in (root / "presized" / "200").iterdir())
    assert len(entries) == 2 and entries[0].startswith("a-") and entries[1].startswith("b-"), entries
    assert lesionkit_main(["data", "presize", str(data), "--size", "200", "--cache", str(root)]) == 0
    assert "written 0, already cached 2, small (read as they are) 1" in capsys.readouterr().out
    assert presized(data / "b.JPG", 200, root=root, create=False).parent == root / "presized" / "200"


def test_cli_missing_folder_and_check_still_there(tmp_path, capsys):
    assert lesionkit_main(["data", "presize", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such folder" in err and len(err.splitlines()) == 1
    assert lesionkit_main(["data", "check", str(tmp_path / "nope")]) == 1
    assert "FAILED" in capsys.readouterr().out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not a jpeg at all")
    assert lesionkit_main(["data", "presize", str(bad)]) == 1  # listed, not a traceback
    out = capsys.readouterr().out
    assert "failed 1" in out and "FAILED: " in out and "broken.jpg" in out, out


def test_read_image_reads_through_the_cache(tmp_path):
    from lesionkit.data.loaders import ReadImage

    src = make_image(tmp_path / "big.jpg", 1200, 800)
    entry = cached_path(src, 256)
    assert not entry.exists()
    out = np.asarray(ReadImage(128, presize=256)({"path": str(src)}))
    assert entry.is_file()
    assert np.array_equal(out, np.asarray(ReadImage(128)(entry)))
    assert out.shape[:2] == (256, 384)  # the cache's size, not the reduced decode of the original (400 x 600)
    with pytest.raises(ValueError, match="upscaled"):
        ReadImage(256, presize=128)


def test_image_dls_passes_presize_through(tmp_path, cache):
    from lesionkit.data import load_dataset
    from lesionkit.data.loaders import image_dls

    for i, cls in enumerate(["benign", "benign", "malignant", "malignant"]):
        (tmp_path / "ds" / cls).mkdir(parents=True, exist_ok=True)
        make_image(tmp_path / "ds" / cls / f"im{i}.jpg", 1200, 800, seed=i)
    ds = load_dataset(tmp_path / "ds")
    kw = dict(size=64, bs=2, preset="none", norm=None)
    plain = image_dls(ds, [0, 2], [1, 3], **kw).valid.one_batch()[0].cpu()
    assert not cache_dir(128).exists() and not cache_dir(512).exists()  # 1200x800: read as they are
    cached = image_dls(ds, [0, 2], [1, 3], presize=128, **kw).valid.one_batch()[0].cpu()
    stems = {p.name.split("-")[0] for p in cache_dir(128).iterdir()}
    assert {"im1", "im3"} <= stems, stems  # the two validation images (fastai's setup also reads a training one)
    assert (cached - plain).abs().mean().item() < 2.0 / 255


def test_loaders_cache_only_large_originals_by_default_and_can_be_switched_off(tmp_path, cache, monkeypatch):
    from lesionkit.data.loaders import ReadImage
    from lesionkit.data.presize import auto_size

    assert auto_size(128) == 512 and auto_size(384) == 768 and auto_size(None) is None
    small, large = make_image(tmp_path / "small.jpg", 1500, 1000), make_image(tmp_path / "large.jpg", 1650, 1100)
    read = ReadImage(128)  # presize="auto": a 512 cache, for originals over 1024 px on the shorter side
    read({"path": str(small)})
    assert not cache_dir(512).exists(), "a 1000 px original is read as it is"
    read({"path": str(large)})
    assert cached_path(large, 512).is_file()
    monkeypatch.setenv("LESIONKIT_PRESIZE", "off")
    assert ReadImage(128).presize is None
