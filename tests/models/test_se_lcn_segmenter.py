"""SE-LCN's segmenter: the code's DeepLabV3+ head (methods-a §3.1 (a)) by default, smp's as an option."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lesionkit.models import create_model
from lesionkit.models.se_lcn import ASPP, DeepLabV3PlusDecoder, LesionSegmenter

torch.set_num_threads(1)


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_default_head_is_the_codes_aspp_and_decoder_on_xception65_at_output_stride_16() -> None:
    torch.manual_seed(0)
    model = create_model("selcn_segmenter").eval()
    assert model.head == "paper" and model.encoder_name == "tu-xception65"
    assert len(model.encoder.blocks) == 3 + 16 + 2  # entry 3, middle 16 (code's block4-19), exit 2
    aspp = model.decoder.aspp
    assert isinstance(aspp, ASPP) and isinstance(model.decoder, DeepLabV3PlusDecoder)
    dilated = [c for b in aspp.branches for c in _convs(b) if c.kernel_size == (3, 3)]
    assert [c.dilation[0] for c in dilated] == [6, 12, 18] and all(c.groups == 1 for c in dilated)  # not separable
    assert all(c.out_channels == 256 for c in _convs(aspp)) and aspp.project[0].in_channels == 5 * 256
    assert (model.decoder.shortcut[0].in_channels, model.decoder.shortcut[0].out_channels) == (256, 48)
    fuse = list(model.decoder.fuse)  # [3×3 304→256, BN, ReLU] Dropout .5 [3×3 256→256, BN, ReLU] Dropout .1
    assert [c.kernel_size for c in _convs(model.decoder.fuse)] == [(3, 3), (3, 3)]
    assert _convs(model.decoder.fuse)[0].in_channels == 304
    assert [m.p for m in fuse if isinstance(m, nn.Dropout)] == [0.5, 0.1] and model.decoder.aspp_dropout.p == 0.5
    assert all(isinstance(s[1], nn.BatchNorm2d) and isinstance(s[2], nn.ReLU) for s in fuse[::2])
    assert model.classifier[0].kernel_size == (1, 1) and model.classifier[0].out_channels == 2
    x = torch.rand(2, 3, 96, 128)
    low, high = model.encoder.forward_intermediates(x, indices=model.feature_indices, intermediates_only=True)
    assert tuple(low.shape) == (2, 256, 24, 32)  # block2's stride-4 map
    assert tuple(high.shape) == (2, 2048, 6, 8)  # output stride 16
    with torch.no_grad():
        assert tuple(model.forward_features(x).shape) == (2, 256, 24, 32)
        assert tuple(model(x).shape) == (2, 2, 96, 128)  # a mask of the input size
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.rand(1, 3, 72, 64))


def test_smp_head_is_kept_as_an_option() -> None:
    model = create_model("selcn_segmenter", head="smp", encoder="tu-tf_efficientnet_lite0").eval()
    rates = [c.dilation[0] for c in _convs(model.net.decoder.aspp) if c.dilation[0] > 1]
    assert sorted(set(rates)) == [12, 24, 36]
    with torch.no_grad():
        assert tuple(model(torch.rand(1, 3, 64, 64)).shape) == (1, 2, 64, 64)
    with pytest.raises(ValueError, match="head="):
        LesionSegmenter(head="unet")


def test_other_timm_encoders_and_rates() -> None:
    model = create_model("selcn_segmenter", encoder="tu-tf_efficientnet_lite0", aspp_rates=(2, 4, 6)).eval()
    assert [c.dilation[0] for b in model.decoder.aspp.branches for c in _convs(b)][1:] == [2, 4, 6]
    with torch.no_grad():
        assert tuple(model(torch.rand(1, 3, 64, 64)).shape) == (1, 2, 64, 64)
    model.reset_classifier(3)
    with torch.no_grad():
        assert tuple(model(torch.rand(1, 3, 64, 64)).shape) == (1, 3, 64, 64)
