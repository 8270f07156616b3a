"""Every attribution method on every registered lesionkit model: no in-place errors, maps at the image's size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lesionkit.attribution import METHODS, attribute

registry = pytest.importorskip("lesionkit.models")
torch.set_num_threads(1)

# the cheapest settings that still run each algorithm end to end
FAST = {
    "integrated_gradients": {"n_steps": 2},
    "smoothgrad": {"nt_samples": 2},
    "gradient_shap": {"n_samples": 2},
}


# patch models: the smallest geometry their backbone accepts (InceptionV3 needs patches of at least 75 px)
PATCH_GEOMETRIES = ((32, (48, 64)), (80, (96, 128)))


def _build(name: str) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    """The model at a small input: 64 px, or for patch models small patches cut from a small image."""
    torch.manual_seed(0)
    model = None
    for patch, image in PATCH_GEOMETRIES:  # building patch models at their 224 px default costs seconds
        try:
            model = registry.create_model(name, patch_size=patch, image_size=image)
            break
        except TypeError:  # not a patch model: no patch_size argument
            break
        except RuntimeError:  # the backbone cannot take patches this small
            continue
    if model is None or not model.default_cfg.get("n_patches"):
        model = registry.create_model(name)
    cfg = model.default_cfg
    if cfg.get("task") == "segmentation":
        pytest.skip(f"{name} is a segmentation network: attribution explains classifiers")
    size = tuple(cfg["input_size"][1:]) if cfg.get("n_patches") else (64, 64)
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    kw: dict = {}
    if getattr(model, "n_meta", 0):
        kw["meta"] = torch.randn(1, model.n_meta, generator=torch.Generator().manual_seed(1))
    if cfg.get("heads"):
        kw["head"] = 0
    return model, x, kw


@pytest.mark.parametrize("name", registry.list_models())
def test_every_method_on_registered_model(name: str) -> None:
    model, x, kw = _build(name)
    h, w = x.shape[-2:]
    inplace = [n for n, m in model.named_modules() if getattr(m, "inplace", None) is True]
    for method in METHODS:
        opts = {**kw, **FAST.get(method, {})}
        if method == "occlusion":
            opts.update(window=min(h, w) // 2, stride=min(h, w) // 2)
        if method == "native":
            maps_ = model.attention_maps(x, kw["meta"]) if "meta" in kw else model.attention_maps(x)
            if not maps_:
                with pytest.raises(ValueError, match="no native attention maps"):
                    attribute(model, x, method, **opts)
                continue
        res = attribute(model, x, method, internal_batch_size=4, **opts)
        assert res.maps.shape == (1, h, w), (method, res.maps.shape)
        assert np.isfinite(res.maps).all(), method
        assert res.images.shape == (1, h, w, 3)
    assert [n for n, m in model.named_modules() if getattr(m, "inplace", None) is True] == inplace
