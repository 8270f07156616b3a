"""The no-attention baseline of the patch-attention notebook (Gessert et al., methods-a §1.1/§1.6), the 'code'
variant's input gate, and the comparison with the paper's own numbers only."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lesionkit.papers.patch_attention import recipe as pa
from lesionkit.papers.common import split, start
from lesionkit.layers import PatchGate, PatchSE
from lesionkit.papers.reported import reported

torch.set_num_threads(1)

TINY = {"backbone": "resnet10t", "image_size": 32, "pretrained": False}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_baseline_is_the_same_patch_model_without_its_attention_modules(variant: str) -> None:
    cfg = pa.PatchAttentionConfig.from_params({**TINY, "variant": variant})
    attn, base = pa.build_model(cfg, 7), pa.build_model(cfg, 7, attention=False)
    assert base.attention_modules() == {}
    assert not any(isinstance(m, (PatchGate, PatchSE)) for m in base.modules())
    assert not any(m._forward_hooks for m in base.modules()), "no in-block attention hooks left on the backbone"
    modules = attn.attention_modules()
    assert modules, "the attention model has attention"
    assert _params(attn) - sum(_params(m) for m in modules.values()) == _params(base)
    if variant == "code":
        assert _params(attn) - _params(base) == 5 * 5 + 5  # one SEPatchLayer(P=5): P² + P
    shapes = {k: v.shape for k, v in base.state_dict().items()}
    attn_shapes = {k: v.shape for k, v in attn.state_dict().items() if k in shapes}
    assert attn_shapes == shapes  # same backbone and head, name for name
    assert (base.combiner, base.patch_dropout, base.backbone_name) == (attn.combiner, attn.patch_dropout, "resnet10t")


def test_code_variant_is_the_released_input_gate_and_mean_of_patch_logits() -> None:
    """'code' = CNN_FC with initial_attention=True, end_attention=False, end_pool=True (custom_models.py:123-156):
    a = σ(W m + b) from the P patch means, x_p ← a_p x_p, shared CNN, GAP, Linear per patch, mean over patches."""
    cfg = pa.PatchAttentionConfig.from_params({**TINY, "variant": "code"})
    model = pa.build_model(cfg, 4).eval()
    assert isinstance(model.input_gate, PatchGate) and model.input_gate.fc.weight.shape == (5, 5)
    assert model.feature_gate is None and len(model.block_se) == 0 and model.combiner == "mean"
    torch.manual_seed(0)
    x = torch.rand(2, 5, 3, 32, 32)
    with torch.no_grad():
        gates = torch.sigmoid(model.input_gate.fc(x.mean((2, 3, 4))))  # (B, P)
        feats = model.backbone.forward_features((x * gates[:, :, None, None, None]).flatten(0, 1)).mean((2, 3))
        expected = model.fc(feats.reshape(2, 5, -1)).mean(1)
        torch.testing.assert_close(model(x), expected)
    paper = pa.build_model(pa.PatchAttentionConfig.from_params(TINY), 4)
    assert paper.input_gate is None and len(paper.block_se) == len(paper.backbone.feature_info)


def test_baseline_variant_is_trained_beside_and_can_be_switched_off(synthetic_dir) -> None:
    base = {"data_dir": str(synthetic_dir), **TINY}
    ds = pa.load(pa.PatchAttentionConfig.from_params(base))
    on = pa.variants(ds, pa.PatchAttentionConfig.from_params(base))
    assert [v.key for v in on] == ["off", "on", pa.BASELINE]
    assert on[-1].label == "no attention, class weights + dx" and on[-1].loss(np.arange(len(ds.df))).use_factor
    assert on[-1].model().attention_modules() == {} and on[1].model().attention_modules()
    assert (on[-1].epochs, on[-1].lr, on[-1].monitor, on[-1].schedule) == (on[1].epochs, on[1].lr, on[1].monitor,
                                                                           on[1].schedule)
    off = pa.variants(ds, pa.PatchAttentionConfig.from_params({**base, "dx_weighting": "off"}))
    assert off[-1].label == "no attention, class weights" and not off[-1].loss(np.arange(len(ds.df))).use_factor
    assert [v.key for v in pa.variants(ds, pa.PatchAttentionConfig.from_params({**base, "baseline": False}))] == [
        "off", "on"]


def test_defaults_are_the_papers_initialisation() -> None:
    cfg = pa.PatchAttentionConfig.from_params({})
    assert (cfg.pretrained, cfg.backbone, cfg.baseline) == (True, "inception_v3", True)
    smoke = pa.PatchAttentionConfig.from_params({"smoke": True}).effective()
    assert smoke.pretrained is False  # offline: the smoke run needs no downloaded weights


def test_default_weights_are_inception_v3_and_fail_fast_offline(tmp_path, monkeypatch) -> None:
    """pretrained=True with the paper's backbone: offline and not cached, the build stops before constructing the
    model, naming the weights and how to fetch them."""
    from lesionkit.models.pretrained import PretrainedUnavailableError

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(PretrainedUnavailableError, match="inception_v3"):
        pa.build_model(pa.PatchAttentionConfig.from_params({}), 7)


def test_code_order_weighted_f1_weights_by_predicted_support() -> None:
    y = np.array([0, 0, 0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])  # pred 0, 0, 1, 1, 1
    from sklearn.metrics import f1_score

    out = pa.score(y, probs, ["a", "b"])
    pred = probs.argmax(1)
    assert out["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert out["f1_weighted_code"] == pytest.approx(f1_score(pred, y, average="weighted"))
    assert (out["f1_weighted"], out["f1_weighted_code"]) == (pytest.approx(0.8 * 2 / 3 + 0.2 * 0.5),
                                                             pytest.approx(0.4 * 2 / 3 + 0.6 * 0.5))


def test_smoke_run_trains_both_and_records_both_and_the_gain(synthetic_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    run = start(pa.PatchAttentionConfig, {"data_dir": str(synthetic_dir), "smoke": True, "attribution": False, "dx_weighting": "on"})
    cfg = run.cfg
    ds = pa.load(cfg)
    splits = split(ds, cfg, run, folds=cfg.folds, valid_frac=cfg.valid_frac)
    res = pa.train(ds, splits, pa.variants(ds, cfg), cfg, run)
    folds = res.table
    assert folds.groupby("model")["fold"].nunique().to_dict() == {"class weights + dx": 2,
                                                                  "no attention, class weights + dx": 2}
    params = folds.groupby("model")["params"].first()
    assert params["class weights + dx"] > params["no attention, class weights + dx"]
    result = pa.summarize(folds, run, cfg)
    summary = json.loads((run.dir / "metrics.json").read_text())["summary"]
    bma = folds.groupby("model")["balanced_accuracy"].mean()
    assert summary["bma"] == pytest.approx(bma["class weights + dx"])
    assert summary["bma_no_attention"] == pytest.approx(bma["no attention, class weights + dx"])
    assert summary["attention_gain"] == pytest.approx(summary["bma"] - summary["bma_no_attention"])
    table = result["comparison"]
    gain = table.set_index("metric").loc["balanced_accuracy_gain_patch_attention"]
    assert gain["ours"] == pytest.approx(summary["attention_gain"]) and gain["reported"] == 0.07
    assert gain["paper_metric"] == "mean sensitivity gain: attention - no attention"
    paper = pa.paper_table(folds)
    assert {"mean sensitivity", "weighted F1", "AUC (mean over classes)"} <= set(paper["metric"])
    assert {"class weights + dx", "no attention, class weights + dx"} <= set(paper.columns)


def test_comparison_shows_only_the_papers_own_numbers() -> None:
    """methods-a §1.6: the abstract's +7 % (attention) and +3 % (dx weighting) mean sensitivity; nothing from the
    related ISIC 2018/2019 entries, and no metric of ours that the paper does not report."""
    import pandas as pd

    folds = pd.DataFrame({"model": ["class weights", "class weights + dx", "no attention, class weights + dx"] * 2,
                          "fold": [0, 0, 0, 1, 1, 1], "balanced_accuracy": [0.5, 0.6, 0.4, 0.5, 0.8, 0.4],
                          "f1_weighted": [0.3] * 6, "kappa": [0.1] * 6, "accuracy": [0.7] * 6})

    class FakeRun:
        def save_table(self, *a, **k) -> None: ...

        def log_metrics(self, m: dict) -> None:
            self.logged = m

    cfg = pa.PatchAttentionConfig.from_params({"pretrained": False})
    run = FakeRun()
    table = pa.summarize(folds, run, cfg)["comparison"]  # type: ignore[arg-type]
    assert len(table) == len(reported("patch_attention")) == 2
    assert dict(zip(table.metric, table.reported)) == {"balanced_accuracy_gain_patch_attention": 0.07,
                                                       "balanced_accuracy_gain_dx_weighting": 0.03}
    assert dict(zip(table.metric, table.ours.round(6))) == {"balanced_accuracy_gain_patch_attention": 0.3,
                                                            "balanced_accuracy_gain_dx_weighting": 0.2}
    assert table.ours_on.str.contains("random init").all() and table.reported_on.str.contains("HAM10000").all()
    assert all("ISIC 2018" not in r.reported_on and "ISIC 2019" not in r.reported_on
               for r in reported("patch_attention"))
    assert run.logged["summary"]["attention_gain"] == pytest.approx(0.3)
