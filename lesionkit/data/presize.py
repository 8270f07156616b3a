"""A one-time pre-resized copy of large originals, so a 6000x4000 dermoscopy JPEG costs what a 512 px file costs
from the second epoch on.

`load_rgb(min_side=...)` already decodes JPEGs at a reduced DCT scale, but that still reads and entropy-decodes the
whole 5-10 MB file every epoch, and PNG/TIFF originals get no reduced decode at all. The cache stores each large
image once, upright, in RGB, with its shorter side equal to `size`:

    $LESIONKIT_CACHE/presized/<size>/<stem>-<hash12>.jpg   (JPEG quality 95 for JPEG sources, PNG otherwise)

The hash covers the resolved source path, its mtime (ns) and byte size, and `size`: a replaced or edited source
gets a new entry (the refresh rule) and the stale one is simply no longer read (delete the folder to reclaim it).
Entries are written to a temporary file and renamed into place, so a killed run or two loader workers writing the
same entry never leave a half-written image behind.

`python -m lesionkit data presize DIR --size 512` fills the cache ahead of training; `presized()` (what
`ReadImage(presize=...)` calls) fills it lazily otherwise.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from PIL import Image

from lesionkit.data.errors import DataError
from lesionkit.data.images import IMAGE_EXTENSIONS, load_rgb, open_image
from lesionkit.utils.files import walk_files
from lesionkit.utils.paths import cache_root

_JPEG_SUFFIXES = (".jpg", ".jpeg")


def cache_dir(size: int, root: str | Path | None = None) -> Path:
    """`<root>/presized/<size>`; root defaults to $LESIONKIT_CACHE, else ~/.cache/lesionkit (as the synthetic set)."""
    if root is None:
        root = cache_root()
    return Path(root).expanduser() / "presized" / str(int(size))


def cached_path(src: str | Path, size: int, root: str | Path | None = None) -> Path:
    """Where the entry for `src` at `size` lives (whether or not it exists yet).

    Named `<stem>-<hash12>` so a cache folder stays readable; the hash of (resolved path, mtime_ns, byte size, size)
    changes whenever the source does, which is how a changed source is refreshed."""
    src = Path(src)
    suffix = ".jpg" if src.suffix.lower() in _JPEG_SUFFIXES else ".png"
    return cache_dir(size, root) / f"{src.stem}-{source_digest(src, int(size))}{suffix}"


def source_digest(src: str | Path, *extra: Any) -> str:
    """12 hex digits of (resolved path, mtime_ns, byte size, *extra): a cache entry's name changes whenever its
    source does (the presized and the hair-free caches)."""
    src = Path(src)
    try:
        st = os.stat(src)
    except FileNotFoundError:
        open_image(src)  # raises the library's MissingFileError, with its hint
        raise
    key = "\0".join([str(src.resolve()), str(st.st_mtime_ns), str(st.st_size), *map(str, extra)]).encode()
    return hashlib.blake2b(key, digest_size=6).hexdigest()


def _shorter_side(src: str | Path) -> int:
    with open_image(src) as img:  # header only
        return min(img.size)


def write_image_atomic(img: Image.Image, dest: Path) -> None:
    """Save `img` at `dest` (JPEG q95 for .jpg, else by suffix) through a temporary file, so no reader sees half."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}-", suffix=dest.suffix)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as f:
            if dest.suffix == ".jpg":
                img.save(f, format="JPEG", quality=95)
            else:
                img.save(f, format="PNG")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def presize_one(src: str | Path, size: int, root: str | Path | None = None) -> Path:
    """The cache entry for `src` (written now unless it exists), with its shorter side exactly `size`.

    Images whose shorter side is already <= `size` are never upscaled or copied: the source path is returned.
    Decoding goes through `load_rgb`, so the entry is upright (EXIF applied) 8-bit RGB whatever the source mode."""
    src = Path(src)
    if _shorter_side(src) <= size:
        return src
    dest = cached_path(src, size, root)
    if dest.exists():
        return dest
    img = load_rgb(src, min_side=size)  # reduced DCT decode + reduce to about 2 x size, then a proper filter
    w, h = img.size
    if min(w, h) > size:
        new = (size, max(1, round(h * size / w))) if w <= h else (max(1, round(w * size / h)), size)
        img = img.resize(new, Image.LANCZOS)
    write_image_atomic(img, dest)
    return dest


AUTO_MIN = 512  # the auto cache size for training sizes up to 256 (the CLI's default, so a prefilled cache is used)


def auto_size(min_side: int | None) -> int | None:
    """The cache size the loaders use by default for a training size: max(512, 2 x min_side), or None (read the
    originals) without a training size or with ``LESIONKIT_PRESIZE=off``. Only images whose shorter side exceeds
    twice that (over 1024 px for training at 256 px or less) are ever cached, so 224/512 px datasets read as they
    are."""
    if not min_side or os.environ.get("LESIONKIT_PRESIZE", "").strip().lower() in ("off", "0", "false", "no"):
        return None
    return max(AUTO_MIN, 2 * int(min_side))


def worth_caching(src: str | Path, size: int) -> bool:
    """True when the source's shorter side is over 2 x `size`: below that `load_rgb`'s reduced decode is already
    about as cheap as reading a cache entry, so the loader and the CLI leave such images alone."""
    return _shorter_side(src) > 2 * size


def presized(src: str | Path, size: int, root: str | Path | None = None, create: bool = True) -> Path:
    """What the loader reads for `src`: its cache entry when the image is large (shorter side > 2 x size), created
    on first use when `create`; otherwise (small, or not cached and create=False) the source path itself."""
    src = Path(src)
    dest = cached_path(src, size, root)
    if dest.exists():
        return dest
    if not worth_caching(src, size):
        return src
    return presize_one(src, size, root) if create else src


@dataclass
class PresizeSummary:
    """What `presize_dir` did: entries written now, already cached, sources left alone (small) and failures."""
    size: int
    cache: str
    written: int = 0
    cached: int = 0
    small: int = 0
    failed: list[str] = field(default_factory=list)
    source_bytes: int = 0  # of the sources that have an entry
    cache_bytes: int = 0  # of their entries
    seconds: float = 0.0

    def render(self) -> str:
        mb = lambda n: f"{n / 1e6:.1f} MB"  # noqa: E731
        lines = [f"lesionkit data presize: size {self.size} -> {self.cache}",
                 f"  written {self.written}, already cached {self.cached}, small (read as they are) {self.small}, "
                 f"failed {len(self.failed)}",
                 f"  sources {mb(self.source_bytes)} -> cache {mb(self.cache_bytes)} in {self.seconds:.1f} s"]
        lines += [f"  FAILED: {m}" for m in self.failed]
        return "\n".join(lines)


def image_files(folder: str | Path, exclude: str | Path | None = None) -> list[Path]:
    """Every image file under `folder` (IMAGE_EXTENSIONS, any case), sorted, skipping anything under `exclude`."""
    skip = Path(exclude).resolve() if exclude is not None else None
    out = []
    for dirpath, names in walk_files(folder):  # symbolic links to folders followed, as the readers do
        for p in (Path(dirpath) / n for n in names):
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                if skip is None or not p.resolve().is_relative_to(skip):
                    out.append(p)
    return sorted(out)


def presize_dir(folder_or_paths: str | Path | Iterable[str | Path], size: int = 512,
                root: str | Path | None = None, workers: int | None = None) -> PresizeSummary:
    """Fill the cache for every image in a folder (recursively) or a list of paths; threads, as Pillow releases the
    GIL while decoding, resizing and encoding. Unreadable files are listed in `failed`, not raised.
    Stale entries (of sources changed since) are not pruned: nothing records which source an entry came from."""
    t0 = time.perf_counter()
    out = cache_dir(size, root)
    if isinstance(folder_or_paths, (str, Path)):
        paths = image_files(folder_or_paths, exclude=out)
    else:
        paths = [Path(p) for p in folder_or_paths]
    summary = PresizeSummary(size, str(out))

    def one(src: Path) -> tuple[str, Path | str]:
        try:
            if not worth_caching(src, size):
                return "small", src
            dest = cached_path(src, size, root)
            if dest.exists():
                return "cached", dest
            return "written", presize_one(src, size, root)
        except (DataError, OSError) as e:
            return "failed", str(e)

    n = workers if workers is not None else min(4, os.cpu_count() or 1)
    bomb_limit = Image.MAX_IMAGE_PIXELS  # open_image swaps this global per call: threads could leave it off
    with ThreadPoolExecutor(max(1, n)) as pool:
        for src, (kind, result) in zip(paths, pool.map(one, paths)):
            if kind == "failed":
                summary.failed.append(str(result))
                continue
            setattr(summary, kind, getattr(summary, kind) + 1)
            if kind != "small":
                summary.source_bytes += os.path.getsize(src)
                summary.cache_bytes += os.path.getsize(result)
    Image.MAX_IMAGE_PIXELS = bomb_limit
    summary.seconds = time.perf_counter() - t0
    return summary
