"""Where lesionkit's folders are: the source checkout, the runs folder and the cache."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path | None:
    """The source checkout lesionkit runs from (editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir() else None


def runs_root() -> Path:
    """$LESIONKIT_RUNS, else the checkout's runs/ (whatever the working directory), else ./runs."""
    if os.environ.get("LESIONKIT_RUNS"):
        return Path(os.environ["LESIONKIT_RUNS"]).expanduser().resolve()
    root = repo_root()
    return (root / "runs") if root else Path.cwd() / "runs"


def cache_root() -> Path:
    """Where generated sets, pre-resized images and speed choices are cached: $LESIONKIT_CACHE, else
    ~/.cache/lesionkit."""
    return Path(os.environ.get("LESIONKIT_CACHE", Path.home() / ".cache" / "lesionkit")).expanduser()
