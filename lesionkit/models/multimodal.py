"""Multimodal EfficientNet (SIIM-ISIC 2020 1st place; "Multimodality for skin lesions classification", Eye for AI)
and the artefact/bias classifier of the latter.

MultimodalEfficientNet: timm EfficientNet image features (GAP) ‖ metadata MLP (n_meta → 512 → 128) → multi-sample
dropout head (5 × Dropout(0.5) into one shared Linear). ``n_meta=0`` is the image-only mode. ``forward(image, meta)``.
Code differences kept as options: ``backbone_drop_rate=0.3`` reproduces the dropout efficientnet_pytorch applies
before the head in the Eye-for-AI code (the 1st-place geffnet models have none: the default 0.0);
``meta_order="act_bn"`` gives the "Going Smaller" baseline's Linear → SiLU → BN order.
Parameters (B2, 1408 features): backbone 7,700,994; meta branch 14 → 512 → 128: 74,624; head (1408 + 128)·K + K.

ArtefactClassifier: EfficientNet-B2 features (+ Dropout 0.3, as in the code) and six independent 2-way heads
(Dropout(0.2) → Linear(1408 → 2)): hair_dense, hair_short, hair_medium, black_frame, ruler, other. It returns one
tensor (B, 6, 2) so fastai and Captum can use it; ``as_dict`` names the heads; the loss is
``lesionkit.losses.MultiHeadCrossEntropy`` (sum of per-head cross-entropies, as in the code).

Neither model has native attention maps (``attention_maps`` returns {}).
"""
from __future__ import annotations

from typing import Any, Sequence

import timm
import torch
import torch.nn as nn

from lesionkit.layers.meta_branch import MetaBranch
from lesionkit.layers.msd_head import MultiSampleDropoutHead
from lesionkit.models._base import LesionModel, build_model
from lesionkit.models._registry import register_model

__all__: list[str] = ["MultimodalEfficientNet", "ArtefactClassifier", "ARTEFACT_HEADS"]

ARTEFACT_HEADS = ("hair_dense", "hair_short", "hair_medium", "black_frame", "ruler", "other")


class MultimodalEfficientNet(LesionModel):
    """Image + metadata classifier; ``forward(image, meta=None)``, ``meta`` of shape (B, n_meta).

    Args:
        backbone: timm EfficientNet name (B2 default; the 1st place used B3-B7).
        num_classes: outputs (2 in Eye for AI, 9 in the 1st place).
        n_meta: number of metadata features (14 in the 1st place); 0 = image only.
        meta_dims: widths of the metadata MLP.
        meta_dropout: dropout after the first metadata layer.
        n_dropout, dropout: multi-sample dropout head.
        backbone_drop_rate: dropout on the pooled image features.
        meta_order: "bn_act" (1st place) or "act_bn".
        **kwargs: timm backbone options (in_chans, drop_path_rate, ...).
    """

    classifier_name = "head.fc"  # the Linear shared by the dropout samples

    def __init__(self, backbone: str = "tf_efficientnet_b2", num_classes: int = 2, n_meta: int = 14,
                 meta_dims: Sequence[int] = (512, 128), meta_dropout: float = 0.3, n_dropout: int = 5,
                 dropout: float = 0.5, backbone_drop_rate: float = 0.0, meta_order: str = "bn_act",
                 **kwargs: Any) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, drop_rate=backbone_drop_rate,
                                          **kwargs)
        self.n_meta = int(n_meta)
        self.meta = MetaBranch(self.n_meta, tuple(meta_dims), meta_dropout, meta_order) if self.n_meta else None
        self.num_features = self.backbone.num_features
        self.head_hidden_size = self.num_features + (self.meta.out_features if self.meta is not None else 0)
        self.num_classes = num_classes
        self.head = MultiSampleDropoutHead(self.head_hidden_size, num_classes, n_dropout, dropout)
        self.set_default_cfg((3, 256, 256), (8, 8), "backbone.bn2", num_classes=num_classes,
                             first_conv="backbone.conv_stem", n_meta=self.n_meta,
                             architecture=f"multimodal_{backbone}")

    def new_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.head_hidden_size, num_classes)  # the dropout samples have no parameters

    def forward_head(self, x: torch.Tensor, meta: torch.Tensor | None = None, pre_logits: bool = False) -> torch.Tensor:
        h = self.pool_features(x)
        if self.meta is not None:
            if meta is None:
                raise ValueError(f"this model was built with n_meta={self.n_meta}: call model(image, meta) with meta "
                                 f"of shape (B, {self.n_meta}), or build it with n_meta=0 for image only")
            if meta.shape[-1] != self.n_meta:
                raise ValueError(f"meta has {meta.shape[-1]} features, the model expects n_meta={self.n_meta}")
            h = torch.cat([h, self.meta(meta.to(h.dtype))], dim=1)
        return h if pre_logits else self.head(h)

    def forward(self, image: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(image), meta)


class ArtefactClassifier(LesionModel):
    """Multi-head artefact/bias classifier; ``forward(x)`` → (B, n_heads, 2) logits.

    Args:
        backbone: timm name (B2 in the code).
        heads: head names, in output order.
        head_dropout: dropout before each head's Linear (0.2).
        backbone_drop_rate: dropout on pooled features (0.3, efficientnet_pytorch's B2 default in the code).
        **kwargs: timm backbone options.
    """

    classifier_name = "heads"

    def __init__(self, backbone: str = "tf_efficientnet_b2", heads: Sequence[str] = ARTEFACT_HEADS,
                 head_dropout: float = 0.2, backbone_drop_rate: float = 0.3, num_classes: int = 2,
                 **kwargs: Any) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, drop_rate=backbone_drop_rate,
                                          **kwargs)
        self.head_names = tuple(heads)
        self.head_dropout = head_dropout
        self.num_features = self.head_hidden_size = self.backbone.num_features
        self.reset_classifier(num_classes)
        self.set_default_cfg((3, 256, 256), (8, 8), "backbone.bn2", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                             num_classes=num_classes, heads=self.head_names, first_conv="backbone.conv_stem",
                             architecture=f"artefact_{backbone}")

    def new_classifier(self, num_classes: int) -> nn.Module:
        return nn.ModuleDict({name: nn.Sequential(nn.Dropout(self.head_dropout),
                                                  nn.Linear(self.num_features, num_classes))
                              for name in self.head_names})

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(h) for head in self.heads.values()], dim=1)

    def as_dict(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split (B, n_heads, 2) logits into {head name: (B, 2)} (the original's dict output)."""
        return {name: logits[:, i] for i, name in enumerate(self.head_names)}


@register_model
def multimodal_b2(pretrained: bool | str = False, **kwargs: Any) -> MultimodalEfficientNet:
    """EfficientNet-B2 + metadata branch (n_meta=14 by default) + multi-sample dropout head, 2 classes."""
    return build_model(MultimodalEfficientNet, pretrained, **kwargs)


@register_model
def multimodal_b2_image(pretrained: bool | str = False, **kwargs: Any) -> MultimodalEfficientNet:
    """Image-only mode of the multimodal model (n_meta=0)."""
    kwargs.setdefault("n_meta", 0)
    return build_model(MultimodalEfficientNet, pretrained, **kwargs)


@register_model
def artefact_b2(pretrained: bool | str = False, **kwargs: Any) -> ArtefactClassifier:
    """Artefact/bias classifier: EfficientNet-B2 with six independent 2-way heads."""
    return build_model(ArtefactClassifier, pretrained, **kwargs)
