"""ARL-CNN (Zhang et al., "Attention Residual Learning for Skin Lesion Classification", TMI 2019).

ResNet-18/34/50 whose every residual block adds α · A(F(x)) ⊙ x̃ (see ``lesionkit.layers.arl`` for the paper-vs-code
choice of softmax axis and α). Built on timm's ``ResNet`` with ARL blocks, so the timm protocol, any input size
(adaptive pooling instead of the code's fixed AvgPool(7)) and name-matched ImageNet ResNet weights come for free.

Parameters, ARL-50 with one output: ResNet-50 without its head (23,508,032) + Linear(2048→1) (2,049) = 23,510,081
for the code variant (fixed α adds nothing), + 16 learnable α (one per bottleneck) = 23,510,097 for the paper
variant. Both are the "23.51 M" of the README.

Native maps (``attention_maps``): ``layer1``…``layer4`` → (B, 1, H/4, W/4) … (B, 1, H/32, W/32), the ARL mask of each
stage's last block (channel mean for the spatial softmax, channel max for the channel softmax).
"""
from __future__ import annotations

from typing import Any

import torch
from timm.models.resnet import ResNet

from lesionkit.layers.arl import ARLBasicBlock, ARLBottleneck
from lesionkit.models._base import LesionModel, build_model
from lesionkit.models._helpers import collect_maps
from lesionkit.models._registry import register_model

__all__: list[str] = ["ARLResNet"]

_DEPTHS = {18: (ARLBasicBlock, (2, 2, 2, 2)), 34: (ARLBasicBlock, (3, 4, 6, 3)), 50: (ARLBottleneck, (3, 4, 6, 3))}


class ARLResNet(ResNet, LesionModel):
    """ResNet with attention residual learning in every block.

    Args:
        depth: 18, 34 or 50.
        num_classes: outputs (1 = the paper's melanoma logit for BCEWithLogits).
        arl_mode: "spatial" (paper: softmax over positions per channel) or "channel" (code: ``Softmax2d``).
        alpha: initial (or fixed) α; 0.001 as in the code.
        learn_alpha: learnable α per block (paper) or a fixed constant (code).
        **kwargs: timm ``ResNet`` options (in_chans, drop_rate, drop_path_rate, global_pool, ...).
    """

    def __init__(self, depth: int = 50, num_classes: int = 1, arl_mode: str = "spatial", alpha: float = 0.001,
                 learn_alpha: bool = True, **kwargs: Any) -> None:
        if depth not in _DEPTHS:
            raise ValueError(f"ARL depth must be one of {sorted(_DEPTHS)}, not {depth}")
        block, layers = _DEPTHS[depth]
        super().__init__(block=block, layers=layers, num_classes=num_classes,
                         block_args=dict(arl_mode=arl_mode, alpha=alpha, learn_alpha=learn_alpha), **kwargs)
        self.depth = depth
        self.backbone_name = self.backbone_arch_of(depth=depth)  # ImageNet ResNet weights load into the whole model
        self.set_default_cfg((3, 224, 224), (7, 7), "layer4", num_classes=num_classes, first_conv="conv1",
                             architecture=f"arl_resnet{depth}", arl_mode=arl_mode)

    @classmethod
    def backbone_arch_of(cls, depth: int = 50, **_: Any) -> str:
        return f"resnet{depth}"

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        layers = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            last_block = getattr(self, name)[-1]
            layers.append((name, last_block.arl))
        return collect_maps(self, lambda: self(x), layers)


def _arl(depth: int, pretrained: bool | str, **kwargs: Any) -> ARLResNet:
    return build_model(ARLResNet, pretrained, depth=depth, **kwargs)


@register_model
def arl_resnet18(pretrained: bool | str = False, **kwargs: Any) -> ARLResNet:
    """ARL-CNN18, paper variant (spatial softmax, learnable α)."""
    return _arl(18, pretrained, **kwargs)


@register_model
def arl_resnet34(pretrained: bool | str = False, **kwargs: Any) -> ARLResNet:
    """ARL-CNN34, paper variant."""
    return _arl(34, pretrained, **kwargs)


@register_model
def arl_resnet50(pretrained: bool | str = False, **kwargs: Any) -> ARLResNet:
    """ARL-CNN50, paper variant (spatial softmax per channel, learnable α); 23,510,097 parameters with one output."""
    return _arl(50, pretrained, **kwargs)


@register_model
def arl_resnet50_code(pretrained: bool | str = False, **kwargs: Any) -> ARLResNet:
    """ARL-CNN50 as the unofficial code builds it: softmax across channels, fixed α = 0.001; 23,510,081 parameters."""
    kwargs.setdefault("arl_mode", "channel")
    kwargs.setdefault("learn_alpha", False)
    return _arl(50, pretrained, **kwargs)


