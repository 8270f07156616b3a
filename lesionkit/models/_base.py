"""The timm protocol shared by the paper models: ``LesionModel`` and the ``build_model`` helper of the entrypoints.

A paper model subclasses ``LesionModel`` (an ``nn.Module``) and names its classifier module in ``classifier_name``;
it then has timm's ``get_classifier`` / ``reset_classifier`` / ``forward_features`` / ``forward_head`` / ``forward``,
a timm-style ``default_cfg`` (``set_default_cfg``) and the two hooks ``build_model`` uses for offline pretrained
weights (``backbone_arch_of``, ``pretrained_target``). Each default suits a model that wraps a timm backbone in
``self.backbone``; a model overrides only what differs:

* ``forward_head(x, pre_logits)`` = ``classify(pool_features(x))``, or ``pool_features(x)`` for ``pre_logits``;
  by default ``pool_features`` is the backbone's own pooling (+ dropout) and ``classify`` the classifier module.
* ``reset_classifier(n)`` sets ``num_classes`` and puts ``new_classifier(n)`` at ``classifier_name``.

A model built on a timm class (``class ARLResNet(ResNet, LesionModel)``) keeps timm's methods, which come first in
the MRO, and takes only the cfg handling and the pretrained hooks from here.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

import torch
import torch.nn as nn

from lesionkit.models.pretrained import load_pretrained, parse_pretrained, require_local_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

M = TypeVar("M", bound=nn.Module)


def make_cfg(input_size: tuple[int, int, int], pool_size: tuple[int, int] | None, cam_layer: str,
             mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
             **extra: Any) -> dict[str, Any]:
    """A timm-style default_cfg plus lesionkit's ``cam_layer`` (dotted module name for Grad-CAM-style methods)."""
    cfg = dict(input_size=input_size, pool_size=pool_size, mean=mean, std=std, interpolation="bicubic",
               crop_pct=1.0, num_classes=None, first_conv=None, classifier=None, cam_layer=cam_layer,
               fixed_input_size=False)
    cfg.update(extra)
    return cfg


class LesionModel(nn.Module):
    """Base of the paper models: timm's model protocol with defaults for a wrapped ``self.backbone``."""

    #: dotted name of the classifier module (``get_classifier``, ``reset_classifier``, ``default_cfg["classifier"]``)
    classifier_name: str = "fc"

    # --- default_cfg ------------------------------------------------------------------------------------------------
    def set_default_cfg(self, input_size: tuple[int, int, int], pool_size: tuple[int, int] | None, cam_layer: str,
                        **extra: Any) -> None:
        """Set the timm-style cfg (``make_cfg``) as both ``pretrained_cfg`` and ``default_cfg`` (fastai reads the
        latter); ``classifier`` defaults to ``classifier_name``."""
        extra.setdefault("classifier", self.classifier_name)
        cfg = make_cfg(input_size, pool_size, cam_layer, **extra)
        self.pretrained_cfg = cfg
        self.default_cfg = cfg

    # --- pretrained hooks (see build_model) -------------------------------------------------------------------------
    @classmethod
    def backbone_arch_of(cls, **kwargs: Any) -> str | None:
        """timm architecture whose ImageNet weights ``cls(**kwargs)`` takes, known before building (so that
        ``pretrained=True`` fails at once without local weights): the ``backbone`` argument or its default."""
        if "backbone" in kwargs:
            return kwargs["backbone"]
        param = inspect.signature(cls.__init__).parameters.get("backbone")
        return None if param is None or param.default is param.empty else param.default

    def pretrained_target(self) -> tuple[str | None, nn.Module]:
        """(timm architecture, submodule) that backbone weights load into: ``backbone_name`` and ``self.backbone``
        (the model itself when it has no ``backbone`` submodule)."""
        return getattr(self, "backbone_name", None), getattr(self, "backbone", self)

    # --- classifier -------------------------------------------------------------------------------------------------
    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def new_classifier(self, num_classes: int) -> nn.Module:
        """A fresh classifier module for ``num_classes`` outputs (used by ``reset_classifier``)."""
        raise NotImplementedError(f"{type(self).__name__} must define new_classifier or override reset_classifier")

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.set_submodule(self.classifier_name, self.new_classifier(num_classes))

    # --- forward ----------------------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map → pre-logits (B, head_hidden_size); default: the timm backbone's pooling and dropout."""
        return self.backbone.forward_head(x, pre_logits=True)

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-logits → logits; default: the classifier module."""
        return self.get_classifier()(h)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        h = self.pool_features(x)
        return h if pre_logits else self.classify(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def attention_maps(self, x: torch.Tensor, *args: Any) -> dict[str, torch.Tensor]:
        """Native attention maps by name (see each model's docstring); none by default."""
        return {}


def build_model(cls: Callable[..., M], pretrained: bool | str, **kwargs: Any) -> M:
    """Instantiate ``cls`` and load pretrained weights into its backbone (``model.pretrained_target()``).

    ``pretrained=True`` is checked before the model is built, so a missing weight file fails at once.
    """
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm's factory always passes these
        kwargs.pop(key, None)
    pretrained = parse_pretrained(pretrained)
    if pretrained is True:
        arch = getattr(cls, "backbone_arch_of", lambda **kw: None)(**kwargs)
        require_local_weights(arch)
    model = cls(**kwargs)
    if pretrained:
        arch, target = model.pretrained_target()
        model.pretrained_report = load_pretrained(model, pretrained, arch=arch, target=target)
    return model
