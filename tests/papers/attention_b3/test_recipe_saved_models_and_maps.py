"""attention_b3 on the engine: the paper's recipe (methods-b §B.7) built from the module's own Variant, the saved
model specs, and the attribution layout (one folder per model, the headline model's also at the top)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lesionkit.data.splits import make_splits
from lesionkit.engine import torch_optimizer
from lesionkit.papers.common import save_models
from lesionkit.papers.attention_b3 import recipe as b3
from lesionkit.losses import LMFLoss
from lesionkit.models import load_model
from lesionkit.records.runs import start_run


def _cfg(synthetic_dir, **kw) -> b3.AttentionB3Config:
    """The notebook's defaults, with a small backbone and images so the test is quick."""
    return b3.AttentionB3Config.from_params({"data_dir": str(synthetic_dir), "backbone": "tf_efficientnet_lite0",
                                             "image_size": 32, "batch_size": 8, **kw})


def test_default_recipe_is_the_papers_adamw_warmup_cosine_and_macro_auc(synthetic_dir) -> None:
    """§B.7: AdamW(lr 3e-5, weight_decay 1e-5) on model.parameters(), warmup x10 (one epoch) then cosine, 35 epochs,
    batch 64, the epoch with the best macro one-vs-rest AUC; §B.2: tf_efficientnet_b3 at 384 px."""
    defaults = b3.AttentionB3Config()
    assert (defaults.backbone, defaults.image_size, defaults.batch_size, defaults.epochs) == \
        ("tf_efficientnet_b3.aa_in1k", 384, 64, 35)
    cfg = _cfg(synthetic_dir)
    ds = b3.load(cfg)
    splits = make_splits(ds.df, folds=1, test_frac=0.25, valid_frac=0.25, seed=0)
    v = b3.variant("sge_b3", ds, cfg)
    learn = v.learner(*splits.folds[0])
    opt = torch_optimizer(learn)
    assert type(opt) is torch.optim.AdamW
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in learn.model.parameters()}  # every parameter, BN weights and biases included
    for group in opt.param_groups:
        assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and not group["amsgrad"]
        assert group["weight_decay"] == 1e-5
    s = v.schedule
    assert (s.name, s.warmup_epochs, s.warmup_factor) == ("warmup_cosine", 1.0, 10.0)
    lr = s.scheds(v.lr, v.epochs)["lr"]
    assert lr(0.0) == pytest.approx(3e-5)  # the code's lr, warmed up x10 over the first epoch ...
    assert lr(1 / v.epochs) == pytest.approx(3e-4) and v.lr == pytest.approx(3e-4)
    n = v.epochs  # ... then cosine, stepped once per epoch as the code: its last epoch above 0
    assert lr(0.9999) == pytest.approx(3e-4 * (1 + np.cos(np.pi * (n - 2) / (n - 1))) / 2) and lr(0.9999) > 0
    assert (v.epochs, v.monitor, v.views, v.average) == (35, "auc_macro", "dihedral8", "probs")
    assert isinstance(learn.loss_func, LMFLoss)
    tr = splits.folds[0][0]
    counts = np.bincount(ds.df["label_idx"].to_numpy()[tr], minlength=ds.n_classes)
    inv = 1 / counts
    assert learn.loss_func.weight.numpy() == pytest.approx(inv / inv.sum(), rel=1e-5)  # training rows' counts
    assert b3.variant("sge_b3", ds, _cfg(synthetic_dir, tta=False)).views == "none"


def test_save_models_writes_specs_that_rebuild_each_model(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    run = start_run("attention_b3", b3.AttentionB3Config, {}, watch_notebook=False)
    cfg = b3.AttentionB3Config.from_params({"backbone": "tf_efficientnet_lite0"})
    classes = ["a", "b", "mel"]
    learners = {n: SimpleNamespace(model=b3.build_model(n, cfg, len(classes))) for n in ("spatial_b3", "sge_b3")}
    save_models(run, learners, cfg.headline, spec=lambda _: {"classes": classes})
    spec = json.loads((run.dir / "model.json").read_text())
    assert spec["name"] == "sge_b3" and spec["classes"] == classes  # the headline model is model.pth
    assert spec["kwargs"] == {"num_classes": 3, **cfg.model_kwargs}
    assert json.loads((run.dir / "model_spatial_b3.json").read_text())["name"] == "spatial_b3"
    rebuilt = load_model(run.dir)
    for k, w in learners["sge_b3"].model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], w), k
    assert b3.AttentionB3Config(models="spatial_b3,s2mlp_b3").headline == "spatial_b3"  # no SGE-B3: the first


def test_explain_maps_every_model_for_the_same_test_images(synthetic_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    run = start_run("attention_b3", b3.AttentionB3Config, {}, watch_notebook=False)
    cfg = _cfg(synthetic_dir, n_explain=2)
    ds = b3.load(cfg)
    test = np.arange(6)
    y = ds.df["label_idx"].to_numpy()[test]
    probs = np.random.default_rng(0).dirichlet(np.ones(ds.n_classes), len(test))
    names = ("s2mlp_b3", "sge_b3")
    res = SimpleNamespace(learners={n: SimpleNamespace(model=b3.build_model(n, cfg, ds.n_classes).eval())
                                    for n in names},
                          probs={n: [probs] for n in names}, y=y)
    stores = b3.explain(res, ds, test, cfg, run)
    assert set(stores) == set(names)
    ids = [list(s.index["image_ids"]) for s in stores.values()]
    assert ids[0] == ids[1] and len(ids[0]) == 2 and set(ids[0]) <= set(ds.df["image_id"].iloc[test])
    assert "native" not in stores["s2mlp_b3"].maps and "native" in stores["sge_b3"].maps  # S2 has no spatial map
    top = {p.name for p in run.dir.iterdir() if p.is_file()}
    assert {p.name for p in (run.dir / "attribution" / "sge_b3").iterdir()} <= top  # the headline's, for the viewer
