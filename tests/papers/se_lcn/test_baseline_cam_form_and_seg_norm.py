"""Issue 30's SE-LCN items: the headline's three rows (the standalone baseline as published, SE-LCN with its CAM,
the zero-CAM control) beside the paper's two; Grad-CAM++'s two denominators (the Grad-CAM++ paper's, SE-LCN's code's)
reaching the maps; the segmenter's input normalisation (its encoder weights' own by default)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lesionkit.layers.gradcam_pp import grad_cam_plus_plus
from lesionkit.models import create_model
from lesionkit.models import se_lcn as se_models
from lesionkit.papers.reported import reported
from lesionkit.papers.se_lcn import recipe as se
from lesionkit.records.runs import Run

torch.set_num_threads(1)


class _Stop(Exception):
    """Ends a call once the stub has seen its arguments."""

# two channels of a 2×2 layer, one lit on the top row, one on the bottom; gradients that vary over positions (with
# gradients constant over a channel, as straight after global pooling, the two denominators coincide)
A = np.array([[[4.0, 4.0], [0.0, 0.0]], [[0.0, 0.0], [4.0, 4.0]]])
G = np.array([[[1.0, 0.75], [0.5, 0.25]], [[0.75, 0.25], [1.0, 0.5]]])


def _by_hand(form: str) -> np.ndarray:
    """Grad-CAM++ written out with loops: α_kij = g² / (2g² + D), D = (Σ_uv A_kuv)·g_kij³ ("paper") or
    Σ_uv A_kuv·g_kuv³ ("code"); w_k = Σ_ij α_kij·ReLU(g_kij); M = ReLU(Σ_k w_k A_k)."""
    weights = []
    for a, g in zip(A, G):
        total = 0.0
        for i in range(2):
            for j in range(2):
                d = a.sum() * g[i, j] ** 3 if form == "paper" else sum(
                    a[u, v] * g[u, v] ** 3 for u in range(2) for v in range(2))
                total += g[i, j] ** 2 / (2 * g[i, j] ** 2 + d) * max(g[i, j], 0.0)
        weights.append(total)
    return np.maximum(sum(w * a for w, a in zip(weights, A)), 0.0)


def test_the_two_grad_cam_pp_forms_are_each_hand_computation_and_differ() -> None:
    acts, grads = torch.tensor(A[None], dtype=torch.float64), torch.tensor(G[None], dtype=torch.float64)
    paper, code = (grad_cam_plus_plus(acts, grads, form)[0, 0].numpy() for form in ("paper", "code"))
    np.testing.assert_allclose(paper, _by_hand("paper"), rtol=1e-12)
    np.testing.assert_allclose(code, _by_hand("code"), rtol=1e-12)
    assert np.array_equal(paper, grad_cam_plus_plus(acts, grads)[0, 0].numpy())  # the default is the paper's
    # not a scale: the paper's form weighs the top channel more, the code's the bottom one, so the map's peak (what
    # the pointing game scores) moves
    assert paper[0].max() > paper[1].max() and code[1].max() > code[0].max()
    with pytest.raises(ValueError, match="form"):
        grad_cam_plus_plus(acts, grads, "pp")


def test_cam_form_reaches_the_symmetry_cams_and_the_classifier_maps(synthetic_dir: Path, monkeypatch) -> None:
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir), cam_form="code")
    assert se.SELCNConfig().cam_form == "paper"
    assert se.symmetry_variant(se.load_data(cfg)[1], cfg).model().cam_form == "code"  # what cache_cams calls
    forms: list[str] = []
    real = se_models.grad_cam_plus_plus
    monkeypatch.setattr(se_models, "grad_cam_plus_plus", lambda a, g, form: forms.append(form) or real(a, g, form))
    for form in ("paper", "code"):
        create_model("selcn_symmetry", cam_form=form).symmetry_cam(torch.rand(1, 3, 64, 64))
    assert forms == ["paper", "code"]

    seen: dict = {}

    def explain_rows(*_, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(se, "explain_rows", explain_rows)  # the classifier's maps: only what explain asks for
    with pytest.raises(_Stop):
        se.explain(SimpleNamespace(model=None, dls=None), None, np.arange(2), np.zeros((2, 4, 4)),
                   dataclasses.replace(cfg, attribution_methods="gradcam++,gradcam"), SimpleNamespace(dir=None))
    assert seen["method_kw"] == {"gradcam++": {"form": "code"}}


def test_attribution_gradcam_pp_takes_the_form() -> None:
    from lesionkit.attribution import attribute

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()  # a ReLU after the CAM layer
    x = torch.rand(2, 3, 12, 12)
    paper = attribute(net, x, "gradcam++", target=[0, 1], layer="1", speedups="off").maps
    code = attribute(net, x, "gradcam++", target=[0, 1], layer="1", speedups="off", form="code").maps
    assert np.abs(paper - code).max() > 1e-4 * np.abs(paper).max()


def _normalize(dls):
    from fastai.data.transforms import Normalize

    (norm,) = [t for t in dls.after_batch.fs if isinstance(t, Normalize)]
    return norm.mean.flatten().tolist(), norm.std.flatten().tolist()


def test_segmenter_inputs_take_the_encoder_weights_normalisation_by_default(synthetic_dir: Path,
                                                                            tmp_path: Path) -> None:
    """timm's tf_efficientnet_lite0 / xception65 weights were trained on inputs scaled to mean 0.5, std 0.5;
    seg_norm="imagenet" keeps ImageNet's mean/std (the earlier behaviour)."""
    cfg = dataclasses.replace(se.SELCNConfig(data_dir=str(synthetic_dir)), image_size=64,
                              seg_encoder="tu-tf_efficientnet_lite0")
    assert se.SELCNConfig().seg_norm == "weights"
    _, seg_ds = se.load_data(cfg)
    tr, va = se.split(*se.load_data(cfg), cfg, Run(tmp_path, "t"))[1].folds[0]
    weights = se.segmenter_variant(seg_ds, cfg)
    mean, std = _normalize(weights.dls(tr, va))
    assert mean == pytest.approx([0.5] * 3) and std == pytest.approx([0.5] * 3)
    assert weights.model().default_cfg["mean"] == pytest.approx((0.5,) * 3)
    mean, std = _normalize(se.segmenter_variant(seg_ds, dataclasses.replace(cfg, seg_norm="imagenet")).dls(tr, va))
    assert mean == pytest.approx([0.485, 0.456, 0.406]) and std == pytest.approx([0.229, 0.224, 0.225])
    xception = create_model("selcn_segmenter", encoder="tu-xception65", input_norm="weights").default_cfg
    assert xception["mean"] == pytest.approx((0.5,) * 3) and xception["std"] == pytest.approx((0.5,) * 3)


def test_the_headline_is_three_rows_beside_the_paper_s_two(synthetic_dir: Path, tmp_path: Path) -> None:
    """Baseline as published beside the paper's "EfficientNet-B4 (standalone)", SE-LCN beside its "SE-LCN (none_lae)",
    the zero-CAM control beside nothing; the comparison's standalone row is the baseline's, not the control's."""
    rows = [{"model": se.CLASSIFIERS[k], "fold": f, "balanced_accuracy": b, "accuracy": 0.7, "f1_macro": 0.6,
             "kappa": 0.5} for k, f, b in (("with_cam", 0, 0.60), ("with_cam", 1, 0.62), ("without_cam", 0, 0.55),
                                            ("without_cam", 1, 0.57), ("baseline", 0, 0.40), ("baseline", 1, 0.44))]
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir))
    cls_ds, seg_ds = se.load_data(cfg)
    result = se.summarize({"dice": 0.8, "jaccard": 0.7}, pd.DataFrame(rows), pd.DataFrame({"pointing_game_mean": [1.0]}),
                          cfg, cls_ds, seg_ds, Run(tmp_path, "t"))
    table = result["headline"]
    assert table["model"].tolist() == [se.CLASSIFIERS[k] for k in ("baseline", "with_cam", "without_cam")]
    assert table["paper_row"].tolist() == ["EfficientNet-B4 (standalone)", "SE-LCN (none_lae)", "(not in the paper)"]
    assert table["balanced_accuracy"].tolist() == pytest.approx([0.42, 0.61, 0.56])
    paper = {r.model: r.value for r in reported("se_lcn") if r.metric == "balanced_accuracy"}
    assert table["balanced_accuracy (paper)"].iloc[:2].tolist() == [paper["EfficientNet-B4 (standalone)"],
                                                                    paper["SE-LCN (none_lae)"]]
    assert np.isnan(table["balanced_accuracy (paper)"].iloc[2])
    assert (tmp_path / "headline.csv").is_file()
    assert result["summary"]["bacc_baseline"] == pytest.approx(0.42)
    comp = result["comparison"]
    standalone = comp[(comp["model"] == "EfficientNet-B4 (standalone)") & (comp["metric"] == "balanced_accuracy")]
    assert standalone["ours"].tolist() == pytest.approx([0.42])


def test_without_the_baseline_the_headline_has_the_two_cam_rows(synthetic_dir: Path) -> None:
    cfg = se.SELCNConfig(data_dir=str(synthetic_dir), baseline=False)
    cls_ds, _ = se.load_data(cfg)
    assert [v.key for v in se.classifier_variants(cls_ds, {}, cfg)] == ["with_cam", "without_cam"]
    means = {se.CLASSIFIERS["with_cam"]: {"balanced_accuracy": 0.6}, se.CLASSIFIERS["without_cam"]: {}}
    assert se.headline_table(means, cfg)["paper_row"].tolist() == ["SE-LCN (none_lae)", "(not in the paper)"]
