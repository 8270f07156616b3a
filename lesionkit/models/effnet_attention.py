""""Going Smaller" (Nazari & Garcia 2025): attention modules inserted between the stages of EfficientNet-B3.

The four models of the paper, on timm's ``tf_efficientnet_b3`` (the geffnet model the code used):

================  ===========================================================  ======================
name              insertion                                                     parameters, 9 classes
================  ===========================================================  ======================
effb3_baseline    none (plain B3 + Linear(1536→9))                              10,710,065
sge_b3            SGE(groups=8) after blocks[1]…blocks[6]                       + 96 = 10,710,161
spatial_b3        spatial attention (7×7, no bias) after blocks[1]…blocks[6]    + 588 = 10,710,653
s2mlp_b3          S2Attention(232) between blocks[5] and blocks[6]              + 431,520 = 11,141,585
s2cbam_b3         CBAM after blocks[0]…blocks[6], S2Attention(232) before the   + 62,341 + 431,520
                  CBAM of blocks[5]                                             = 11,203,926
================  ===========================================================  ======================

The repository's attention file (``SA_models_multi.py``) is missing; the blocks follow External-Attention-pytorch,
whose class names and signatures match (spec methods-b §B.3, assumed). Options: ``sge_beta_init`` (0 = External-
Attention, 1 = SGE paper), ``cbam_kernel`` (49 = External-Attention, 7 = CBAM paper), ``spatial_kernel``,
``spatial_init`` (the spatial convs of Spatial-B3 and of every CBAM: "pytorch", the originals' default init, or
"zeros").
Unlike the original (which puts the modules into the ``blocks`` list and so shifts its indices), the attention
modules sit in ``attn.<stage>``; the backbone keeps timm's names, so ImageNet B3 weights load by name.

Native maps: ``sge.stage{i}`` (B, 8, h, w); ``spatial.stage{i}`` and ``cbam.stage{i}`` (B, 1, h, w), the spatial
sigmoid maps. S2 attention re-weights channel branches, not positions, so s2mlp_b3 returns no map.
"""
from __future__ import annotations

from typing import Any

import timm
import torch
import torch.nn as nn

from lesionkit.layers.cbam import CBAM
from lesionkit.layers.s2_attention import S2Attention
from lesionkit.layers.sge import SpatialGroupEnhance
from lesionkit.layers.spatial_attention import SpatialAttention
from lesionkit.models._base import LesionModel, build_model
from lesionkit.models._helpers import collect_maps, stage_channels
from lesionkit.models._registry import register_model

__all__: list[str] = ["AttentionEfficientNet", "ATTENTION_KINDS"]

ATTENTION_KINDS = ("none", "sge", "spatial", "s2mlp", "s2cbam")


class AttentionEfficientNet(LesionModel):
    """A timm EfficientNet with attention blocks after chosen stages.

    Args:
        attention: one of ``ATTENTION_KINDS``.
        backbone: timm EfficientNet name (``tf_efficientnet_b3`` in the paper).
        num_classes: outputs (9 in the paper).
        sge_groups, sge_beta_init: SGE options.
        spatial_kernel: kernel of Spatial-B3's attention.
        spatial_init: initial weights of the spatial convs (Spatial-B3's and every CBAM's): "pytorch" or "zeros".
        cbam_kernel, cbam_reduction: CBAM options.
        s2_stage: stage after which S2 attention sits (5: 232 channels on B3).
        **kwargs: timm options for the backbone (in_chans, drop_rate, drop_path_rate, ...). The paper has no dropout.
    """

    classifier_name = "backbone.classifier"

    def __init__(self, attention: str = "sge", backbone: str = "tf_efficientnet_b3", num_classes: int = 9,
                 sge_groups: int = 8, sge_beta_init: float = 0.0, spatial_kernel: int = 7, cbam_kernel: int = 49,
                 cbam_reduction: int = 16, s2_stage: int = 5, spatial_init: str = "pytorch", **kwargs: Any) -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, not {attention!r}")
        self.attention = attention
        self.backbone_name = backbone
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=num_classes, **kwargs)
        chans = [stage_channels(stage) for stage in self.backbone.blocks]
        last = len(chans) - 1
        attn: dict[str, nn.Module] = {}
        if attention == "sge":
            attn = {str(i): SpatialGroupEnhance(chans[i], sge_groups, sge_beta_init) for i in range(1, last + 1)}
        elif attention == "spatial":
            attn = {str(i): SpatialAttention(chans[i], spatial_kernel, init=spatial_init) for i in range(1, last + 1)}
        elif attention == "s2mlp":
            attn = {str(s2_stage): S2Attention(chans[s2_stage])}
        elif attention == "s2cbam":
            attn = {str(i): CBAM(chans[i], cbam_reduction, cbam_kernel, spatial_init=spatial_init)
                    for i in range(last + 1)}
            attn[str(s2_stage)] = nn.Sequential(S2Attention(chans[s2_stage]), attn[str(s2_stage)])
        self.attn = nn.ModuleDict(attn)
        self.num_classes = num_classes
        self.num_features = self.backbone.num_features
        self.head_hidden_size = self.backbone.num_features
        self.set_default_cfg((3, 384, 384), (12, 12), "backbone.bn2", num_classes=num_classes,
                             first_conv="backbone.conv_stem", architecture=f"{attention}_{backbone}")

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.backbone.reset_classifier(num_classes, global_pool or self.backbone.global_pool.pool_type)
        self.num_classes = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        x = bb.bn1(bb.conv_stem(x))
        for i, stage in enumerate(bb.blocks):
            x = stage(x)
            if str(i) in self.attn:
                x = self.attn[str(i)](x)
        return bb.bn2(bb.conv_head(x))

    def _map_layers(self) -> list[tuple[str, nn.Module]]:
        out = []
        for key, module in self.attn.items():
            last = module[-1] if isinstance(module, nn.Sequential) else module
            if isinstance(last, (SpatialGroupEnhance, SpatialAttention, CBAM)):
                kind = {SpatialGroupEnhance: "sge", SpatialAttention: "spatial", CBAM: "cbam"}[type(last)]
                out.append((f"{kind}.stage{key}", last))
        return out

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Spatial maps of every attention block (see the module docstring for names and shapes)."""
        return collect_maps(self, lambda: self(x), self._map_layers())


def _b3(attention: str, pretrained: bool | str, **kwargs: Any) -> AttentionEfficientNet:
    return build_model(AttentionEfficientNet, pretrained, attention=attention, **kwargs)


@register_model
def effb3_baseline(pretrained: bool | str = False, **kwargs: Any) -> AttentionEfficientNet:
    """Plain tf_efficientnet_b3 + 9-class head (10,710,065 parameters), the paper's baseline."""
    return _b3("none", pretrained, **kwargs)


@register_model
def sge_b3(pretrained: bool | str = False, **kwargs: Any) -> AttentionEfficientNet:
    """SGE-B3 ("SA6"), the paper's best model."""
    return _b3("sge", pretrained, **kwargs)


@register_model
def spatial_b3(pretrained: bool | str = False, **kwargs: Any) -> AttentionEfficientNet:
    """Spatial-B3 ("SA1"); the spatial block's form is the spec's most plausible reading (unverified)."""
    return _b3("spatial", pretrained, **kwargs)


@register_model
def s2mlp_b3(pretrained: bool | str = False, **kwargs: Any) -> AttentionEfficientNet:
    """S2-MLP-B3 ("SA16"): one S2Attention at 232 channels before the last stage."""
    return _b3("s2mlp", pretrained, **kwargs)


@register_model
def s2cbam_b3(pretrained: bool | str = False, **kwargs: Any) -> AttentionEfficientNet:
    """S2-CBAM-B3 ("SA27"): CBAM after every stage plus S2Attention(232)."""
    return _b3("s2cbam", pretrained, **kwargs)
