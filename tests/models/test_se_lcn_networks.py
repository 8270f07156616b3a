"""SE-LCN: parameter counts, Grad-CAM++ against the grad-cam package, the E-layer, LAE masking."""
from __future__ import annotations

import numpy as np
import torch

from lesionkit.layers import ELayer
from lesionkit.models.se_lcn import SELCNClassifier, SymmetryNet, lae_box, lae_mask
from lesionkit.models import create_model

torch.set_num_threads(1)


def n_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def test_symmetry_net_count() -> None:
    assert n_params(create_model("selcn_symmetry")) == 1_248_424 - 513_000 + 1_026  # 736,450


def test_symmetry_head_is_the_code_s_fresh_conv() -> None:
    """train_symmetry_cv.py replaces the final conv with nn.Conv2d(512, 2, 1) (PyTorch's default init), not
    torchvision's N(0, 0.01) with zero bias, under which from-scratch logits start at the head ReLU's kink."""
    torch.manual_seed(0)
    head = create_model("selcn_symmetry").classifier[1]
    bound = 1 / np.sqrt(512)
    assert head.bias.abs().max() <= bound and head.bias.abs().min() > 0
    assert 0.8 * bound / np.sqrt(3) < head.weight.std() < 1.2 * bound / np.sqrt(3)


def test_classifier_counts() -> None:
    assert n_params(ELayer(1792)) == 1793 * 1792 + 1792 + 2 * 1792  # 3,218,432
    model = create_model("selcn_classifier")
    assert n_params(model, trainable_only=True) == 17_548_616 + 3_218_432 + 1792 * 7 + 7  # 20,779,599
    assert n_params(model.symmetry_net, trainable_only=True) == 0


def test_grad_cam_plus_plus_matches_the_grad_cam_package() -> None:
    from pytorch_grad_cam import GradCAMPlusPlus

    torch.manual_seed(0)
    net = SymmetryNet().eval()
    with torch.no_grad():  # the package adds eps = 1e-6 to α's denominator (SE-LCN's code does not): make the
        net.classifier[1].weight.mul_(1e3)  # gradients large enough for that eps to be negligible
    x = torch.rand(2, 3, 96, 96)
    cam = GradCAMPlusPlus(model=net, target_layers=[net.features[12].expand3x3_activation])
    reference = cam(input_tensor=x, targets=None)
    ours = net.symmetry_cam(x)
    assert ours.shape == (2, 1, 96, 96)
    assert ours.min() >= 0 and ours.max() <= 1
    np.testing.assert_allclose(ours[:, 0].numpy(), reference, atol=2e-3)


def test_precomputed_cam_equals_the_attached_symmetry_net() -> None:
    torch.manual_seed(0)
    model = create_model("selcn_classifier").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        on_the_fly = model(x)
    torch.testing.assert_close(model(x, model.symmetry_net.symmetry_cam(x)), on_the_fly)
    other = model(x, torch.ones(2, 1, 64, 64))
    assert not torch.allclose(other, on_the_fly)  # the CAM channel matters


def test_classifier_without_symmetry_net_needs_a_cam() -> None:
    model = SELCNClassifier(with_symmetry_net=False).eval()
    try:
        model(torch.rand(1, 3, 64, 64))
    except ValueError as err:
        assert "cam=" in str(err)
    else:
        raise AssertionError("a missing CAM must raise")
    assert model(torch.rand(1, 3, 64, 64), torch.rand(1, 64, 64)).shape == (1, 7)


def test_symmetry_net_stays_frozen_in_train_mode() -> None:
    model = create_model("selcn_classifier").train()
    assert model.training and not model.symmetry_net.training


def test_lae_box_enlarges_the_largest_contour() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[40:60, 30:80] = 1  # 50 wide, 20 high
    mask[5:8, 5:8] = 1  # a smaller blob is ignored
    assert lae_box(mask) == (20, 36, 90, 64)
    edge = np.zeros((50, 50), np.uint8)
    edge[0:10, 40:50] = 1
    assert lae_box(edge) == (38, 0, 50, 12)  # clipped to the image
    assert lae_box(np.zeros((10, 10))) is None


def test_lae_mask_zeroes_outside_the_box() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[40:60, 30:80] = 1
    image = np.ones((100, 100, 3), np.float32)
    out = lae_mask(image, mask)
    assert out[36:64, 20:90].min() == 1 and out.sum() == 28 * 70 * 3
    tensor = lae_mask(torch.ones(3, 100, 100), torch.from_numpy(mask))
    assert tensor.sum() == 28 * 70 * 3
