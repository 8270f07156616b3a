""""Going Smaller" attention EfficientNet-B3 models: pinned parameter counts and the blocks' formulas."""
from __future__ import annotations

import pytest
import timm
import torch

from lesionkit.layers import CBAM, S2Attention, SpatialAttention, SpatialGroupEnhance, spatial_shift1, spatial_shift2
from lesionkit.models import create_model

torch.set_num_threads(1)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


PLAIN_B3_9 = 10_710_065
CBAM_B3 = [4_851, 4_931, 5_091, 5_955, 6_979, 11_299, 23_235]  # spec methods-b §B.3, stages 0..6


def test_plain_b3_with_nine_classes() -> None:
    assert n_params(create_model("tf_efficientnet_b3", num_classes=9)) == PLAIN_B3_9
    assert n_params(create_model("effb3_baseline")) == PLAIN_B3_9


@pytest.mark.parametrize("name, extra", [("sge_b3", 96), ("spatial_b3", 6 * 98), ("s2mlp_b3", 431_520),
                                         ("s2cbam_b3", sum(CBAM_B3) + 431_520)])
def test_attention_models_add_exactly_their_blocks(name: str, extra: int) -> None:
    assert n_params(create_model(name)) == PLAIN_B3_9 + extra


def test_cbam_counts_per_stage_and_kernel_option() -> None:
    model = create_model("s2cbam_b3")
    counts = [n_params(model.attn[str(i)][-1] if i == 5 else model.attn[str(i)]) for i in range(7)]
    assert counts == CBAM_B3
    assert sum(CBAM_B3) == 62_341
    small = CBAM(232, kernel_size=7)
    assert n_params(small) == 2 * 232 * 14 + 2 * 49 + 1


def test_s2_attention_count_at_232_channels() -> None:
    assert n_params(S2Attention(232)) == 431_520


def test_s2_sits_before_the_last_stage_at_232_channels() -> None:
    model = create_model("s2mlp_b3")
    assert list(model.attn.keys()) == ["5"]
    assert model.attn["5"].mlp2.out_features == 232


def test_backbone_keeps_timm_names_so_imagenet_b3_loads_by_name() -> None:
    model = create_model("sge_b3")
    assert set(model.backbone.state_dict()) == set(timm.create_model("tf_efficientnet_b3", num_classes=9).state_dict())


def test_sge_options_and_init() -> None:
    x = torch.randn(2, 16, 5, 5)
    sge = SpatialGroupEnhance(16, groups=8)  # γ = 0, β = 0: every map is σ(0) = 0.5
    torch.testing.assert_close(sge(x), 0.5 * x)
    sge_paper = SpatialGroupEnhance(16, groups=8, beta_init=1.0)
    torch.testing.assert_close(sge_paper(x), torch.sigmoid(torch.tensor(1.0)) * x)
    assert n_params(sge) == 16
    model = create_model("sge_b3", sge_beta_init=1.0)
    assert torch.all(model.attn["1"].bias == 1.0)


def test_sge_map_hand_computed() -> None:
    """One group, 2 channels, 1×2 map: x_c · mean(x_c) summed, standardised, γ = 1."""
    x = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (1, 2, 1, 2)
    sge = SpatialGroupEnhance(2, groups=1)
    with torch.no_grad():
        sge.weight.fill_(1.0)
    # similarity: channel means 2 and 1 -> s = [1·2 + 2·1, 3·2 + 0·1] = [4, 6]; standardised (unbiased std √2)
    t = torch.tensor([-1.0, 1.0]) / (2 ** 0.5 + 1e-5)
    expected = x * torch.sigmoid(t).reshape(1, 1, 1, 2)
    torch.testing.assert_close(sge(x), expected)


def test_spatial_attention_is_98_parameters_and_gates_positions() -> None:
    block = SpatialAttention(kernel_size=7)
    assert n_params(block) == 98
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        block.conv.weight.zero_()
    torch.testing.assert_close(block(x), 0.5 * x)


@pytest.mark.parametrize("kernel, bias", [(7, False), (49, True)])
def test_spatial_conv_keeps_pytorchs_init_by_default_and_starts_at_zero_as_option(kernel: int, bias: bool) -> None:
    """The originals (CBAM, External-Attention) leave nn.Conv2d's init; "zeros" starts the weights (not a bias) at 0."""
    torch.manual_seed(0)
    default = SpatialAttention(kernel_size=kernel, bias=bias)
    bound = 1 / (2 * kernel * kernel) ** 0.5  # kaiming_uniform(a=√5) of a 2-channel k×k conv: U(±1/√fan_in)
    w = default.conv.weight
    assert w.abs().max() <= bound and w.std() > bound / 3 and w.abs().min() < bound
    zeros = SpatialAttention(kernel_size=kernel, bias=bias, init="zeros")
    assert torch.count_nonzero(zeros.conv.weight) == 0 and n_params(zeros) == n_params(default)
    if bias:
        assert torch.count_nonzero(zeros.conv.bias) == 1  # the bias keeps its own init
    with pytest.raises(ValueError, match="init='kaiming'"):
        SpatialAttention(init="kaiming")


@pytest.mark.parametrize("name, blocks", [("spatial_b3", 6), ("s2cbam_b3", 7)])
def test_spatial_init_reaches_every_spatial_conv_and_keeps_the_counts(name: str, blocks: int) -> None:
    def convs(model: torch.nn.Module) -> list[torch.Tensor]:
        return [m.conv.weight for m in model.modules() if isinstance(m, SpatialAttention)]

    default = create_model(name, backbone="tf_efficientnet_lite0")
    zeros = create_model(name, backbone="tf_efficientnet_lite0", spatial_init="zeros")
    assert len(convs(default)) == len(convs(zeros)) == blocks
    assert all(torch.count_nonzero(w) == w.numel() for w in convs(default))
    assert all(torch.count_nonzero(w) == 0 for w in convs(zeros))
    assert n_params(default) == n_params(zeros)


def test_cbam_has_the_residual() -> None:
    block = CBAM(32)
    with torch.no_grad():
        block.channel.fc1.weight.fill_(1.0)  # positive hidden units for a positive input, so that
        block.channel.fc2.weight.fill_(-1e4)  # the channel gate -> 0 and only the residual is left
    x = torch.rand(1, 32, 4, 4)
    torch.testing.assert_close(block(x), x)


def test_spatial_shifts_move_quarters_and_keep_the_border() -> None:
    x = torch.arange(3 * 3 * 4, dtype=torch.float32).reshape(1, 3, 3, 4)  # (B, H, W, C) with C = 4: one per quarter
    s1 = spatial_shift1(x)
    torch.testing.assert_close(s1[0, :, :, 0], torch.stack([x[0, 0, :, 0], x[0, 0, :, 0], x[0, 1, :, 0]]))  # +H
    torch.testing.assert_close(s1[0, :, :, 1], torch.stack([x[0, 1, :, 1], x[0, 2, :, 1], x[0, 2, :, 1]]))  # -H
    torch.testing.assert_close(s1[0, :, :, 2], torch.stack([x[0, :, 0, 2], x[0, :, 0, 2], x[0, :, 1, 2]], 1))  # +W
    torch.testing.assert_close(s1[0, :, :, 3], torch.stack([x[0, :, 1, 3], x[0, :, 2, 3], x[0, :, 2, 3]], 1))  # -W
    s2 = spatial_shift2(x)
    torch.testing.assert_close(s2[0, :, :, 0], torch.stack([x[0, :, 0, 0], x[0, :, 0, 0], x[0, :, 1, 0]], 1))  # +W
    torch.testing.assert_close(s2[0, :, :, 2], torch.stack([x[0, 0, :, 2], x[0, 0, :, 2], x[0, 1, :, 2]]))  # +H
    assert torch.equal(x, torch.arange(36, dtype=torch.float32).reshape(1, 3, 3, 4))  # out of place


def test_s2_attention_split_weights_are_a_softmax_over_branches() -> None:
    block = S2Attention(8)
    x = torch.randn(2, 8, 4, 4)
    y = block(x)
    assert y.shape == x.shape
    z = torch.randn(2, 3, 4, 4, 8)
    with torch.no_grad():
        block.split_attention.mlp2.weight.zero_()  # equal branch weights 1/3
    torch.testing.assert_close(block.split_attention(z), z.mean(1))
