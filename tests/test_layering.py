"""The package's shape: no import circle between any two modules, the layering contract holds, and the top of
lesionkit keeps only what a user imports. Imports inside functions count (grimp reads every import statement)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
GENERIC = ("data", "models", "layers", "losses", "metrics", "attribution", "viz", "engine")


def import_circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(m: str) -> None:
        index[m] = low[m] = len(index)
        stack.append(m)
        on_stack.add(m)
        for n in graph.find_modules_directly_imported_by(m):
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            group = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                group.append(n)
                if n == m:
                    break
            if len(group) > 1 or m in graph.find_modules_directly_imported_by(m):
                out.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_module_imports_itself_back() -> None:
    assert import_circles(grimp.build_graph("lesionkit", cache_dir=None, exclude_type_checking_imports=True)) == []


def test_the_circle_finder_finds_a_circle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert import_circles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_layering_contract_holds() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_the_top_of_the_package_holds_only_what_users_import() -> None:
    top = sorted(p.name for p in (REPO / "lesionkit").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "config.py"]


def _notebook_imports() -> dict[str, set[str]]:
    """{lesionkit module: the notebooks importing it}."""
    out: dict[str, set[str]] = {}
    for nb in (REPO / "notebooks").glob("*.ipynb"):
        for m in re.findall(r"from (lesionkit[\w.]*) import ([\w, ]+)", nb.read_text()):
            for name in [m[0], *(f"{m[0]}.{n.strip().split(' ')[0]}" for n in m[1].split(","))]:
                out.setdefault(name, set()).add(f"notebook:{nb.stem}")
    return out


def one_paper_modules(graph: grimp.ImportGraph, notebooks: dict[str, set[str]]) -> dict[str, str]:
    """Modules of generic packages whose every user (module or notebook) belongs to one paper's package. The
    comparison notebook and its package count as generic use: it puts every paper on one split."""
    paper_of = {f"notebook:{n}": n for n in ("arl", "patch_attention", "attention_b3", "multimodal", "se_lcn")}
    out = {}
    for m in sorted(graph.modules):
        parts = m.split(".")
        if len(parts) < 3 or parts[1] not in GENERIC:
            continue
        users = set(graph.find_modules_that_directly_import(m)) | notebooks.get(m, set())
        owners = {paper_of.get(u) or (u.split(".")[2] if u.startswith("lesionkit.papers.") and u.count(".") >= 3
                                      else None) for u in users}
        owners = {"generic" if o in (None, "compare", "common") else o for o in owners}
        if len(owners) == 1 and "generic" not in owners:
            out[m] = owners.pop()
    return out


def test_generic_packages_hold_nothing_only_one_paper_uses() -> None:
    assert one_paper_modules(grimp.build_graph("lesionkit", cache_dir=None, exclude_type_checking_imports=True), _notebook_imports()) == {}


def test_a_module_only_one_paper_uses_is_found() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("lesionkit.papers.se_lcn.recipe", "lesionkit.data.lae"),
                 ("lesionkit.papers.arl.recipe", "lesionkit.data.loaders"),
                 ("lesionkit.papers.se_lcn.recipe", "lesionkit.data.loaders")):
        graph.add_import(importer=a, imported=b)
    assert one_paper_modules(graph, {"lesionkit.data.views": {"notebook:patch_attention"}}) == {
        "lesionkit.data.lae": "se_lcn"}


def test_every_public_name_a_module_lists_exists() -> None:
    """``__all__`` says what a module offers: a name moved or removed must leave it too."""
    import importlib
    import pkgutil
    import warnings

    import lesionkit

    missing = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(lesionkit.__path__, "lesionkit."):
            module = importlib.import_module(info.name)
            gone = [n for n in getattr(module, "__all__", []) if not hasattr(module, n)]
            if gone:
                missing[info.name] = gone
    assert missing == {}
