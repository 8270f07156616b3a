"""`python -m lesionkit data check DIR [--format F]`: read a dataset and list every problem at once.
(`python -m lesionkit data presize DIR --size 512` writes the pre-resized image cache: lesionkit.data.presize.)

Errors (exit status 1): unreadable tables, missing columns, duplicate ids, unknown labels, paths escaping the folder,
missing / empty / truncated / corrupt images and masks, masks whose size differs from their image, identical image
files under two ids, lesions or patients on two sides of an official split or fold. Warnings: missing metadata
(NaN age/sex/site), lesions with conflicting labels, empty classes. Notes: inputs that load fine after conversion
(CMYK, grayscale, palette, RGBA, 16-bit, EXIF-rotated, very large). Class counts are always printed.
Imports marked `# lazy` (scikit-learn, the readers) load only when a check runs.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import ImageOps

from lesionkit.data.errors import DataError
from lesionkit.data.images import DEFAULT_MAX_PIXELS, full_check, load_mask, open_image, quick_check
from lesionkit.data.metadata_values import describe_rows, unknown_sites
from lesionkit.data.problems import collect_problems
from lesionkit.data.table import LesionDataset, require_two_classes

LARGE_PIXELS = 50_000_000
_CONVERTED_MODES = {"CMYK": "CMYK", "L": "grayscale", "LA": "grayscale+alpha", "1": "1-bit", "P": "palette",
                    "RGBA": "RGBA", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit int",
                    "F": "float"}


@dataclass
class CheckReport:
    source: str
    fmt: str | None = None
    n_rows: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self) -> str:
        lines = [f"lesionkit data check: {self.source} (format {self.fmt}, {self.n_rows} rows)"]
        for title, items in (("ERRORS", self.errors), ("WARNINGS", self.warnings), ("NOTES", self.notes)):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines += [f"  - {m}" for m in items]
        if self.class_counts:
            lines.append("class counts: " + ", ".join(f"{k} {v}" for k, v in self.class_counts.items()))
        lines.append("OK: no errors" if self.ok else f"FAILED: {len(self.errors)} error(s)")
        return "\n".join(lines)


def _listing(items: Sequence[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" ... and {len(items) - limit} more" if len(items) > limit else "")


def _png_bit_depth(path: str) -> int:
    """Bit depth from the PNG IHDR chunk (Pillow reports 16-bit colour PNGs as plain 'RGB')."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 25 else 8


def _header_notes(path: str) -> list[str]:
    """What will be converted on load (from the header only)."""
    try:
        with open_image(path) as img:
            out = []
            if img.mode in _CONVERTED_MODES:
                out.append(f"{_CONVERTED_MODES[img.mode]} image, converted to 8-bit RGB")
            if img.format == "PNG" and img.mode in ("RGB", "RGBA") and _png_bit_depth(path) == 16:
                out.append("16-bit colour PNG, converted to 8-bit RGB")
            orient = img.getexif().get(0x0112, 1)
            if orient not in (0, 1):
                out.append(f"EXIF orientation {orient}, loaded upright")
            w, h = img.size
            if w * h > LARGE_PIXELS:
                out.append(large_image_note(img.format, w, h))
            return out
    except Exception:  # unreadable files are reported as errors elsewhere
        return []


def large_image_note(fmt: str | None, w: int, h: int) -> str:
    """What loading a very large image costs: only JPEG decodes straight to a reduced size (Pillow's draft mode);
    every other format is decoded in full, about 3 bytes a pixel, before it is shrunk."""
    if fmt == "JPEG":
        return f"very large ({w}x{h}), decoded at a reduced size for training"
    return (f"very large ({w}x{h} {fmt or 'image'}), decoded in full (about {w * h * 3 / 1e9:.1f} GB of memory per "
            "image) before it is reduced; `python -m lesionkit data presize DIR` caches small copies once")


def _check_images(ds: LesionDataset, report: CheckReport, full: bool, max_pixels: int) -> None:
    check = full_check if full else quick_check
    notes: dict[str, list[str]] = {}
    hashes: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for row in ds.df.itertuples():
        p = row.path
        if not isinstance(p, str):
            continue
        if not os.path.isfile(p):
            continue  # missing or not a regular file: already reported by the table check
        msg = check(p, max_pixels)
        if msg:
            report.errors.append(msg)
            continue
        for n in _header_notes(p):
            notes.setdefault(n, []).append(Path(p).name)
        with open(p, "rb") as f:
            hashes.setdefault(hashlib.blake2b(f.read(), digest_size=16).hexdigest(), []).append(row.image_id)
        with open_image(p, max_pixels) as img:
            sizes[row.image_id] = img.size
        m = row.mask_path
        if isinstance(m, str):
            mmsg = quick_check(m, max_pixels)
            if mmsg is None and full:
                try:
                    load_mask(m, max_pixels)
                except DataError as e:
                    mmsg = str(e)
            if mmsg:
                report.errors.append(f"mask {mmsg}")
                continue
            with open_image(m, max_pixels) as mimg:
                if mimg.size != sizes[row.image_id]:
                    with open_image(p, max_pixels) as img:
                        upright = (ImageOps.exif_transpose(img) or img).size
                    if mimg.size != upright:
                        report.errors.append(f"{m}: mask is {mimg.size[0]}x{mimg.size[1]} but its image {p} is "
                                             f"{upright[0]}x{upright[1]}; re-export the mask at the image size")
    for ids in hashes.values():
        if len(ids) > 1:
            report.errors.append(f"identical image files under different ids: {_listing(ids)}; keep one "
                                 "(duplicates inflate the score when they land on both sides of a split)")
    for note, files in notes.items():
        report.notes.append(f"{note}: {len(files)} file(s) ({_listing(files)})")


def _check_table(ds: LesionDataset, report: CheckReport) -> None:
    from lesionkit.data.splits import assert_no_group_leak  # lazy

    df = ds.df
    for col in ("age", "sex", "site"):
        if df[col].notna().any() and df[col].isna().any():
            ids = df.loc[df[col].isna(), "image_id"].tolist()
            report.warnings.append(f"{col} missing (NaN) for {len(ids)} row(s): {_listing(ids)}; "
                                   "the metadata encoder handles it explicitly (see lesionkit.data.metadata)")
    for col in ("split", "fold"):
        if col in df.columns and df[col].notna().any():
            parts = {str(k): np.flatnonzero((df[col] == k).to_numpy()) for k in df[col].dropna().unique()}
            try:
                assert_no_group_leak(df, parts, ("lesion_id", "patient_id"))
            except DataError as e:
                report.errors.append(f"official '{col}' column: {e}")
    if df["lesion_id"].notna().any():
        n_labels = df.dropna(subset=["lesion_id"]).groupby("lesion_id")["label"].nunique()
        conflicting = n_labels[n_labels > 1].index.tolist()
        if conflicting:
            report.warnings.append(f"{len(conflicting)} lesion(s) carry different labels on different images: "
                                   f"{_listing(conflicting)}")
    odd_sites = unknown_sites(df["site"])
    if odd_sites.any():
        report.warnings.append(f"{int(odd_sites.sum())} site value(s) no known layout uses (fine for a custom "
                               f"vocabulary; the metadata encoder one-hots whatever it finds): "
                               f"{describe_rows(df, odd_sites, df['site'], lines=False)}")
    counts = ds.class_counts()
    report.class_counts = {str(k): int(v) for k, v in counts.items()}
    empty = counts[counts == 0].index.tolist()
    try:
        if len(ds.classes) >= 2:  # a one-class list is already reported by the reader
            require_two_classes(ds)
    except DataError as e:
        report.errors.append(str(e))
    if empty:
        report.warnings.append(f"class(es) with no images: {empty}")


def _unknown_options(reader: Any, options: dict[str, Any]) -> str | None:
    """The reader options (`data check --opt KEY=VALUE`) the reader does not take, with the ones it does."""
    import inspect

    params = inspect.signature(reader).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    takes = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty)]
    bad = [k for k in options if k not in params]
    return (f"reader option(s) {bad} unknown to the {reader.__name__} reader; it takes {takes}" if bad else None)


def check_dataset(source: str | Path, fmt: str = "auto", full: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS,
                  **reader_kw: Any) -> CheckReport:
    """Run every check on a dataset folder (or CSV) and return the report (never raises for data problems)."""
    from lesionkit.data.readers import get_reader, present_parts, resolve_format  # lazy

    report = CheckReport(str(source))
    try:
        path, fmt = resolve_format(source, fmt)
        report.fmt = fmt
        parts = present_parts(path, fmt) if "parts" not in reader_kw else ()
        if parts and "train" not in parts:  # a test-only (or validation-only) official download: read what it has
            reader_kw = {**reader_kw, "parts": parts}
            report.notes.append(f"no train ground truth: checked the official part(s) present: {', '.join(parts)}")
        reader = get_reader(fmt)
        unknown = _unknown_options(reader, reader_kw)
        if unknown:
            raise ValueError(unknown)
        with collect_problems() as problems:
            ds = reader(path, **reader_kw)
        report.errors += problems
    except (DataError, FileNotFoundError, KeyError, ValueError) as e:
        report.errors.append(str(e).strip("'\""))
        return report
    report.n_rows = len(ds)
    _check_table(ds, report)
    _check_images(ds, report, full, max_pixels)
    return report
