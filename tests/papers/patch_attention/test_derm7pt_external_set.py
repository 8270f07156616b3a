"""Patch attention's `test_dir` (issue 12: every notebook scores an official external test set): a derm7pt folder is
scored on its official test index only, by every fold-0 model, with derm7pt's classes mapped onto the training ones."""
from __future__ import annotations

import pandas as pd

from conftest import write_derm7pt
from lesionkit import engine
from lesionkit.papers.patch_attention import recipe as pa
from lesionkit.papers.common import split
from lesionkit.records.runs import start_run


def test_every_fold0_model_scores_derm7pts_test_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    ext_dir = tmp_path / "derm7pt"
    ext_dir.mkdir()
    write_derm7pt(ext_dir)
    cfg = pa.PatchAttentionConfig(test_dir=str(ext_dir), smoke=True, pretrained=False).effective()
    ds = pa.load(cfg)
    run = start_run("patch_attention", pa.PatchAttentionConfig, {}, watch_notebook=False)
    splits = split(ds, cfg, run, folds=cfg.folds, valid_frac=cfg.valid_frac)
    res = engine.run_folds(run, ds, splits, pa.variants(ds, cfg), report=lambda y, p: pa.score(y, p, ds.classes),
                           seed=cfg.seed)
    out = pa.evaluate_external(res.learners, ds, cfg, run)
    assert set(out) == {v.label for v in pa.variants(ds, cfg)} and len(out) == len(res.learners)
    for v in pa.variants(ds, cfg):
        truth = pd.read_csv(run.dir / "predictions" / f"external_{v.key}_truth.csv").set_index("image")
        assert truth.index.tolist() == ["NEL_NEL005", "NEL_NEL007"]            # the test index, misc. dropped
        assert truth.idxmax(axis=1).str.lower().tolist() == ["vasc", "df"]     # in the training classes' columns
        assert [c.lower() for c in truth.columns] == list(ds.classes)
        assert "f1_weighted_code" in out[v.label]
    assert pa.evaluate_external(res.learners, ds, pa.PatchAttentionConfig(smoke=True).effective(), run) is None
