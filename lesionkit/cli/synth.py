"""`python -m lesionkit synth [OUT_DIR]`: write the synthetic dermoscopy dataset (the embedded default)."""
from __future__ import annotations

import argparse

from lesionkit.data.synthetic import default_synthetic_dir, make_synthetic


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m lesionkit synth", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", help="output folder (default: the cached default set)")
    ap.add_argument("--n-lesions", type=int, default=600)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--null", action="store_true", help="no class signal (the control set)")
    a = ap.parse_args(argv)
    if a.out_dir:
        out = make_synthetic(a.out_dir, n_lesions=a.n_lesions, size=a.size, seed=a.seed, signal=not a.null)
    else:
        out = default_synthetic_dir(signal=not a.null, n_lesions=a.n_lesions, size=a.size, seed=a.seed)
    print(out)
    return 0
