"""Writing files so that a run killed at any moment leaves only whole files, and JSON that stays valid."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, RECORD_MODE & ~_umask())  # mkstemp makes 0600: give it what open() would, like every file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


RECORD_MODE = 0o666  # minus the umask, as open() does: 0644 under the usual umask 022, readable by colleagues


def _umask() -> int:
    """The process umask, read without changing it (os.umask can only be read by setting it, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def jsonable(obj: Any) -> Any:
    """Numbers from numpy/torch as plain floats; NaN as null so the JSON stays valid."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def walk_files(base: str | Path) -> Iterator[tuple[str, list[str]]]:
    """(folder, sorted file names) of ``base`` and every folder below it, hidden ones skipped, symbolic links to
    folders followed (datasets are linked in; a link back up is visited once). A folder that cannot be read raises
    PermissionError naming it, so an unreadable images/ folder is never taken for missing files."""
    seen: set[str] = set()

    def refuse(err: OSError) -> None:
        if os.path.basename(os.fspath(err.filename or "")) == "lost+found":  # a file system's own, at a mount's root
            return
        raise PermissionError(err.errno, f"cannot read the folder {err.filename} ({err.strerror}); give its user "
                                         f"read access (chmod -R u+rX)", err.filename)

    for dirpath, dirnames, filenames in os.walk(base, onerror=refuse, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield dirpath, sorted(filenames)
