"""A labelled test set read for a trained model: the one place an external set's classes meet the model's.

Every notebook's ``test_dir``, the comparison's ``map_dir`` and ``python -m lesionkit evaluate`` read their sets
here, so the official part that gets scored, the class mapping and the positive class are decided once, and the
mapping is kept in ``ds.info["class_mapping"]`` for the run record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lesionkit.data.table import LesionDataset


def positive_class(classes: Sequence[str], task: str) -> str | None:
    """The class a model's scores are read against: a binary task's second class (the LesionDataset convention:
    index 1 is melanoma, malignant, asymmetric), none for a multiclass task."""
    return str(classes[1]) if task == "binary" else None


def load_test_set(path: str | Path, classes: Sequence[str], positive: str | None = None,
                  bad_metadata: str = "raise", parameter: str = "test_dir") -> LesionDataset:
    """The folder ``path`` as a test set in the model's ``classes`` (names and indices).

    An ISIC 2017 / 2018 / 2019 download is scored on its most held-out official part only
    (``readers.evaluation_parts``), a layout with an official split column (derm7pt, class folders under test/) on
    its test rows; its classes map onto the model's by name or synonym (MEL = mel, AK = akiec), PH2's clinical
    classes onto HAM10000's (common and atypical nevi are nv) unless the model learnt PH2's own, and a class with
    test images the model never saw is refused. ``positive`` (a binary model's positive class, ``classes`` =
    [rest, positive]): every other class is scored as the rest. Rows get the same validation as training data;
    ``parameter`` names the setting in messages."""
    from lesionkit.data.readers import evaluation_parts, load_dataset, resolve_format  # lazy: readers on first use
    from lesionkit.data.readers.ph2 import PH2_TARGETS  # lazy: see above

    classes = [str(c) for c in classes]
    where, fmt = resolve_format(Path(path).expanduser().resolve())
    kw = evaluation_parts(where, fmt)
    if fmt == "ph2" and positive is None and not set(classes) <= set(PH2_TARGETS["diagnosis"][2]):
        kw["target"] = "ham"
    ext = load_dataset(where, fmt=fmt, bad_metadata=bad_metadata, **kw)
    if (ext.df["split"] == "test").any():  # an official split column (derm7pt, train/test class folders): its test rows
        ext = ext.subset(np.flatnonzero((ext.df["split"] == "test").to_numpy()))
    names = (_binary_names(ext, classes, positive, f"{parameter} {path}") if positive
             else _class_names(ext, classes, f"{parameter} {path}"))
    present = set(ext.df["label"])
    ext.info["class_mapping"] = {own: names[own] for own in ext.classes if own in present}
    ext.df["label"] = ext.df["label"].map(names)
    ext.df["label_idx"] = ext.df["label"].map({c: i for i, c in enumerate(classes)}).astype("int64")
    ext.classes = classes
    ext.task = "binary" if len(classes) == 2 else "multiclass"  # the model's task, whatever the set held
    return ext


def mapping_line(ds: LesionDataset) -> str:
    """The class mapping of a test set in one line (what an evaluation prints before its numbers)."""
    pairs = ds.info.get("class_mapping", {})
    said = ", ".join(f"{a} → {b}" if a != b else a for a, b in pairs.items()) or "none recorded"
    return f"{ds.name} ({len(ds)} images): classes {said}"


def _class_names(ext: Any, classes: list[str], where: str) -> dict[str, str]:
    """External class → training class by name or synonym; ValueError for classes with images the model never saw."""
    from lesionkit.data.tasks import find_class  # lazy

    names, unknown = {}, []
    for c in ext.classes:
        try:
            names[c] = find_class(c, classes)
        except ValueError:
            unknown.append(c)
    present = set(ext.df["label"])
    unknown = [c for c in unknown if c in present]  # a layout's class with no test image is harmless
    if unknown:
        raise ValueError(f"{where}: classes {unknown} were not in the training data {classes}; "
                         "the model never saw them, so they cannot be scored (drop those rows or map them)")
    return names


def _binary_names(ext: Any, classes: list[str], positive: str, where: str) -> dict[str, str]:
    """External class → classes[1] for the positive class (by name or synonym), classes[0] for every other."""
    from lesionkit.data.tasks import find_class  # lazy

    try:
        own = find_class(positive, ext.classes)
    except ValueError:
        raise ValueError(f"{where}: no class {positive!r} (or a synonym) among its classes "
                         f"{list(ext.classes)}, so the binary {positive}-vs-rest model cannot be scored there") from None
    return {c: classes[1] if c == own else classes[0] for c in ext.classes}


__all__ = ["load_test_set", "mapping_line", "positive_class"]
