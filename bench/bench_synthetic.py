"""How fast the synthetic dermoscopy set is generated (issue 2 target: 1,000 images at 224 px well under a minute).

Usage: .venv/bin/python bench/bench_synthetic.py [--n-lesions 600] [--size 224]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from lesionkit.data.synthetic import make_synthetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-lesions", type=int, default=600)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = make_synthetic(Path(tmp) / "s", n_lesions=a.n_lesions, size=a.size, seed=0)
        dt = time.perf_counter() - t0
        n = len(pd.read_csv(root / "labels.csv"))
        mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 2**20
    print(f"{n} images ({a.n_lesions} lesions) at {a.size} px in {dt:.1f} s: {n / dt:.0f} images/s, "
          f"{dt / n * 1000:.0f} s per 1,000 images, {mb:.1f} MB on disk")


if __name__ == "__main__":
    main()
