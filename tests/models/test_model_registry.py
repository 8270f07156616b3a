"""Every registered model: forward + backward on CPU at a small input, the timm protocol, Captum LayerGradCam on
``default_cfg["cam_layer"]`` and the documented shapes of its native maps. Plus the registry's own behaviour."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from captum.attr import LayerGradCam

from lesionkit.models import UnknownModelError, create_model, list_models, register_model

torch.set_num_threads(1)

B = 2
SMALL = (B, 3, 64, 64)
B3_MAPS_64 = {1: 16, 2: 8, 3: 4, 4: 4, 5: 2, 6: 2}
ARL_MAPS_64 = {"layer1": (B, 1, 16, 16), "layer2": (B, 1, 8, 8), "layer3": (B, 1, 4, 4), "layer4": (B, 1, 2, 2)}

# name -> (create kwargs, input shape, output shape, native map shapes)
CASES: dict[str, tuple[dict, tuple, tuple, dict]] = {
    "arl_resnet18": ({}, SMALL, (B, 1), ARL_MAPS_64),
    "arl_resnet34": ({}, SMALL, (B, 1), ARL_MAPS_64),
    "arl_resnet50": ({}, SMALL, (B, 1), ARL_MAPS_64),
    "arl_resnet50_code": ({}, SMALL, (B, 1), ARL_MAPS_64),
    "effb3_baseline": ({}, SMALL, (B, 9), {}),
    "sge_b3": ({}, SMALL, (B, 9), {f"sge.stage{i}": (B, 8, s, s) for i, s in B3_MAPS_64.items()}),
    "spatial_b3": ({}, SMALL, (B, 9), {f"spatial.stage{i}": (B, 1, s, s) for i, s in B3_MAPS_64.items()}),
    "s2mlp_b3": ({}, SMALL, (B, 9), {}),
    "s2cbam_b3": ({}, SMALL, (B, 9), {f"cbam.stage{i}": (B, 1, s, s) for i, s in {0: 32, **B3_MAPS_64}.items()}),
    "multimodal_b2": ({}, SMALL, (B, 2), {}),
    "multimodal_b2_image": ({}, SMALL, (B, 2), {}),
    "artefact_b2": ({}, SMALL, (B, 6, 2), {}),
    # inception_v3's minimum input is 75 px: two 75-px patches per side fit in 96×128
    "patch_inception_v3": ({"patch_size": 75, "image_size": (96, 128)}, (B, 3, 96, 128), (B, 7),
                           {"input_gate": (B, 5)}),
    "patch_densenet121": ({"patch_size": 32, "image_size": (64, 64)}, SMALL, (B, 6), {"input_gate": (B, 9)}),
    "patch_seresnext50": ({"patch_size": 32, "image_size": (64, 64)}, SMALL, (B, 7), {"input_gate": (B, 5)}),
    "patch_attention": ({"backbone": "resnet10t", "patch_size": 32, "image_size": (64, 64), "feature_gate": True},
                        SMALL, (B, 7), {"input_gate": (B, 5), "feature_gate": (B, 5)}),
    "selcn_segmenter": ({}, SMALL, (B, 2, 64, 64), {}),
    "selcn_symmetry": ({}, SMALL, (B, 2), {"symmetry_cam": (B, 1, 64, 64)}),
    "selcn_classifier": ({}, SMALL, (B, 7), {"symmetry_cam": (B, 1, 64, 64)}),
}

_built: dict[str, nn.Module] = {}


def build(name: str) -> nn.Module:
    if name not in _built:
        torch.manual_seed(0)
        _built[name] = create_model(name, **CASES[name][0])
    return _built[name]


def extra_args(model: nn.Module) -> tuple:
    n_meta = getattr(model, "n_meta", 0)
    return (torch.randn(B, n_meta),) if n_meta else ()


def test_every_registered_model_has_a_case() -> None:
    assert set(list_models()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward(name: str) -> None:
    model = build(name).train()
    _, shape, out_shape, _ = CASES[name]
    x = torch.randn(shape)
    out = model(x, *extra_args(model))
    assert tuple(out.shape) == out_shape
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), "a trainable parameter got no gradient"
    assert any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_timm_protocol(name: str) -> None:
    model = build(name).eval()
    cfg = model.default_cfg
    assert model.pretrained_cfg is cfg
    for key in ("mean", "std", "input_size", "pool_size", "cam_layer"):
        assert key in cfg
    assert isinstance(model.num_features, int) and model.num_features > 0
    model.get_submodule(cfg["cam_layer"])
    x = torch.randn(CASES[name][1])
    args = extra_args(model)
    with torch.no_grad():
        full = model(x, *args)
        feats = model.forward_features(x)
        split = model.forward_head(feats, *args)
        pre = model.forward_head(feats, *args, pre_logits=True)
    torch.testing.assert_close(split, full)
    with torch.inference_mode():  # deployment / benchmark path: SE-LCN's built-in CAM still gets its gradients
        torch.testing.assert_close(model(x, *args), full)
    if cfg.get("task") != "segmentation":
        assert pre.shape == (B, model.head_hidden_size)


@pytest.mark.parametrize("name", ["arl_resnet18", "sge_b3", "multimodal_b2", "artefact_b2", "patch_densenet121",
                                  "selcn_symmetry", "selcn_classifier", "selcn_segmenter"])
def test_reset_classifier(name: str) -> None:
    model = create_model(name, **CASES[name][0]).eval()
    model.reset_classifier(3)
    x = torch.randn(CASES[name][1])
    with torch.no_grad():
        out = model(x, *extra_args(model))
    assert out.shape[1 if out.dim() != 3 else 2] == 3


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_gradcam(name: str) -> None:
    model = build(name).eval()
    layer = model.get_submodule(model.default_cfg["cam_layer"])
    forward = model.class_scores if model.default_cfg.get("task") == "segmentation" else model
    out_shape = CASES[name][2]
    target = (0, 1) if len(out_shape) == 3 and model.default_cfg.get("task") != "segmentation" else 0
    x = torch.randn(CASES[name][1])
    args = extra_args(model)
    attr = LayerGradCam(forward, layer).attribute(x, target=target, additional_forward_args=args or None)
    assert attr.shape[:2] == (B, 1) and attr.dim() == 4
    assert torch.isfinite(attr).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_native_maps(name: str) -> None:
    model = build(name).eval()
    x = torch.randn(CASES[name][1])
    maps = model.attention_maps(x, *extra_args(model))
    assert {k: tuple(v.shape) for k, v in maps.items()} == CASES[name][3]
    for value in maps.values():
        assert torch.isfinite(value).all() and not value.requires_grad


def test_create_model_drops_none_kwargs() -> None:
    model = create_model("arl_resnet18", num_classes=None, drop_rate=None)
    assert model.num_classes == 1  # the entrypoint's default survived


def test_plain_timm_names_fall_back_to_timm() -> None:
    model = create_model("resnet10t", pretrained="false", num_classes=4)
    assert type(model).__module__.startswith("timm.")
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="sge_b3"):
        create_model("sge_b4")


def test_list_models_filters_by_pattern_and_module() -> None:
    assert list_models("*b3*") == ["effb3_baseline", "s2cbam_b3", "s2mlp_b3", "sge_b3", "spatial_b3"]
    assert list_models(module="arl") == ["arl_resnet18", "arl_resnet34", "arl_resnet50", "arl_resnet50_code"]


def test_register_model_warns_on_overwrite_from_another_module() -> None:
    from lesionkit.models import _registry as registry

    def sge_b3(pretrained: bool = False, **kwargs):  # same name, defined in this test module
        return nn.Identity()

    original = registry._model_entrypoints["sge_b3"], registry._model_to_module["sge_b3"]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            register_model(sge_b3)
        assert any("Overwriting sge_b3" in str(w.message) for w in caught)
        assert isinstance(create_model("sge_b3"), nn.Identity)
    finally:
        registry._model_entrypoints["sge_b3"], registry._model_to_module["sge_b3"] = original


def test_lazy_reexport_from_package() -> None:
    import lesionkit

    assert lesionkit.create_model is create_model
    assert lesionkit.list_models is list_models
