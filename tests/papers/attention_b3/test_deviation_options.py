"""Issue 30's Going Smaller items, by behaviour: the spatial convs start from PyTorch's init unless
`spatial_init="zeros"`, the plain B3 trains by default, the winners' ProveAI rows are printed beside the run, and
the schedule moves every batch by default or once per epoch (the code's) as option."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from lesionkit.layers.spatial_attention import SpatialAttention
from lesionkit.papers.attention_b3 import recipe as b3

EPOCHS = 35


def _spatial_convs(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.conv.weight for m in model.modules() if isinstance(m, SpatialAttention)]


@pytest.mark.parametrize("name", ["spatial_b3", "s2cbam_b3"])
def test_config_threads_spatial_init_into_the_model(name: str) -> None:
    cfg = b3.AttentionB3Config(backbone="tf_efficientnet_lite0")
    assert cfg.spatial_init == "pytorch" and cfg.model_kwargs["spatial_init"] == "pytorch"
    default = b3.build_model(name, cfg, 9, pretrained=False)
    zeros = b3.build_model(name, b3.AttentionB3Config(backbone="tf_efficientnet_lite0", spatial_init="zeros"), 9,
                           pretrained=False)
    assert all(torch.count_nonzero(w) == w.numel() for w in _spatial_convs(default))  # nn.Conv2d's own init
    assert all(torch.count_nonzero(w) == 0 for w in _spatial_convs(zeros))
    assert sum(p.numel() for p in default.parameters()) == sum(p.numel() for p in zeros.parameters())


def test_the_plain_b3_trains_by_default_beside_the_four() -> None:
    cfg = b3.AttentionB3Config()
    assert cfg.model_list == ["sge_b3", "spatial_b3", "s2mlp_b3", "s2cbam_b3", "effb3_baseline"]
    assert cfg.headline == "sge_b3"  # the paper's best model still leads the summary
    assert "effb3_baseline" in b3.NO_MAP  # explained by Grad-CAM only: no attention map to ask for


def test_the_winners_proveai_rows_are_printed_beside_the_run() -> None:
    ours = {"SGE-B3": {"auc": 0.7, "ap": 0.4}, "B3 baseline": {"auc": 0.6, "ap": 0.3}}
    table = b3.beside_the_winners({"ours": ours, "ours_on": "synthetic"}).set_index("model")
    assert table.loc["B3 baseline", "source"] == "this run" and table.loc["B3 baseline", "auc"] == 0.6
    assert pd.isna(table.loc["B3 baseline", "f1_weighted"])
    winners = {"1st place ensemble (ProveAI)": 0.844, "2nd place ensemble (ProveAI)": 0.787,
               "3rd place ensemble (ProveAI)": 0.699, "SGE-B3": 0.815}  # methods-b §B.10
    reported = table[table["source"] == "reported"]
    for model, auc in winners.items():
        assert reported.loc[model, "auc"] == auc and "ProveAI" in reported.loc[model, "on"]
    assert reported.loc["2nd place ensemble (ProveAI)", "spec_at_sens95_bootstrap"] == 0.248


def _lr_at(cfg: b3.AttentionB3Config, epoch: int, frac: float) -> float:
    """The schedule's rate `frac` of the way through 0-based `epoch` of the variant's run."""
    v = b3.variant("sge_b3", _Rows(), cfg, n_classes=9)
    return v.schedule.scheds(v.lr, v.epochs)["lr"]((epoch + frac) / v.epochs)


class _Rows:
    """Just enough of a dataset for `variant` to declare the recipe (nothing is loaded)."""

    n_classes = 9
    df = pd.DataFrame({"label_idx": range(9)})


def test_stepping_per_epoch_by_default_as_the_code_and_per_batch_as_option() -> None:
    epoch = b3.AttentionB3Config(backbone="tf_efficientnet_lite0", pretrained=False)
    batch = b3.AttentionB3Config(backbone="tf_efficientnet_lite0", pretrained=False, schedule_stepping="batch")
    lr = batch.lr
    assert epoch.schedule_stepping == "epoch"
    assert b3.AttentionB3Config(smoke=True).effective().schedule_stepping == "batch"  # 1 epoch, not all at lr/10
    assert _lr_at(batch, 0, 0.5) == pytest.approx(lr * (1 + 9 * 0.5) / 10)  # half-way up the warm-up
    assert _lr_at(batch, EPOCHS - 1, 0.999) < lr * 1e-4                      # down to ~0 at the end
    # the code (§B.7, §A.7): epoch 1 at lr/10, epoch 2 at lr, epoch e >= 3 at lr·½(1 + cos(π(e−2)/(N−1)))
    assert _lr_at(epoch, 0, 0.0) == _lr_at(epoch, 0, 0.9) == pytest.approx(lr / 10)
    assert _lr_at(epoch, 1, 0.5) == pytest.approx(lr)
    last = lr * (1 + math.cos(math.pi * (EPOCHS - 2) / (EPOCHS - 1))) / 2
    assert _lr_at(epoch, EPOCHS - 1, 0.999) == pytest.approx(last) and last > 0
