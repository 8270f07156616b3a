"""Issue 31: the demo's notebook kernels talk over IPC sockets on POSIX, so ipykernel's "Kernel is running over TCP
without encryption" warning (noise for a local headless run, once per notebook) is gone; real warnings stay."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lesionkit.cli import demo
from lesionkit.utils.kernel import local_kernel_config

SCRIPT = """
import papermill as pm
from lesionkit.utils.kernel import local_kernel_config
pm.execute_notebook({src!r}, {out!r}, kernel_name="python3", progress_bar=False, config=local_kernel_config())
"""


@pytest.mark.skipif(os.name != "posix", reason="IPC sockets are POSIX only")
def test_a_local_kernel_starts_without_the_tcp_warning_and_keeps_real_ones(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import warnings; warnings.warn('a real one')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    code = SCRIPT.format(src=str(tmp_path / "in.ipynb"), out=str(tmp_path / "out.ipynb"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "without encryption" not in proc.stderr
    outputs = nbformat.read(tmp_path / "out.ipynb", 4).cells[0].outputs
    assert any("a real one" in o.get("text", "") for o in outputs)


def test_the_demo_launches_its_notebooks_with_the_local_kernel_config(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr("papermill.execute_notebook", lambda *a, **kw: seen.update(kw))
    demo.run_notebook(Path("x.ipynb"), {})
    assert seen["config"].KernelManager.transport == local_kernel_config().KernelManager.transport == "ipc"
