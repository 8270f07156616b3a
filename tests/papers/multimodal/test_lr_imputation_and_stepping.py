"""Issue 30's multimodal items, by behaviour: `lr` is the peak the optimiser reaches at the end of the warm-up, missing
sex/age are imputed from the training rows by default (the code's §C.3) with the 1st place's constants as option,
and the schedule moves every batch by default or once per epoch (the code's) as option."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback
from torch import nn

from lesionkit.data.splits import Splits
from lesionkit.engine import EngineSettings, fit
from lesionkit.papers.multimodal import recipe as mm

LITE = {"backbone": "tf_efficientnet_lite0", "pretrained": "false"}


class _LrTrace(Callback):
    """The optimiser's learning rate at every training batch, after the schedule has set it."""

    order = 61  # after fastai's ParamScheduler (order 60), which sets the rate before each batch

    def before_fit(self) -> None:
        self.lrs: list[tuple[int, float]] = []

    def before_batch(self) -> None:
        if self.training:
            self.lrs.append((self.epoch, self.opt.hypers[-1]["lr"]))


class _Tiny(nn.Module):
    """A linear head on the mean colour, so the schedule test trains in seconds (the optimiser is the recipe's)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.lin(x.mean((2, 3)))


def _lr_trace(synthetic_dir: Path, epochs: int, **params) -> tuple[float, list[tuple[int, float]]]:
    cfg = mm.MultimodalConfig.from_params({"data_dir": str(synthetic_dir), "image_size": 32, "batch_size": 8,
                                           "max_images": 48, "epochs": epochs, "preset": "none", **LITE, **params})
    ds = mm.load_data(cfg)
    idx = np.arange(len(ds))
    splits = Splits(test=idx[:8], folds=[(idx[8:40], idx[40:])])
    trace = _LrTrace()
    v = replace(mm.variant(ds, splits, cfg, use_meta=True), model=_Tiny, cbs=lambda: [trace])
    learn = v.learner(*splits.folds[0])
    fit(learn, v.epochs, v.lr, v.schedule, monitor="valid_loss", headless=True,
        settings=EngineSettings(speedups="off"))
    return cfg.lr, trace.lrs


def test_lr_is_the_peak_the_optimiser_reaches_at_the_end_of_the_warmup(synthetic_dir: Path) -> None:
    """The paper's run: --init-lr 3e-5 warmed up x10 to 3e-4 (§A.7/§C.5), i.e. `lr` = 3e-4, the same training."""
    assert mm.MultimodalConfig().lr == pytest.approx(3e-4)
    lr, lrs = _lr_trace(synthetic_dir, epochs=3, schedule_stepping="batch")
    first, second = [x for e, x in lrs if e == 0], [x for e, x in lrs if e == 1]
    assert first[0] == pytest.approx(lr / 10)                # the code's 3e-5 at the first batch
    assert first == sorted(first) and first[-1] < lr          # rising through the warm-up epoch
    assert second[0] == pytest.approx(lr) and max(x for _, x in lrs) == pytest.approx(lr)  # the peak is `lr`
    assert second[-1] < second[0]                             # then the cosine, every batch


def test_stepping_once_per_epoch_is_the_codes_schedule(synthetic_dir: Path) -> None:
    """§A.7: epoch 1 at lr/10, epoch 2 at lr, epoch e >= 3 at lr·½(1 + cos(π(e−2)/(N−1))), constant within each
    epoch: the default (smoke runs step every batch)."""
    lr, lrs = _lr_trace(synthetic_dir, epochs=3)
    by_epoch = {e: {round(x, 12) for k, x in lrs if k == e} for e in range(3)}
    assert all(len(v) == 1 for v in by_epoch.values())       # one value per epoch
    values = [next(iter(by_epoch[e])) for e in range(3)]
    assert values == pytest.approx([lr / 10, lr, lr * (1 + np.cos(np.pi / 2)) / 2])
    assert mm.MultimodalConfig().schedule_stepping == "epoch"
    assert mm.MultimodalConfig(smoke=True).effective().schedule_stepping == "batch"


def _with_missing() -> pd.DataFrame:
    rows = [{"sex": s, "age": a, "site": "torso", "patient_id": f"P{i}"}
            for i, (s, a) in enumerate([("male", 40.0), ("male", 50.0), ("female", 80.0), ("male", None),
                                        (None, 70.0), (None, None)])]
    return pd.DataFrame(rows)


def test_missing_sex_and_age_take_the_training_mode_and_median_by_default() -> None:
    """§C.3: sex NaN → the mode (male here), age NaN → the median (50), before male 1 / female 0 and /90."""
    df = _with_missing()
    ds = type("DS", (), {"df": df})()
    splits = Splits(test=np.array([], int), folds=[(np.arange(3), np.arange(3, 6))])  # training rows: 0-2
    assert mm.MultimodalConfig().meta_missing == "impute"
    x = mm.meta_encoder(ds, splits, mm.MultimodalConfig()).transform(df)
    assert x[3, 0] == 1.0 and x[4, 0] == 1.0 and x[5, 0] == 1.0         # the training rows' modal sex: male
    assert x[3, 1] == pytest.approx(50 / 90) and x[5, 1] == pytest.approx(50 / 90)  # their median age
    assert x[4, 1] == pytest.approx(70 / 90)                              # a known age is kept
    old = mm.meta_encoder(ds, splits, mm.MultimodalConfig(meta_missing="first_place")).transform(df)
    assert (old[4, 0], old[5, 0], old[3, 1], old[5, 1]) == (-1.0, -1.0, 0.0, 0.0)  # the 1st place's constants
