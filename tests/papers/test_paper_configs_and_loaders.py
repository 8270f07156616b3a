"""Library logic of the three paper notebooks (patch attention, ARL, attention B3): configs, loss plumbing, loaders."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from lesionkit.config import ConfigError
from lesionkit.data.table import LesionDataset
from lesionkit.papers.arl import recipe as arl
from lesionkit.papers.attention_b3 import recipe as attention_b3
from lesionkit.papers.patch_attention import recipe as patch_attention


def test_patch_config_paper_defaults_and_geometry() -> None:
    cfg = patch_attention.PatchAttentionConfig.from_params({})
    assert (cfg.variant, cfg.n_patches, cfg.backbone, cfg.schedule) == ("paper", 5, "inception_v3", "step")
    assert cfg.full_size == (450, 600) and cfg.modes == ["off", "on"]
    small = patch_attention.PatchAttentionConfig.from_params({"image_size": 112, "dx_weighting": "on"})
    assert small.full_size == (225, 300) and small.modes == ["on"]
    smoke = patch_attention.PatchAttentionConfig.from_params({"smoke": True}).effective()
    assert smoke.epochs == 1 and smoke.image_size == 32 and smoke.folds == 2


@pytest.mark.parametrize("params, message", [({"n_patches": 7}, "n_patches"), ({"patch_dropot": 0.1}, "did you mean"),
                                             ({"variant": "both"}, "variant")])
def test_patch_config_rejects_bad_parameters(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        patch_attention.PatchAttentionConfig.from_params(params)


def test_factor_cross_entropy_is_the_batch_mean_of_d_w_ce() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(4, 3), torch.tensor([0, 2, 1, 2])
    w, d = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 1.0, 2.0, 3.0])
    expected = (d * w[y] * F.cross_entropy(logits, y, reduction="none")).mean()
    loss = patch_attention.FactorCrossEntropy(w)
    loss.factor = d
    assert torch.allclose(loss(logits, y), expected)
    off = patch_attention.FactorCrossEntropy(w, use_factor=False)
    off.factor = d
    assert torch.allclose(off(logits, y), (w[y] * F.cross_entropy(logits, y, reduction="none")).mean())
    loss.factor = d[:3]
    with pytest.raises(ValueError, match="3 diagnosis factors for a batch of 4"):
        loss(logits, y)


def test_factor_callback_moves_the_second_target_into_the_loss() -> None:
    loss = patch_attention.FactorCrossEntropy()
    learn = SimpleNamespace(loss_func=loss, yb=(torch.tensor([1, 0]), torch.tensor([4.0, 2.0])))
    cb = patch_attention.FactorCallback()
    cb.learn = learn
    cb.before_batch()
    assert len(learn.yb) == 1 and torch.equal(loss.factor, torch.tensor([4.0, 2.0]))
    cb.before_batch()  # a batch without factors clears them
    assert loss.factor is None


def _image_dataset(tmp_path: Path, n: int = 6) -> LesionDataset:
    from PIL import Image

    rows = []
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((40, 40, 3), 20 * i, np.uint8)).save(p)
        label = ["mel", "nv"][i % 2]
        rows.append({"image_id": f"I{i}", "path": str(p), "label": label, "label_idx": i % 2, "lesion_id": f"L{i}",
                     "patient_id": np.nan, "age": np.nan, "sex": "unknown", "site": "back",
                     "dx_type": ["histo", "consensus", "follow_up"][i % 3], "mask_path": np.nan, "split": np.nan})
    return LesionDataset("tiny", tmp_path, pd.DataFrame(rows), ["mel", "nv"], task="multiclass")


def test_patch_dls_yield_patch_grids_labels_and_factors(tmp_path: Path) -> None:
    ds = _image_dataset(tmp_path)
    ds.df = ds.df.assign(dx_factor=ds.df["dx_type"].map({"histo": 4.0, "consensus": 1.0, "follow_up": 2.0}))
    cfg = patch_attention.PatchAttentionConfig.from_params({"image_size": 32, "batch_size": 3, "n_patches": 9})
    dls = patch_attention.patch_dls(ds, np.array([0, 1, 2]), np.array([3, 4, 5]), cfg)
    x, y, d = dls.valid.one_batch()
    assert tuple(x.shape) == (3, 9, 3, 32, 32) and float(x.max()) <= 1.0
    assert y.tolist() == [1, 0, 1] and d.tolist() == [4.0, 1.0, 2.0]
    # every patch of a flat image has its grey value (the validation grid is not augmented)
    assert torch.allclose(x[0, :, 0], torch.full((9, 32, 32), 60 / 255), atol=2 / 255)
    with pytest.raises(Exception, match="group leak|lesion"):
        ds.df.loc[3, "lesion_id"] = "L0"
        patch_attention.patch_dls(ds, np.array([0, 1, 2]), np.array([3, 4, 5]), cfg)


def test_arl_config_models_and_variant() -> None:
    cfg = arl.ARLConfig.from_params({})
    assert cfg.models == {"ARL-CNN50": "arl", "ResNet-50": "resnet"}
    assert (cfg.variant, cfg.optimizer, cfg.schedule, cfg.test_views, cfg.norm) == ("paper", "sgd", "step", "multiscale",
                                                                              "isic2017")
    assert arl.ARLConfig.from_params({"baseline": "false", "depth": 18}).models == {"ARL-CNN18": "arl"}
    with pytest.raises(ConfigError, match="depth"):
        arl.ARLConfig.from_params({"depth": 101})


def _arl_model(cfg: arl.ARLConfig, kind: str) -> torch.nn.Module:
    return {v.key: v for v in arl.variants(None, cfg)}[kind].model()  # the recipe's own model builder


def test_arl_models_differ_only_by_the_arl_term() -> None:
    cfg = arl.ARLConfig.from_params({"depth": 18, "pretrained": "false"})
    a, r = _arl_model(cfg, "arl"), _arl_model(cfg, "resnet")
    n_blocks = 8
    assert sum(p.numel() for p in a.parameters()) - sum(p.numel() for p in r.parameters()) == n_blocks  # one alpha
    code = _arl_model(arl.ARLConfig.from_params({"depth": 18, "variant": "code", "pretrained": "false"}), "arl")
    assert sum(p.numel() for p in code.parameters()) == sum(p.numel() for p in r.parameters())
    assert a(torch.rand(2, 3, 64, 64)).shape == (2, 1)
    assert set(arl.alphas(a)["alpha"].round(6)) == {0.001}


def test_b3_config_models_and_variants() -> None:
    cfg = attention_b3.AttentionB3Config.from_params({})
    assert cfg.model_list == ["sge_b3", "spatial_b3", "s2mlp_b3", "s2cbam_b3", "effb3_baseline"]
    assert cfg.model_kwargs == {"backbone": "tf_efficientnet_b3.aa_in1k", "sge_beta_init": 0.0, "cbam_kernel": 49,
                                "spatial_init": "pytorch"}
    other = attention_b3.AttentionB3Config.from_params({"variant": "module_papers"})
    assert other.model_kwargs["sge_beta_init"] == 1.0 and other.model_kwargs["cbam_kernel"] == 7
    with pytest.raises(ConfigError, match="unknown"):
        attention_b3.AttentionB3Config.from_params({"models": "sge_b3,cbam_b7"})


def test_b3_evaluate_scores_the_positive_column_with_bootstrap() -> None:
    cfg = attention_b3.AttentionB3Config.from_params({"n_bootstrap": 20})
    ds = SimpleNamespace(classes=["bcc", "mel", "nv"])
    y = np.array([1, 1, 0, 2, 2, 0])
    probs = np.array([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8],
                      [0.5, 0.4, 0.1]])
    report = attention_b3.evaluate(probs, y, ds, cfg)
    assert report["auc"] == 1.0 and report["spec_at_sens95"] == 1.0
    assert 0.0 <= report["spec_at_sens95_bootstrap"] <= 1.0 and "bootstrap" not in report


def test_b3_parameter_table_matches_the_spec_counts() -> None:
    cfg = attention_b3.AttentionB3Config.from_params({"models": "sge_b3,spatial_b3"})
    table = attention_b3.param_table(cfg, n_classes=7).set_index("model")
    assert table.loc["B3 baseline", "params_9_classes"] == 10_710_065
    assert table.loc["SGE-B3", "attention_params"] == 96 and table.loc["Spatial-B3", "attention_params"] == 588
    assert table.loc["SGE-B3", "params_9_classes"] - table.loc["SGE-B3", "params_7_classes"] == 2 * 1537


def test_each_notebook_is_named_once_by_its_config_class(tmp_path, monkeypatch) -> None:
    """notebooks/<name>.ipynb <-> the one Config class whose ``notebook`` is <name>; start() opens runs/<name>/."""
    from lesionkit.papers import notebook_configs
    from lesionkit.papers.common import start
    from lesionkit.utils.paths import repo_root

    configs = notebook_configs()
    assert sorted(configs) == sorted(p.stem for p in (repo_root() / "notebooks").glob("*.ipynb"))
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    run = start(configs["arl"], {"smoke": True, "depth": 18})
    assert run.dir.parent == tmp_path / "runs" / "arl" and run.cfg.depth == 18


def test_save_models_names_the_headline_model_and_prefixes_the_others(tmp_path) -> None:
    import json

    from lesionkit.models import create_model, load_model
    from lesionkit.papers.common import save_models
    from lesionkit.records.runs import Run

    run = Run(tmp_path, "t")
    learners = {k: SimpleNamespace(model=create_model("resnet10t", num_classes=2)) for k in ("a", "b")}
    save_models(run, learners, headline="b", prefix="model_classifier", spec=lambda key: {"entry": key})
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["model.pth", "model_classifier_a.pth"]
    assert json.loads((tmp_path / "model.json").read_text())["entry"] == "b"
    rebuilt = load_model(tmp_path)
    for k, w in learners["b"].model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[k], w), k


def test_run_all_twice_in_one_kernel_reads_only_the_parameters_cells(tmp_path, monkeypatch) -> None:
    """A second Run All sees the first run's globals (run, cfg, learn ...): only the names the parameters cells
    assign are parameters, with their new values; a misspelled name in papermill's injected cell is still refused."""
    from lesionkit.notebook.cell import parameters_cell
    from lesionkit.papers.common import start
    from lesionkit.papers.quickstart.recipe import QuickstartConfig

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    namespace: dict = {"In": [""], "start": start, "QuickstartConfig": QuickstartConfig}

    def run_cell(source: str) -> None:  # what IPython does: record the input, then run it in the user namespace
        namespace["In"].append(source)
        exec(source, namespace)  # noqa: S102 - the test plays the kernel

    config_cell = "run = start(QuickstartConfig, globals())\ncfg = run.cfg"
    cell = parameters_cell(QuickstartConfig).replace("smoke: bool = False", "smoke: bool = True")
    run_cell(cell)
    run_cell(config_cell)
    first = namespace["run"]
    run_cell("learn, ds, splits, result = object(), [1], {'a': 1}, 0.5")  # the rest of the first Run All
    run_cell(cell.replace('run_name: str = ""', 'run_name: str = "second"'))
    run_cell(config_cell)
    assert namespace["cfg"].run_name == "second" and namespace["run"].dir != first.dir
    assert first.cfg.run_name == "" and namespace["cfg"].smoke

    run_cell(cell)
    run_cell("# Parameters\nepoch = 3\n")  # papermill's injected cell, with a misspelled name
    with pytest.raises(ConfigError, match="unknown parameter 'epoch'") as err:
        run_cell(config_cell)
    assert "'run'" not in str(err.value) and "'learn'" not in str(err.value)


def test_config_cell_refuses_weights_this_machine_lacks_in_a_few_lines(tmp_path, monkeypatch) -> None:
    """ARL's defaults need ImageNet ResNet-50 weights: without them start() stops (run recorded as failed) with a
    short message naming the parameter and the quickest ways on; IPython shows the message, not a traceback."""
    import json

    import lesionkit.models.pretrained as pretrained
    from lesionkit.papers.common import start

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(pretrained, "weights_reachable", lambda arch: arch != "resnet50")
    with pytest.raises(ConfigError) as err:
        start(arl.ARLConfig, {})
    message = str(err.value)
    assert "resnet50 (depth = 50)" in message and 'pretrained = "false"' in message and "smoke = True" in message
    assert "huggingface-cli download timm/resnet50" in message
    shown = err.value._render_traceback_()
    assert len(shown) <= 3 and "ConfigError" in shown[0] and not any("Traceback" in line for line in shown)
    (run_dir,) = (tmp_path / "runs" / "arl").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert start(arl.ARLConfig, {"smoke": True}).cfg.pretrained is False  # the way on that the message offers


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU machine can compile")
def test_config_cell_refuses_gpu_only_options_on_cpu(tmp_path, monkeypatch) -> None:
    from lesionkit.papers.common import start
    from lesionkit.papers.quickstart.recipe import QuickstartConfig

    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))
    with pytest.raises(ConfigError, match="torch_compile = True needs a GPU"):
        start(QuickstartConfig, {"torch_compile": True, "smoke": True})
