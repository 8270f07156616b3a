"""The patch-attention recipe (Gessert et al., methods-a §1.4) as the engine runs it: the paper's optimiser and
schedule read from the module's own Variants, the two weighting modes, the per-class fold table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lesionkit.data.splits import make_splits
from lesionkit.engine import fit, torch_optimizer
from lesionkit.papers.patch_attention import recipe as pa

torch.set_num_threads(1)


@pytest.fixture()
def recipe(synthetic_dir):
    cfg = pa.PatchAttentionConfig.from_params({"data_dir": str(synthetic_dir), "image_size": 32, "batch_size": 8,
                                               "backbone": "mobilenetv3_small_050", "epochs": 50,
                                               "pretrained": False, "baseline": False})
    ds = pa.load(cfg)
    splits = make_splits(ds.df, folds=1, test_frac=0.25, valid_frac=0.25, seed=0)
    return cfg, ds, splits, pa.variants(ds, cfg)


def test_the_optimiser_and_schedule_are_the_papers(recipe) -> None:
    """§1.4: Adam (torch: β 0.9/0.999, eps 1e-8), no weight decay on any parameter (train.py:280-291, classifier and
    attention at the same lr); StepLR(10, 0.5) stepped from epoch 10 of 50 (LR halves at 20, 30, 40); the
    checkpoint kept by mean per-class recall (balanced accuracy)."""
    cfg, ds, splits, variants = recipe
    tr, va = splits.folds[0]
    for v in variants:
        learn = v.learner(tr, va)
        for when in ("built", "after a fit"):
            opt = torch_optimizer(learn)
            assert type(opt) is torch.optim.Adam, when
            params = {id(p) for g in opt.param_groups for p in g["params"]}
            assert params == {id(p) for p in learn.model.parameters()}, f"{when}: every parameter is optimised"
            for g in opt.param_groups:
                assert g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 and g["weight_decay"] == 0.0, when
                assert not g["amsgrad"], when
            if when == "built":  # fastai's fit must not re-set the hyperparameters (its Adam: β₂ 0.99, eps 1e-5)
                fit(learn, 1, v.lr, v.schedule, monitor=v.monitor, headless=True)
        s = v.schedule
        assert (s.name, s.step_start, s.step_every, s.step_gamma) == ("step", 0.2, 0.2, 0.5)
        lr = s.scheds(1.0, 50)["lr"]
        assert [lr(e / 50) for e in (0, 10, 19, 20, 29, 30, 40, 49)] == [1, 1, 1, 0.5, 0.5, 0.25, 0.125, 0.125]
        assert v.monitor == "bma" and v.epochs == cfg.epochs == 50 and v.lr == cfg.lr == 2.08e-5
        assert v.optimizer.describe()["class"] == "torch.optim.Adam"


def test_one_variant_per_weighting_mode_with_class_weights_from_the_training_rows(recipe) -> None:
    cfg, ds, splits, variants = recipe
    assert [(v.key, v.label) for v in variants] == [("off", "class weights"), ("on", "class weights + dx")]
    tr, _ = splits.folds[0]
    counts = np.bincount(ds.df["label_idx"].to_numpy()[tr], minlength=ds.n_classes)
    for v in variants:
        loss = v.loss(tr)
        assert isinstance(loss, pa.FactorCrossEntropy) and loss.use_factor == (v.key == "on")
        w = loss.weight.numpy()
        np.testing.assert_allclose(w * counts, (w * counts)[0], rtol=1e-5)  # 1/frequency of the training rows
        assert [type(cb) for cb in v.cbs()] == [pa.FactorCallback]
    assert all(v.views == "none" for v in variants)
    tta = pa.variants(ds, pa.PatchAttentionConfig.from_params({"data_dir": cfg.data_dir, "tta": True,
                                                                "pretrained": False}))
    assert {v.views for v in tta} == {"flips4"}


def test_per_class_table_is_mean_and_std_over_folds() -> None:
    df = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1],
                       "per_class/x/auc": [0.6, 0.8, 0.5, 0.5], "per_class/x/sensitivity": [0.0, 1.0, 1.0, 1.0],
                       "per_class/x/specificity": [1.0, 1.0, 0.2, 0.4], "per_class/y/auc": [np.nan] * 4})
    table = pa.per_class_table(df, ["x", "y"])
    assert table.columns.tolist() == ["model", "class", "auc", "sensitivity", "specificity"]
    a_x = table[(table["model"] == "a") & (table["class"] == "x")].iloc[0]
    assert a_x[["auc", "sensitivity", "specificity"]].tolist() == ["0.700 ± 0.100", "0.500 ± 0.500", "1.000 ± 0.000"]
    assert table[table["class"] == "y"][["auc", "sensitivity"]].eq("n/a").all().all()
    only_nan = pa.per_class_table(df[["model", "fold", "per_class/y/auc"]], ["y"])
    assert only_nan[["auc", "sensitivity", "specificity"]].eq("n/a").all().all() and len(only_nan) == 2
