"""A finished comparison run used again (``lesionkit.papers.saved``): every entry's fold-0 model scores a new set as
the notebook's ``evaluate_external`` scored ``test_dir``, with the record's metadata encoder and the CAM entry's
segmenter and symmetry net; the images that cascade trained on (``cascade_trained_on.csv``) are left out for every
entry, as in the notebook."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from lesionkit.data.metadata import MetaEncoder
from lesionkit.papers.compare.cascade import TRAINED_ON, Cascade, cascade_config, with_inputs
from lesionkit.papers.compare.entries import EntryContext, variant
from lesionkit.papers.compare.recipe import evaluation as compare_evaluation
from lesionkit.papers.patch_attention.recipe import with_dx_factor
from lesionkit.papers.se_lcn.reuse import LoadModels, load_cascade


@dataclass
class _Scratch:
    """Where a new set's LAE copies and CAMs go (``with_inputs`` writes under ``run.dir``): not the record."""

    dir: Path


def saved_context(cfg: Any, run_dir: Path, shape: Any, load_models: LoadModels, sym_classes: list[str] | None,
                  seg_norm: str) -> EntryContext:
    """The entries' shared inputs read back from ``run_dir``: the metadata encoder, the CAM entry's cascade (its
    segmenter's input normalisation ``seg_norm`` as recorded)."""
    keys = cfg.entry_keys
    ctx = EntryContext(ds=with_dx_factor(shape) if {"dx_weighting", "patch_attention"} & set(keys) else shape,
                       splits=None, cfg=cfg, run=_Scratch(Path(tempfile.mkdtemp(prefix="lesionkit-compare-"))))
    if "metadata" in keys:
        path = run_dir / "meta_encoder.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; the metadata entry cannot encode age, sex and site without it")
        ctx.encoder = MetaEncoder.load(path)
    if "se_lcn_cam" in keys:
        if sym_classes is None:
            raise FileNotFoundError(f"{run_dir / 'model_symmetry.json'}: missing; the se_lcn_cam entry's symmetry net "
                                    "cannot be rebuilt, so no CAMs: train the run again")
        saved = load_cascade(cascade_config(cfg), load_models, sym_classes, seg_norm)
        ctx.cascade = Cascade(saved.cfg, saved.seg_learn, saved.sym_learn, {}, {}, _trained_on(run_dir))
    return ctx


def _trained_on(run_dir: Path) -> frozenset[str]:
    path = run_dir / TRAINED_ON
    if not path.is_file():
        print(f"{path}: absent (a record from before it was kept): images the CAM entry's segmenter or symmetry net "
              "trained on are not left out", flush=True)
        return frozenset()
    return frozenset(pd.read_csv(path)["path"].astype(str))


def inputs(ctx: EntryContext, ds: Any) -> Any:
    """``ds`` ready for every entry (``cascade.with_inputs``), its CAMs where the CAM entry's loaders read them."""
    name = f"set{len(ctx.lent)}"
    ds = with_inputs(ds, ctx, name)
    ctx.cams.update(ctx.lent.get(name, {}))
    return ds


def evaluation(ctx: EntryContext, ds: Any) -> Any:
    """The notebook's scoring of its entries, the entries built on ``ds``."""
    on = replace(ctx, ds=ds)
    return compare_evaluation([variant(key, on, epochs=1) for key in ctx.cfg.entry_keys], ds, ctx.cfg)


__all__ = ["evaluation", "inputs", "saved_context"]
