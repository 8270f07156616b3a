"""Grad-CAM and Grad-CAM++ per image through `attribute` (issue 14's attribution target), for one checkout.

Run it once per checkout to compare two versions in the same conditions, alternating:
    python bench/bench_gradcam.py --root <checkout> --json out.json
It prints one JSON line per (model, method, speedups): the best images/s of `--rounds` calls on `--images` random
inputs, and the 1-minute load average (2 cores: ~2 means this process alone)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="lesionkit checkout")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--speedups", nargs="*", default=["off", "auto"])
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    sys.path.insert(0, str(a.root))
    import torch

    torch.set_num_threads(2)
    from lesionkit.attribution import attribute
    from lesionkit.models import create_model

    rows = []
    for name, size in (("arl_resnet50", 224), ("tf_efficientnet_lite0", 160)):
        torch.manual_seed(0)
        model = create_model(name, num_classes=7).eval()
        x = torch.randn(a.images, 3, size, size)
        for method in ("gradcam", "gradcam++"):
            for mode in a.speedups:
                attribute(model, x[:2], method, speedups=mode)  # warm-up (and the rule's one-time measurement)
                best = 0.0
                for _ in range(a.rounds):
                    t = time.perf_counter()
                    res = attribute(model, x, method, speedups=mode)
                    best = max(best, a.images / (time.perf_counter() - t))
                rows.append({"root": str(a.root), "model": name, "px": size, "method": method, "speedups": mode,
                             "setting": res.info.get("speedups", "off"), "img_s": round(best, 2),
                             "load": round(os.getloadavg()[0], 2)})
                print(json.dumps(rows[-1]), flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
