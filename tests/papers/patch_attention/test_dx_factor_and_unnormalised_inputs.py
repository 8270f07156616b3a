"""Inputs of the patch-attention notebook as the code feeds them (methods-a §1.2-1.3): the diagnosis factor per
image (all classes, or only one with ``dx_only_class``) and images in [0, 1] without ImageNet normalisation."""
from __future__ import annotations

import numpy as np
import pytest

from lesionkit.config import ConfigError
from lesionkit.papers.patch_attention import recipe as pa
from lesionkit.losses import DX_TYPE_FACTORS


def test_the_factor_goes_to_every_class_or_only_to_dx_only_class(synthetic_dir) -> None:
    base = {"data_dir": str(synthetic_dir), "pretrained": False}
    every = pa.load(pa.PatchAttentionConfig.from_params(base)).df
    kinds = every["dx_type"].fillna("consensus").str.lower()
    np.testing.assert_array_equal(every["dx_factor"], kinds.map(DX_TYPE_FACTORS).to_numpy(np.float32))
    assert every.loc[every["label"] != "nv", "dx_factor"].nunique() > 1  # the code's stale-key reading: all classes
    nv = pa.load(pa.PatchAttentionConfig.from_params({**base, "dx_only_class": "nv"})).df
    assert (nv.loc[nv["label"] != "nv", "dx_factor"] == 1.0).all()
    np.testing.assert_array_equal(nv.loc[nv["label"] == "nv", "dx_factor"], every.loc[every["label"] == "nv",
                                                                                     "dx_factor"])
    with pytest.raises(ConfigError, match="dx_only_class='xx'"):
        pa.load(pa.PatchAttentionConfig.from_params({**base, "dx_only_class": "xx"}))


@pytest.mark.parametrize("attention", [True, False])
def test_models_take_images_in_0_1_without_normalisation(attention: bool) -> None:
    cfg = pa.PatchAttentionConfig.from_params({"backbone": "resnet10t", "image_size": 32, "pretrained": False})
    model = pa.build_model(cfg, 7, attention)
    assert model.default_cfg["mean"] == (0.0, 0.0, 0.0) and model.default_cfg["std"] == (1.0, 1.0, 1.0)
    assert model.default_cfg["input_size"] == (3, *cfg.full_size) == (3, 64, 86)
