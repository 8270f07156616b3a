"""One package per notebook: its config class and the steps its cells call (the notebook tells the story).

Each package's ``recipe`` module holds the notebook's Config class, whose ``notebook`` names notebooks/<name>.ipynb
(the one place the name is stated); ``python -m lesionkit params`` generates the parameters cells from them.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

PACKAGES = ("quickstart", "arl", "patch_attention", "attention_b3", "multimodal", "se_lcn", "compare", "evaluate")


def notebook_configs() -> dict[str, Any]:
    """{notebook name: its Config class}, read from each package's recipe (imported on first use)."""
    out = {}
    for package in PACKAGES:
        module = importlib.import_module(f"lesionkit.papers.{package}.recipe")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and getattr(cls, "notebook", ""):
                out[cls.notebook] = cls
    return out


def __getattr__(name: str) -> Any:
    if name == "NOTEBOOK_CONFIGS":  # kept as a name: the same mapping, built when first asked for
        return notebook_configs()
    raise AttributeError(f"module 'lesionkit.papers' has no attribute {name!r}")
