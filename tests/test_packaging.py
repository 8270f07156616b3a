"""The install files agree with each other, and every notebook is committed the way the tooling expects."""
from __future__ import annotations

import json
import re
import tomllib

import yaml

from conftest import REPO


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pinned = [r for r in pip_section if not r.startswith("-")]
    assert sorted(pinned) == sorted(deps), "environment.yml's pip section must list pyproject's dependencies exactly"
    assert "python=3.11" in env["dependencies"]


def test_torch_and_torchvision_are_pinned_together() -> None:
    deps = {_name(d): d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert deps["torch"] == "torch==2.14.1" and deps["torchvision"] == "torchvision==0.29.2"


def test_notebooks_are_clean_and_parameterised() -> None:
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
            f"{path.name} is committed with outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        src = "".join(tagged[0]["source"])
        needed = ("smoke", "seed") if path.stem == "evaluate" else ("epochs", "smoke", "data_dir", "seed", "pretrained")
        for name in needed:  # evaluate.ipynb trains nothing: it scores finished runs
            assert re.search(rf"^{name}: \w+ = .+#", src, re.M), f"{path.name}: parameter {name} missing or untyped"
        for line in src.splitlines():  # comment lines: the header, and help texts wrapped onto the lines below
            if line and not line.lstrip().startswith("#"):
                assert re.match(r"^\w+: (int|float|str|bool) = .+  # \S", line), f"{path.name}: {line!r}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in ci
