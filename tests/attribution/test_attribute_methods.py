"""attribute(): every method on timm and fastai models, fastai tensors, in-place activations, multimodal inputs."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from torch import nn

from lesionkit.attribution import (
    METHODS,
    LayerResolutionError,
    attribute,
    canonical_method,
    disable_inplace,
    resolve_layer,
)

torch.set_num_threads(1)

# cheap settings so each call is a fraction of a second at 32-64 px
FAST = {
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"nt_samples": 2},
    "occlusion": {"window": 16, "stride": 16},
    "gradient_shap": {"n_samples": 2},
}
PIXEL_METHODS = ["integrated_gradients", "smoothgrad", "occlusion", "gradient_shap"]
CAM_METHODS = ["gradcam", "gradcam++"]


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False, num_classes=3)


@pytest.fixture(scope="module")
def fastai_model() -> nn.Module:
    from fastai.vision.learner import create_timm_model

    torch.manual_seed(0)
    model, _ = create_timm_model("tf_efficientnet_lite0", 4, pretrained=False)
    return model


def _x(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", PIXEL_METHODS + CAM_METHODS)
@pytest.mark.parametrize("arch", ["resnet18", "tf_efficientnet_lite0"])
def test_every_method_gives_image_sized_maps_on_timm_models(arch: str, method: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(arch, pretrained=False, num_classes=3).train()
    x = _x(2, 48)
    res = attribute(model, x, method, **FAST.get(method, {}))
    assert res.maps.shape == (2, 48, 48)
    assert np.isfinite(res.maps).all()
    assert res.maps.min() >= 0  # absolute / positive reductions and ReLU'd CAMs
    assert res.maps.std() > 0  # a real map (an untrained net's Grad-CAM may be all-zero for one image)
    assert res.images.shape == (2, 48, 48, 3) and 0 <= res.images.min() and res.images.max() <= 1
    assert res.probs.shape == (2, 3) and np.allclose(res.probs.sum(1), 1, atol=1e-5)
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("method", PIXEL_METHODS + CAM_METHODS)
def test_fastai_tensorimage_and_inplace_head(fastai_model: nn.Module, method: str) -> None:
    from fastai.torch_core import TensorImage

    inplace_before = [n for n, m in fastai_model.named_modules() if getattr(m, "inplace", None) is True]
    assert inplace_before, "fastai's head and timm's norm-act layers use in-place activations"
    x = TensorImage(_x(2, 64))
    res = attribute(fastai_model, x, method, **FAST.get(method, {}))
    assert res.maps.shape == (2, 64, 64)
    assert [n for n, m in fastai_model.named_modules() if getattr(m, "inplace", None) is True] == inplace_before
    if method in CAM_METHODS:
        assert res.layer == "0.model.bn2"


def test_denormalised_image_round_trips(resnet: nn.Module) -> None:
    rgb = torch.rand(2, 3, 32, 32)
    cfg = resnet.default_cfg
    x = (rgb - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    res = attribute(resnet, x, "gradcam")
    np.testing.assert_allclose(res.images, rgb.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_target_defaults_to_prediction_and_is_validated(resnet: nn.Module) -> None:
    x = _x(3, 32)
    res = attribute(resnet, x, "gradcam")
    np.testing.assert_array_equal(res.target, res.probs.argmax(1))
    res = attribute(resnet, x, "gradcam", target=[2, 1, 0])
    np.testing.assert_array_equal(res.target, [2, 1, 0])
    a = attribute(resnet, x, "integrated_gradients", target=0, n_steps=4).maps
    b = attribute(resnet, x, "integrated_gradients", target=1, n_steps=4).maps
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="out of range"):
        attribute(resnet, x, "gradcam", target=5)
    with pytest.raises(ValueError, match="3 images"):
        attribute(resnet, x, "gradcam", target=[0, 1])
    with pytest.raises(ValueError, match="unknown attribution method 'lime'"):
        attribute(resnet, x, "lime")
    assert canonical_method("IG") == "integrated_gradients" and canonical_method("Grad-CAM++") == "gradcam++"


def test_internal_batch_size_does_not_change_integrated_gradients(resnet: nn.Module) -> None:
    x = _x(3, 32)
    small = attribute(resnet, x, "ig", n_steps=8, internal_batch_size=3).maps
    large = attribute(resnet, x, "ig", n_steps=8, internal_batch_size=64).maps
    np.testing.assert_allclose(small, large, rtol=1e-4, atol=1e-6)
    occ_a = attribute(resnet, x, "occlusion", window=8, stride=8, internal_batch_size=1).maps
    occ_b = attribute(resnet, x, "occlusion", window=8, stride=8, internal_batch_size=16).maps
    np.testing.assert_allclose(occ_a, occ_b, rtol=1e-4, atol=1e-6)


def test_stochastic_methods_are_seeded(resnet: nn.Module) -> None:
    x = _x(1, 32)
    for method in ("smoothgrad", "gradient_shap"):
        a = attribute(resnet, x, method, seed=1, **FAST[method]).maps
        b = attribute(resnet, x, method, seed=1, **FAST[method]).maps
        c = attribute(resnet, x, method, seed=2, **FAST[method]).maps
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_gradcam_pp_matches_pytorch_grad_cam(resnet: nn.Module) -> None:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = _x(2, 128)
    ours = attribute(resnet, x, "gradcam++", target=[0, 2], layer="layer3").maps
    with GradCAMPlusPlus(model=resnet.eval(), target_layers=[resnet.layer3]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(0), ClassifierOutputTarget(2)])
    ours = (ours - ours.min(axis=(1, 2), keepdims=True)) / np.ptp(ours, axis=(1, 2), keepdims=True)
    assert np.abs(ours - theirs).mean() < 0.02
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.99


class _InplaceNet(nn.Module):
    """conv -> ReLU(inplace) right after the CAM layer: the case that breaks naive hook-based CAMs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))


def test_inplace_after_cam_layer_gives_same_map_as_out_of_place() -> None:
    torch.manual_seed(0)
    net = _InplaceNet()
    x = _x(2, 16)
    with_inplace = attribute(net, x, "gradcam++", layer="bn").maps
    net.act.inplace = False
    without = attribute(net, x, "gradcam++", layer="bn").maps
    net.act.inplace = True
    np.testing.assert_allclose(with_inplace, without, rtol=1e-5, atol=1e-7)
    with disable_inplace(net) as changed:
        assert changed == ["act"] and net.act.inplace is False
    assert net.act.inplace is True


def test_disable_inplace_restores_after_an_error() -> None:
    net = _InplaceNet()
    with pytest.raises(RuntimeError, match="boom"):
        with disable_inplace(net):
            raise RuntimeError("boom")
    assert net.act.inplace is True


class _Multimodal(nn.Module):
    """forward(image, meta): the image part and a metadata part add up."""

    n_meta = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.img = nn.Linear(4, 2)
        self.meta = nn.Linear(2, 2)
        self.default_cfg = {"cam_layer": "conv", "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return self.img(torch.relu(self.conv(image)).mean((2, 3))) + 10 * self.meta(meta)

    def attention_maps(self, image: torch.Tensor, meta: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"conv_energy": self.conv(image).pow(2).mean(1)}


@pytest.mark.parametrize("method", [*PIXEL_METHODS, *CAM_METHODS, "native"])
def test_multimodal_meta_is_passed_not_attributed(method: str) -> None:
    torch.manual_seed(0)
    net = _Multimodal()
    x = _x(2, 24)
    meta_a = torch.tensor([[3.0, -3.0], [3.0, -3.0]])
    meta_b = -meta_a
    res_a = attribute(net, x, method, meta=meta_a, **FAST.get(method, {}))
    res_b = attribute(net, x, method, meta=meta_b, **FAST.get(method, {}))
    assert res_a.maps.shape == (2, 24, 24)
    assert not np.allclose(res_a.probs, res_b.probs)  # the metadata reached the model
    if method == "native":
        assert res_a.layer == "conv_energy"


def test_multimodal_without_meta_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"multimodal \(n_meta=2\): pass meta="):
        attribute(_Multimodal(), _x(1, 16), "gradcam")


def test_native_needs_attention_maps(resnet: nn.Module) -> None:
    with pytest.raises(ValueError, match="no attention_maps"):
        attribute(resnet, _x(1, 32), "native")


def test_half_precision_model_is_attributed_through_an_fp32_copy() -> None:
    net = _InplaceNet().to(torch.bfloat16)
    with pytest.warns(UserWarning, match="fp32"):
        res = attribute(net, _x(1, 16), "integrated_gradients", n_steps=4)
    assert res.maps.dtype == np.float32 and net.conv.weight.dtype == torch.bfloat16


def test_resolve_layer_rules(resnet: nn.Module, fastai_model: nn.Module) -> None:
    assert resolve_layer(resnet)[0] == "layer4.1"
    assert resolve_layer(fastai_model)[0] == "0.model.bn2"
    assert resolve_layer(resnet, "layer3")[1] is resnet.layer3
    assert resolve_layer(resnet, resnet.layer2)[0] == "layer2"
    assert resolve_layer(_Multimodal())[0] == "conv"  # default_cfg["cam_layer"] wins
    with pytest.raises(LayerResolutionError, match="top-level children are: conv1, bn1"):
        resolve_layer(resnet, "layer9")


def test_resolve_layer_on_fastai_torchvision_body() -> None:
    from fastai.vision.learner import create_vision_model
    from torchvision.models import resnet18

    model = create_vision_model(resnet18, 2, pretrained=False)
    assert resolve_layer(model)[0] == "0.7.1"  # the last BasicBlock of the cut body
    assert attribute(model, _x(1, 64), "gradcam").maps.shape == (1, 64, 64)


def test_all_methods_listed() -> None:
    assert set(METHODS) == {*PIXEL_METHODS, *CAM_METHODS, "native"}


class _MultiHead(nn.Module):
    """(N, n_heads, 2) logits, like the artefact classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.default_cfg = {"cam_layer": "conv", "heads": ("hair", "ruler", "frame")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean((2, 3)).view(-1, 3, 2)


def test_multi_head_models_need_a_head() -> None:
    net, x = _MultiHead(), _x(2, 16)
    with pytest.raises(ValueError, match=r"3 heads of logits \(hair, ruler, frame\).*pass head="):
        attribute(net, x, "gradcam")
    by_name = attribute(net, x, "ig", head="ruler", target=1, n_steps=4)
    by_index = attribute(net, x, "ig", head=1, target=1, n_steps=4)
    np.testing.assert_allclose(by_name.maps, by_index.maps)
    assert by_name.probs.shape == (2, 2)
    assert not np.allclose(by_name.maps, attribute(net, x, "ig", head=0, target=1, n_steps=4).maps)
    with pytest.raises(ValueError, match="unknown head 'dust'"):
        attribute(net, x, "gradcam", head="dust")


def test_patch_gates_are_painted_where_the_patches_are() -> None:
    pytest.importorskip("lesionkit.models.patch_attention")
    from lesionkit.attribution.cams import paint_patches, unstack_patch_cam

    cfg = {"n_patches": 4, "patch_size": 8}  # a 2x2 grid of 8 px patches over a 16 px image: no overlap
    gates = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    painted = paint_patches(gates, cfg, (16, 16))[0, 0]
    assert painted[0, 0] == 1 and painted[0, 15] == 2 and painted[15, 0] == 3 and painted[15, 15] == 4
    stacked = torch.arange(4.0).repeat_interleave(2).view(1, 1, 8, 1).expand(1, 1, 8, 2)  # P=4 maps of 2x2
    cam = unstack_patch_cam(stacked, cfg, (16, 16))[0, 0]
    assert cam[0, 0] == 0 and cam[0, 15] == 1 and cam[15, 0] == 2 and cam[15, 15] == 3


@pytest.mark.parametrize("target", [None, [2, 0, 1, 1]])
def test_gradcam_is_one_forward_per_batch_and_equals_captum_after_a_logits_pass(resnet: nn.Module, target) -> None:
    """The CAM's own forward gives the logits (issue 14: a separate no-grad logits pass made Grad-CAM two
    forwards); maps, targets and probabilities equal Captum's LayerGradCam run after that separate pass."""
    from captum.attr import LayerGradCam

    from lesionkit.attribution.cams import upsample

    torch.manual_seed(1)
    x = torch.randn(4, 3, 64, 64)
    calls = []
    handle = resnet.register_forward_hook(lambda *_: calls.append(1))
    try:
        res = attribute(resnet, x, "gradcam", target=target, speedups="off", internal_batch_size=2)
    finally:
        handle.remove()
    assert len(calls) == 2                                  # 4 images in batches of 2: one forward each
    with torch.no_grad():
        logits = resnet.eval()(x)
    want_t = logits.argmax(1) if target is None else torch.tensor(target)
    ref = LayerGradCam(resnet, resnet.layer4).attribute(x, target=want_t, relu_attributions=True)
    ref = upsample(ref.detach(), (64, 64)).numpy()
    assert res.target.tolist() == want_t.tolist()
    np.testing.assert_allclose(res.probs, logits.softmax(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.maps, ref, rtol=1e-4, atol=1e-6)
    pp = attribute(resnet, x, "gradcam++", target=target, speedups="off")
    assert pp.target.tolist() == want_t.tolist() and pp.maps.shape == (4, 64, 64)
