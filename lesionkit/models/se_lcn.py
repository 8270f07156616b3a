"""SE-LCN (symmetry-enhanced lesion classification network; Ramakrishnan, UTwente thesis), a three-network cascade.

1. ``selcn_segmenter``: lesion segmentation, DeepLabV3+ (output stride 16) with a timm encoder: the code's head
   (ASPP 6/12/18, two-conv decoder) on Xception-65 (``tu-xception65``, timm's aligned Xception, 16 middle blocks as
   the code's) by default; smp's DeepLabV3Plus as ``head="smp"``. Output (B, 2, H, W) logits; train with
   ``lesionkit.losses.DiceRankLoss``. The masks feed ``lae_box`` / ``lae_mask`` (largest contour's box enlarged by
   20 % per side; pixels outside set to 0).
2. ``selcn_symmetry``: SqueezeNet 1.0 (torchvision) with a 2-way final conv (736,450 parameters). Its Grad-CAM++ at
   the last Fire module's expand3x3 activation (argmax class, min-max normalised) is the symmetry CAM.
3. ``selcn_classifier``: EfficientNet-B4 features (1792 channels) + E-layer (CAM as an extra channel → Conv1×1 + BN
   + ReLU) → GAP → Linear. Trainable parameters with 7 classes: 17,548,616 + 3,218,432 + 12,551 = 20,779,599. The
   CAM is an input feature, not a loss term. ``forward(x, cam=None)``: without ``cam`` the attached (frozen, eval-mode)
   symmetry network computes it on the fly, so the classifier is a one-input model for fastai and Captum; load the
   trained symmetry weights into ``model.symmetry_net``. The original computes CAMs offline at a fixed 224×224; here
   they are computed at the input size (``cam`` may also be passed precomputed).

Native maps: symmetry net and classifier ``symmetry_cam`` (B, 1, H, W) in [0, 1]; the segmenter has none.
The segmenter's output is a map, so Captum needs a scalar per class: use ``model.class_scores`` as the forward function.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from lesionkit.layers.e_layer import ELayer
from lesionkit.layers.gradcam_pp import (
    GRADCAM_PP_FORMS,
    grad_cam_plus_plus,
    minmax_normalise,
)
from lesionkit.models._base import LesionModel, build_model
from lesionkit.models._registry import register_model

__all__: list[str] = ["ASPP", "DeepLabV3PlusDecoder", "LesionSegmenter", "SEG_HEADS", "SEG_INPUT_NORMS", "SymmetryNet",
                     "SELCNClassifier", "encoder_norm", "lae_box", "lae_mask"]


def lae_box(mask: np.ndarray | torch.Tensor, enlarge: float = 0.2) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), end-exclusive, of the largest external contour's bounding box enlarged by ``enlarge`` of its
    width/height on each side and clipped to the image; None for an empty mask."""
    import cv2

    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"lae_box expects a 2-D mask, got shape {arr.shape}")
    contours, _ = cv2.findContours((arr > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
    height, width = arr.shape
    x0, y0 = max(0, int(x - enlarge * w)), max(0, int(y - enlarge * h))
    x1, y1 = min(width, int(x + (1 + enlarge) * w)), min(height, int(y + (1 + enlarge) * h))
    return x0, y0, x1, y1


def lae_mask(image: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor, enlarge: float = 0.2):
    """Zero every pixel of ``image`` (H, W[, C] array or (C, H, W) tensor) outside ``lae_box(mask)``."""
    box = lae_box(mask, enlarge)
    out = image.clone() if isinstance(image, torch.Tensor) else np.array(image, copy=True)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    keep = np.zeros(tuple(mask.shape[-2:]), dtype=bool)
    keep[y0:y1, x0:x1] = True
    if isinstance(out, torch.Tensor):
        out[..., ~torch.from_numpy(keep)] = 0
    else:
        out[~keep] = 0
    return out


def _conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class ASPP(nn.Module):
    """The code's ASPP (net/models.py:121-169): 1×1, three 3×3 convs dilated ``rates``, image pooling
    (GAP → 1×1 → bilinear up), each ``ch`` channels + BN + ReLU; concatenated and projected by 1×1 + BN + ReLU to
    ``ch``."""

    def __init__(self, cin: int, ch: int = 256, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.rates = tuple(rates)
        self.branches = nn.ModuleList([_conv_bn_relu(cin, ch)] + [_conv_bn_relu(cin, ch, 3, r) for r in self.rates])
        self.pool = _conv_bn_relu(cin, ch)
        self.project = _conv_bn_relu(ch * (len(self.rates) + 2), ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pool(x.mean((2, 3), keepdim=True)), size=x.shape[-2:], mode="bilinear",
                               align_corners=True)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLabV3PlusDecoder(nn.Module):
    """The code's DeepLabV3+ head: ASPP → Dropout 0.5 → ×4 bilinear up; shortcut 1×1 (low-level → 48) + BN +
    ReLU; concatenated → [3×3 256, BN, ReLU, Dropout 0.5, 3×3 256, BN, ReLU, Dropout 0.1] (``fuse``), at stride 4."""

    def __init__(self, high_ch: int, low_ch: int, ch: int = 256, rates: tuple[int, ...] = (6, 12, 18),
                 shortcut_ch: int = 48) -> None:
        super().__init__()
        self.aspp, self.aspp_dropout = ASPP(high_ch, ch, rates), nn.Dropout(0.5)
        self.shortcut = _conv_bn_relu(low_ch, shortcut_ch)
        self.fuse = nn.Sequential(_conv_bn_relu(ch + shortcut_ch, ch, 3), nn.Dropout(0.5),
                                  _conv_bn_relu(ch, ch, 3), nn.Dropout(0.1))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.aspp_dropout(self.aspp(high)), size=low.shape[-2:], mode="bilinear",
                           align_corners=True)
        return self.fuse(torch.cat([up, self.shortcut(low)], 1))


SEG_HEADS = ("paper", "smp")
SEG_INPUT_NORMS = ("weights", "imagenet")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def encoder_norm(encoder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the timm ImageNet weights of ``encoder`` (``tu-<timm name>``): what inputs must be normalised
    with for those weights to see what they were trained on. ImageNet's when timm has no config for it."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(encoder.removeprefix("tu-"))
    if cfg is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(cfg.mean), tuple(cfg.std)


class LesionSegmenter(LesionModel):
    """DeepLabV3+ with a timm encoder at output stride 16; ``forward(x)`` → (B, num_classes, H, W) logits.

    ``head="paper"`` (default): the code's head (:class:`DeepLabV3PlusDecoder`: ASPP rates 6/12/18, two 3×3 decoder
    convs with dropout) on the encoder's stride-4 and last (stride-16) features, 1×1 classifier, ×4 bilinear up.
    ``head="smp"``: segmentation-models-pytorch's DeepLabV3Plus (separable convs, rates 12/24/36, one decoder block).
    Encoder names are smp's (``tu-<timm name>``); ``tu-xception65`` is timm's aligned Xception with the 16 middle
    blocks of the code's Xception. H and W must be divisible by 16. No weights are downloaded here.
    ``input_norm``: the mean/std its inputs take (its cfg, which loaders read): "weights", those the encoder's timm
    ImageNet weights were trained with (0.5/0.5 for xception65), or "imagenet" (ImageNet's; the earlier default).
    """

    def __init__(self, encoder: str = "tu-xception65", num_classes: int = 2, in_chans: int = 3,
                 output_stride: int = 16, head: str = "paper", aspp_rates: tuple[int, ...] = (6, 12, 18),
                 input_norm: str = "imagenet") -> None:
        super().__init__()
        if head not in SEG_HEADS:
            raise ValueError(f"head={head!r}: choose one of {SEG_HEADS}")
        if input_norm not in SEG_INPUT_NORMS:
            raise ValueError(f"input_norm={input_norm!r}: choose one of {SEG_INPUT_NORMS}")
        self.encoder_name, self.head, self.output_stride = encoder, head, output_stride
        if head == "smp":
            import segmentation_models_pytorch as smp

            self.net = smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, in_channels=in_chans,
                                         classes=num_classes, encoder_output_stride=output_stride)
            self.classifier_name, cam_layer = "net.segmentation_head", "net.decoder"
            self.num_features = self.net.segmentation_head[0].in_channels
        else:
            self.encoder = timm.create_model(self.backbone_arch_of(encoder), pretrained=False, num_classes=0,
                                             global_pool="", output_stride=output_stride, in_chans=in_chans)
            info = self.encoder.feature_info  # the whole timm model (its names, so ImageNet weights load by name)
            reductions, channels = [f["reduction"] for f in info], [f["num_chs"] for f in info]
            if 4 not in reductions:
                raise ValueError(f"encoder {encoder}: no stride-4 feature map for the decoder's shortcut")
            self.low_index = max(i for i, r in enumerate(reductions) if r == 4)
            self.feature_indices = [self.low_index, len(info) - 1]
            self.decoder = DeepLabV3PlusDecoder(channels[-1], channels[self.low_index], rates=tuple(aspp_rates))
            self.classifier_name, cam_layer = "classifier", "decoder.fuse"
            self.num_features = 256
            self.classifier = self.new_classifier(num_classes)
        self.num_classes = num_classes
        self.head_hidden_size = self.num_features
        mean, std = encoder_norm(encoder) if input_norm == "weights" else (IMAGENET_MEAN, IMAGENET_STD)
        self.set_default_cfg((3, 256, 256), None, cam_layer, num_classes=num_classes, task="segmentation",
                             architecture=f"deeplabv3plus_{head}_{encoder}", mean=mean, std=std)

    @classmethod
    def backbone_arch_of(cls, encoder: str = "tu-xception65", **_: Any) -> str:
        return encoder.removeprefix("tu-")

    def pretrained_target(self) -> tuple[str, nn.Module]:
        if self.head == "smp":
            return self.backbone_arch_of(self.encoder_name), getattr(self.net.encoder, "model", self.net.encoder)
        return self.backbone_arch_of(self.encoder_name), self.encoder

    def new_classifier(self, num_classes: int) -> nn.Module:
        if self.head == "smp":
            from segmentation_models_pytorch.base import SegmentationHead

            return SegmentationHead(self.num_features, num_classes, kernel_size=1, upsampling=4)
        return nn.Sequential(nn.Conv2d(self.num_features, num_classes, 1),
                             nn.UpsamplingBilinear2d(scale_factor=4))  # the code's 1×1 and ×4 bilinear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.head == "smp":
            return self.net.decoder(self.net.encoder(x))
        if x.shape[-2] % 16 or x.shape[-1] % 16:
            raise ValueError(f"input {tuple(x.shape[-2:])}: H and W must be divisible by 16 (output stride 16)")
        low, high = self.encoder.forward_intermediates(x, indices=self.feature_indices, intermediates_only=True)
        return self.decoder(low, high)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        return x  # dense prediction: the decoder map is the pre-logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) if self.head == "smp" else self.forward_head(self.forward_features(x))

    def class_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_classes) spatial means of the logits: a scalar per class for Captum's Grad-CAM."""
        return self(x).mean((2, 3))


class SymmetryNet(LesionModel):
    """torchvision SqueezeNet 1.0 with a ``num_classes``-way final conv; ReLUs are not in place (hook-safe).
    ``cam_form``: the Grad-CAM++ denominator of its symmetry CAM (``lesionkit.layers.gradcam_pp``)."""

    cam_module = "features.12.expand3x3_activation"
    classifier_name = "classifier.1"

    def __init__(self, num_classes: int = 2, dropout: float = 0.5, cam_form: str = "paper") -> None:
        super().__init__()
        from torchvision.models import squeezenet1_0

        if cam_form not in GRADCAM_PP_FORMS:
            raise ValueError(f"cam_form={cam_form!r}: choose one of {GRADCAM_PP_FORMS}")
        self.cam_form = cam_form

        net = squeezenet1_0(weights=None, num_classes=num_classes, dropout=dropout)
        self.features, self.classifier = net.features, net.classifier
        self.classifier[1] = self.new_classifier(num_classes)  # the code's fresh Conv2d (default init), not
        # torchvision's N(0, 0.01) / bias-0 final conv, whose logits start at the head ReLU's kink
        for module in self.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = 512
        self.backbone_name = self.backbone_arch_of()  # weights load into the whole model
        self.set_default_cfg((3, 256, 256), (15, 15), self.cam_module, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                             num_classes=num_classes, first_conv="features.0", architecture="squeezenet1_0")

    @classmethod
    def backbone_arch_of(cls, **_: Any) -> str:
        return "squeezenet1_0"

    def new_classifier(self, num_classes: int) -> nn.Module:
        return nn.Conv2d(512, num_classes, kernel_size=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x.mean((2, 3)) if pre_logits else torch.flatten(self.classifier(x), 1)  # the classifier pools last

    def symmetry_cam(self, x: torch.Tensor, target: torch.Tensor | None = None,
                     size: tuple[int, int] | None = None) -> torch.Tensor:
        """Grad-CAM++ of the last Fire expand3x3 activation for ``target`` (default: argmax class).

        Runs in eval mode with gradients enabled and detached from the caller's graph, also when called under
        ``torch.no_grad()`` or ``torch.inference_mode()`` (prediction loops). Returns (B, 1, H, W) in [0, 1], resized
        to ``size`` (default: the input size).
        """
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                x = x.detach().clone()  # an inference-mode tensor cannot enter autograd; its clone here can
                fire = self.features[12]
                squeezed = fire.squeeze_activation(fire.squeeze(self.features[:12](x)))
                e1 = fire.expand1x1_activation(fire.expand1x1(squeezed))
                e3 = fire.expand3x3_activation(fire.expand3x3(squeezed)).detach().requires_grad_(True)
                logits = self.forward_head(torch.cat([e1, e3], dim=1))
                cls = logits.argmax(1) if target is None else torch.as_tensor(target, device=x.device).reshape(-1)
                score = logits.gather(1, cls.expand(x.shape[0]).reshape(-1, 1)).sum()
                grads = torch.autograd.grad(score, e3)[0]
            cam = grad_cam_plus_plus(e3.detach(), grads, self.cam_form)
            cam = F.interpolate(cam, size=size or tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
            return minmax_normalise(cam)
        finally:
            self.train(was_training)

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"symmetry_cam": self.symmetry_cam(x)}


class SELCNClassifier(LesionModel):
    """EfficientNet features + E-layer(CAM) → GAP → Linear; ``forward(x, cam=None)``.

    Args:
        backbone: timm name (``efficientnet_b4``: the code's torchvision B4 has the same 1792-channel features).
        num_classes: 7 (HAM10000).
        with_symmetry_net: attach a frozen ``SymmetryNet`` that makes the CAM when none is passed.
        drop_rate: dropout before the Linear (the code uses none).
        **kwargs: timm backbone options.
    """

    classifier_name = "classifier"

    def __init__(self, backbone: str = "efficientnet_b4", num_classes: int = 7, with_symmetry_net: bool = True,
                 drop_rate: float = 0.0, **kwargs: Any) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="", **kwargs)
        self.num_features = self.head_hidden_size = self.backbone.num_features
        self.e_layer = ELayer(self.num_features)
        self.drop_rate = drop_rate
        self.reset_classifier(num_classes)
        self.symmetry_net = SymmetryNet() if with_symmetry_net else None
        if self.symmetry_net is not None:
            self.symmetry_net.requires_grad_(False).eval()
        self.set_default_cfg((3, 256, 256), (8, 8), "e_layer.act", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                             num_classes=num_classes, first_conv="backbone.conv_stem", architecture=f"selcn_{backbone}")

    def train(self, mode: bool = True) -> "SELCNClassifier":
        super().train(mode)
        if self.symmetry_net is not None:
            self.symmetry_net.eval()  # frozen CAM generator: keep its dropout off
        return self

    def new_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes)

    def symmetry_cam(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetry_net is None:
            raise ValueError("no CAM: pass cam=(B, 1, H, W) maps, or build the model with with_symmetry_net=True")
        return self.symmetry_net.symmetry_cam(x)

    def forward_features(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        cam = self.symmetry_cam(x) if cam is None else cam
        if cam.dim() == 3:
            cam = cam.unsqueeze(1)
        return self.e_layer(self.backbone.forward_features(x), cam)

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        h = x.mean((2, 3))
        return F.dropout(h, self.drop_rate, self.training) if self.drop_rate > 0 else h

    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, cam))

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"symmetry_cam": self.symmetry_cam(x)} if self.symmetry_net is not None else {}


@register_model
def selcn_segmenter(pretrained: bool | str = False, **kwargs: Any) -> LesionSegmenter:
    """DeepLabV3+ (the code's head, Xception-65 encoder, output stride 16), 2 classes."""
    return build_model(LesionSegmenter, pretrained, **kwargs)


@register_model
def selcn_symmetry(pretrained: bool | str = False, **kwargs: Any) -> SymmetryNet:
    """SqueezeNet 1.0 symmetry classifier (symmetric / asymmetric)."""
    return build_model(SymmetryNet, pretrained, **kwargs)


@register_model
def selcn_classifier(pretrained: bool | str = False, **kwargs: Any) -> SELCNClassifier:
    """EfficientNet-B4 + E-layer diagnosis classifier, with an attached symmetry network for the CAM."""
    return build_model(SELCNClassifier, pretrained, **kwargs)
