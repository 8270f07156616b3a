"""Going Smaller's external test (methods-b §B.8, §A.8): with folds > 1 every fold model predicts `test_dir`, and
the ensemble is the mean of the fold models' softmax probabilities, scored on exactly the external rows."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lesionkit.papers.attention_b3 import recipe as b3
from lesionkit.papers.common import split
from lesionkit.records.runs import start_run
from lesionkit.testing import write_isic2020


def _isic2020(root):
    """A Kaggle-layout ISIC 2020 folder: 8 images, 3 melanomas (no tfrecord: read whole)."""
    ids, target = [f"ISIC_{9000000 + i}" for i in range(8)], np.array([1, 0, 0, 1, 0, 1, 0, 0])
    write_isic2020(root, ids, target=target, size=(40, 30))
    return root, ids, target


def test_two_fold_ensemble_is_the_mean_of_the_fold_predictions_on_the_external_rows(synthetic_dir, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    (tmp_path / "ext").mkdir()
    ext_dir, ids, target = _isic2020(tmp_path / "ext")
    params = {"data_dir": str(synthetic_dir), "test_dir": str(ext_dir), "backbone": "tf_efficientnet_lite0",
              "pretrained": "false", "image_size": 64, "batch_size": 16, "epochs": 1, "lr": 1e-3, "augment": "fastai",
              "models": "sge_b3", "folds": 2, "test_frac": 0.3, "max_images": 0, "n_bootstrap": 0, "tta": False, "speedups": "off",
              "attribution": False}
    run = start_run("attention_b3", b3.AttentionB3Config, params, watch_notebook=False)
    cfg = run.cfg
    ds = b3.load(cfg)
    splits = split(ds, cfg, run, folds=cfg.folds, valid_frac=cfg.valid_frac)
    res = b3.train(ds, splits, cfg, run)
    table = b3.score_external(res, ds, splits, cfg, run)
    assert table["fold"].tolist() == [0, 1, "ensemble"] and (table["images"] == 8).all()
    assert (table["positives"] == 3).all()
    pred = run.dir / "predictions"
    folds = [pd.read_csv(pred / f"external_sge_b3_fold{k}.csv").set_index("image") for k in (0, 1)]
    ens = pd.read_csv(pred / "external_sge_b3_ensemble.csv").set_index("image")
    assert sorted(ens.index) == sorted(ids) and list(folds[0].index) == list(ens.index)   # exactly the external rows
    assert not np.allclose(folds[0]["MEL"], folds[1]["MEL"])                              # two different models
    assert ens["MEL"].to_numpy() == pytest.approx((folds[0]["MEL"] + folds[1]["MEL"]).to_numpy() / 2, abs=1e-6)
    probs = pd.read_csv(pred / "external_sge_b3_ensemble_probs.csv").set_index("image")
    assert probs.shape == (8, ds.n_classes) and probs.sum(1).to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert probs["MEL"].to_numpy() == pytest.approx(ens["MEL"].to_numpy(), abs=1e-6)      # probabilities, not logits
    truth = pd.read_csv(pred / "external_sge_b3_ensemble_truth.csv").set_index("image").loc[ens.index]
    y = pd.Series(target, index=ids).loc[ens.index].to_numpy()
    assert truth["MEL"].to_numpy().tolist() == y.tolist()
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert metrics["external_sge_b3_ensemble"]["auc"] == pytest.approx(roc_auc_score(y, ens["MEL"]))
    assert table.iloc[-1]["auc"] == pytest.approx(roc_auc_score(y, ens["MEL"]))
    out = b3.summarize(res.table, b3.param_table(cfg, ds.n_classes), run, cfg, external=table)
    assert out["summary"]["auc"] == pytest.approx(roc_auc_score(y, ens["MEL"]))         # the paper's role: ProveAI
    assert json.loads((run.dir / "metrics.json").read_text())["external"]["SGE-B3"]["auc"] == out["summary"]["auc"]
