"""bench/gpu_check.py is ready to run on a GPU machine as it is: its CPU dry run walks the same code with CUDA
hidden (throughput per kind of loader, the two-process notebook on gloo) and writes the JSON and the table."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_the_cpu_dry_run_walks_every_part_and_writes_the_report(tmp_path) -> None:
    env = {**os.environ, "LESIONKIT_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu-dry-run", "--out",
                           str(tmp_path / "out")], env=env, cwd=REPO, capture_output=True, text=True, timeout=400,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["dry_run"] and result["device"] == "CPU"
    rows = {r["loader"]: r for r in result["throughput"]}
    assert set(rows) == {"image", "meta", "patch"}
    for r in rows.values():
        assert r["fp32_img_s"] > 0 and r["engine_img_s"] > 0 and r["loader_img_s"] > 0 and r["loader_workers"] == 2
    two = result["two_processes"]
    assert two["status"] == "completed" and {s["processes"] for s in two["stages"].values()} == {2}
    assert two["cuda"] is False, "the dry run hides CUDA from the notebook's kernel too"
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| patch_attention | patch_inception_v3 |" in table and "## Notebooks (smoke settings)" in table
