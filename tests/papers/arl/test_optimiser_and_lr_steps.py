"""ARL's recipe against the spec (methods-a §2, train.py L77-91): SGD momentum 0.9, weight decay 1e-4 on every
parameter, lr 1e-4 halved after 30, 60 and 90 of 100 epochs, BCE on one logit, selection on AUC, 9 test views."""
from __future__ import annotations

import pytest
import torch

from lesionkit.data.splits import make_splits
from lesionkit.engine import torch_optimizer
from lesionkit.papers.arl import recipe as arl


def test_the_recipe_is_the_codes_optimiser_and_schedule(synthetic_dir) -> None:
    cfg = arl.ARLConfig.from_params({"depth": 18, "image_size": 32, "batch_size": 8, "data_dir": str(synthetic_dir),
                                    "pretrained": "false"})
    ds = arl.load(cfg)
    tr, va = make_splits(ds.df, folds=1, seed=0).folds[0]
    for v in arl.variants(ds, cfg):
        assert (v.epochs, v.lr, v.monitor) == (100, 1e-4, "auc")
        opt = torch_optimizer(v.learner(tr, va))
        assert type(opt) is torch.optim.SGD
        n_params = sum(1 for p in v.learner(tr, va).model.parameters() if p.requires_grad)
        assert sum(len(g["params"]) for g in opt.param_groups) == n_params
        for g in opt.param_groups:  # BN and bias parameters included: torch's SGD decays every parameter
            assert (g["momentum"], g["weight_decay"], g["nesterov"], g["dampening"]) == (0.9, 1e-4, False, 0)
        lr = v.schedule.scheds(1e-4, 100)["lr"]
        assert [lr(e / 100) for e in (0, 29, 30, 59, 60, 89, 90, 99)] == pytest.approx(
            [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5, 1.25e-5])
        assert v.test_dl is not None and v.views == "none"  # the 9 multi-scale views come from a stacked loader
        assert v.average == "logits"  # the code: mean logit over the 9 views, then sigmoid (methods-a §2)
    cfg = arl.ARLConfig.from_params({"depth": 18, "tta_average": "probs", "data_dir": str(synthetic_dir)})
    assert {v.average for v in arl.variants(ds, cfg)} == {"probs"}


def test_adam_option_is_decoupled_weight_decay() -> None:
    cfg = arl.ARLConfig.from_params({"optimizer": "adam", "weight_decay": 0.01})
    spec = arl.optimizer(cfg)
    assert spec.torch_class is torch.optim.AdamW and spec.kwargs() == {"betas": (0.9, 0.999), "eps": 1e-8,
                                                                        "weight_decay": 0.01}
