"""The dataset-folder parameters of a config, checked before anything runs: never empty (an unset shell variable
would resolve to the working directory), existing, readable, of a known layout; the sets read only after training
(an external test set, a map set) are read in full, so a bad one stops the run before its first epoch. The others
are read by the recipe's first step, before any training."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# dataset-folder parameters; the first is required, the others are optional (empty: not used)
DATASET_PARAMS = ("data_dir", "test_dir", "map_dir", "sym_data_dir", "seg_data_dir")
# read only after training: read in full when the config is checked
READ_EARLY = ("test_dir", "map_dir")
# read through resolve_data_dir, which knows the generated sets by name
NAMED_SETS = ("data_dir", "sym_data_dir", "seg_data_dir")


def dataset_param_problem(name: str, value: Any, synthetic: tuple[str, ...], bad_metadata: str = "raise") -> str | None:
    """Why parameter ``name`` = ``value`` cannot be used, or None. ``synthetic``: the generated sets' names."""
    text = str(value)
    if not text.strip():
        if name != "data_dir" and not text:
            return None
        return (f"{name} {text!r} is empty (an unset shell variable?): give a dataset folder"
                + (f" or one of {list(synthetic)}" if name in NAMED_SETS else "")
                + ("" if name == "data_dir" else ", or leave it unset") + "; an empty path is never read as the "
                "working directory")
    if name in NAMED_SETS and text in synthetic:
        return None
    path = Path(text).expanduser()
    try:
        if not path.exists():
            return (f"{name} {text!r} does not exist (working directory {Path.cwd()}); give an existing dataset "
                    "folder" + (f" or one of {list(synthetic)}" if name in NAMED_SETS else ""))
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            return f"{name} {text!r} cannot be read by this user (permission denied); fix its permissions"
        return _read_problem(name, text, path, bad_metadata) if name in READ_EARLY else None
    except OSError as err:
        return f"{name} {text!r}: {err.strerror or err} ({err.filename or path})"


def _read_problem(name: str, text: str, path: Path, bad_metadata: str) -> str | None:
    """The set read as the recipe will read it (`papers.common.load_external`): its layout, its most held-out
    official part, every row's image."""
    from lesionkit.data import load_dataset  # lazy: pandas and the readers only when a folder is checked
    from lesionkit.data.readers import evaluation_parts, resolve_format  # lazy: see above

    try:
        resolved, fmt = resolve_format(path.resolve())
        load_dataset(resolved, fmt=fmt, bad_metadata=bad_metadata, **evaluation_parts(resolved, fmt))
    except (ValueError, KeyError, FileNotFoundError) as err:  # DataError is a ValueError
        return f"{name} {text!r} cannot be used: {str(err).strip(chr(39) + chr(34))}"
    return None
