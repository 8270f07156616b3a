"""Patch-based attention: the code's ordered patch grid, gates, patch dropout, combiners, in-block variant."""
from __future__ import annotations

import pytest
import torch

from lesionkit.layers import PatchGate
from lesionkit.models.patch_attention import PATCH_COMBINERS, extract_patches, patch_grid, unstack_patches
from lesionkit.models import create_model

torch.set_num_threads(1)

TINY = dict(backbone="resnet10t", patch_size=32, image_size=(64, 64))


def test_ham_grid_p5_matches_the_code() -> None:
    corners = patch_grid((450, 600), 5, 224)
    assert corners == [(0, 0), (0, 376), (226, 0), (226, 376), (113, 188)]


def test_sevenpoint_grid_p9_matches_the_code() -> None:
    corners = patch_grid((450, 600), 9, 224)
    assert sorted({t + 112 for t, _ in corners}) == [112, 225, 338]
    assert sorted({l + 112 for _, l in corners}) == [112, 300, 488]


@pytest.mark.parametrize("bad", [3, 7, 8])
def test_unsupported_patch_counts_are_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="n_patches"):
        patch_grid((450, 600), bad, 224)


def test_extract_patches_cuts_the_right_windows() -> None:
    image = torch.arange(450 * 600, dtype=torch.float32).reshape(1, 1, 450, 600)
    patches = extract_patches(image, 5, 224)
    assert patches.shape == (1, 5, 1, 224, 224)
    assert patches[0, 4, 0, 0, 0] == image[0, 0, 113, 188]
    assert patches[0, 3, 0, -1, -1] == image[0, 0, 449, 599]


@pytest.mark.parametrize("p, expected", [(5, 30), (9, 90)])
def test_patch_gate_parameters(p: int, expected: int) -> None:
    assert sum(q.numel() for q in PatchGate(p).parameters()) == expected


def test_patch_gate_hand_computed() -> None:
    gate = PatchGate(2)
    with torch.no_grad():
        gate.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        gate.fc.bias.zero_()
    x = torch.stack([torch.full((3, 2, 2), 2.0), torch.full((3, 2, 2), 1.0)]).unsqueeze(0)  # means 2 and 1
    out = gate(x)
    torch.testing.assert_close(out[0, 0], x[0, 0] * torch.sigmoid(torch.tensor(2.0)))
    torch.testing.assert_close(out[0, 1], x[0, 1] * torch.sigmoid(torch.tensor(-1.0)))


def test_full_image_and_precut_patches_agree() -> None:
    model = create_model("patch_attention", **TINY).eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(image), model(extract_patches(image, 5, 32)))


def test_mean_combiner_is_the_mean_of_per_patch_logits() -> None:
    model = create_model("patch_attention", **TINY).eval()
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        per_patch = unstack_patches(model.forward_features(image), 5).mean((3, 4))  # (B, P, F)
        torch.testing.assert_close(model(image), model.fc(per_patch).mean(1))


def test_patch_dropout_zero_fills_slots_in_training_only() -> None:
    model = create_model("patch_attention", patch_dropout=0.5, input_gate=False, **TINY)
    seen = []
    model.backbone.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    torch.manual_seed(0)
    model.train()(torch.rand(4, 3, 64, 64) + 0.1)
    zero_slots = (seen[-1].flatten(1).abs().sum(1) == 0)
    assert 0 < int(zero_slots.sum()) < 20
    model.eval()(torch.rand(4, 3, 64, 64) + 0.1)
    assert (seen[-1].flatten(1).abs().sum(1) > 0).all()


@pytest.mark.parametrize("combiner", PATCH_COMBINERS)
def test_combiners(combiner: str) -> None:
    model = create_model("patch_attention", combiner=combiner, num_classes=3, **TINY)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)
    out.sum().backward()
    expected_in = {"concat": 5 * model.num_features}.get(combiner, model.num_features)
    assert model.fc.in_features == expected_in


def test_in_block_variant_records_channel_gates() -> None:
    model = create_model("patch_attention", in_block=True, **TINY).eval()
    maps = model.attention_maps(torch.randn(2, 3, 64, 64))
    channels = [info["num_chs"] for info in model.backbone.feature_info]
    assert [tuple(v.shape) for k, v in maps.items() if k.startswith("block_se")] == [(2, c) for c in channels]
    assert maps["input_gate"].shape == (2, 5)


def test_wrong_patch_count_is_refused() -> None:
    model = create_model("patch_attention", **TINY)
    with pytest.raises(ValueError, match="n_patches=5"):
        model(torch.randn(1, 9, 3, 32, 32))


def test_in_block_hooks_follow_a_deep_copy() -> None:
    import copy

    model = create_model("patch_attention", in_block=True, **TINY).eval()
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for p in clone.block_se.parameters():
            p.zero_()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(model(x), clone(x))  # the copy's hooks use the copy's (zeroed) blocks
    assert len(clone.attention_maps(x)) == 1 + len(model.backbone.feature_info)
