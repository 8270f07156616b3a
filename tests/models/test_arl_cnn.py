"""ARL-CNN: pinned parameter counts, the two softmax axes, learnable vs fixed α, any input size."""
from __future__ import annotations

import torch

from lesionkit.layers import ResidualAttention
from lesionkit.models import create_model

torch.set_num_threads(1)

RESNET50_NO_HEAD = 23_508_032
ONE_OUTPUT_HEAD = 2048 + 1


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_arl50_parameter_counts() -> None:
    code = create_model("arl_resnet50_code")
    paper = create_model("arl_resnet50")
    assert n_params(code) == RESNET50_NO_HEAD + ONE_OUTPUT_HEAD == 23_510_081  # README: 2.35 × 10^7
    assert n_params(paper) == 23_510_081 + 16  # one learnable α per bottleneck (3 + 4 + 6 + 3)
    assert n_params(create_model("resnet50", num_classes=1)) == 23_510_081  # ARL adds no weights of its own


def test_spatial_mask_is_a_distribution_over_positions_per_channel() -> None:
    residual = torch.randn(2, 3, 4, 5)
    mask = ResidualAttention("spatial").mask(residual)
    torch.testing.assert_close(mask.sum((2, 3)), torch.ones(2, 3))


def test_channel_mask_is_softmax2d() -> None:
    residual = torch.randn(2, 3, 4, 5)
    mask = ResidualAttention("channel").mask(residual)
    torch.testing.assert_close(mask, torch.nn.Softmax2d()(residual))


def test_arl_term_hand_computed() -> None:
    residual = torch.zeros(1, 2, 1, 2)  # spatial softmax of zeros: 1/2 everywhere
    shortcut = torch.tensor([[[[2.0, 4.0]], [[6.0, 8.0]]]])
    term = ResidualAttention("spatial", alpha=0.1)(residual, shortcut)
    torch.testing.assert_close(term, 0.1 * 0.5 * shortcut)


def test_alpha_is_learnable_in_the_paper_variant_and_fixed_in_the_code_variant() -> None:
    paper = create_model("arl_resnet18")
    alphas = [m.alpha for m in paper.modules() if isinstance(m, ResidualAttention)]
    assert len(alphas) == 8 and all(isinstance(a, torch.nn.Parameter) for a in alphas)
    paper(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(a.grad is not None for a in alphas)
    code = create_model("arl_resnet50_code")
    assert not any(n.endswith("alpha") for n, _ in code.named_parameters())
    assert not any(k.endswith("alpha") for k in code.state_dict())
    assert {m.mode for m in code.modules() if isinstance(m, ResidualAttention)} == {"channel"}


def test_any_input_size() -> None:
    model = create_model("arl_resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 80)).shape == (1, 1)
        assert model(torch.randn(1, 3, 33, 47)).shape == (1, 1)
