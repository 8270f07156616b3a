"""Patch-based attention (Gessert et al., "Skin Lesion Classification Using CNNs With Patch-Based Attention and
Diagnosis-Guided Loss Weighting", TBME 2019).

A shared backbone runs over P ordered patches of a full-resolution image (P=5: 2×2 corners + centre, HAM10000;
P=9: 3×3 grid, derm7pt). The released code (``CNN_FC``) gates every patch at the input with one sigmoid from all P
patch means (``PatchGate``, P² + P parameters), optionally gates the pooled patch features the same way, and averages
the per-patch logits ("mean"). Alternatives of the code: "add" (sum of features → Linear), "conv1" (Conv1d(P→1) over
patches), "concat" (Linear(P·F → K)) and "gru" (GRU over the patch sequence, last step).

Paper vs code (spec methods-a §1.1): the paper describes attention *inside* the backbone's blocks (SE-style channel
attention whose squeeze pools over all patches); the code has only the input/output gates. The gates are the default
(the only verified variant); ``in_block=True`` adds ``PatchSE`` after every backbone stage (placement and reduction
ratio unverified against the PDF). With neither (``input_gate=False, in_block=False``, no ``feature_gate``) it is the
plain patch model, the no-attention baseline of the paper's comparison: only the attention parameters differ.

Input: either pre-cut patches (B, P, 3, h, w) or a full image (B, 3, H, W), which is cut with ``patch_grid``. The
code feeds images in [0, 1] without ImageNet normalisation, hence ``default_cfg`` mean 0 and std 1.
Patch dropout (zero-filled slots, as in the code's loader) is applied in training mode with ``patch_dropout``.
``forward_features`` returns the patch maps stacked along the height, (B, C, P·h′, w′), so Grad-CAM on ``patch_stack``
weighs channels by the gradient averaged over all patches, which for mean pooling is exact; split the map with
``unstack_patches``. Native maps: ``input_gate`` (B, P), ``feature_gate`` (B, P), ``block_se.{i}`` (B, C_i).
"""
from __future__ import annotations

import math
from typing import Any

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from lesionkit.layers.patch_gate import PatchGate, PatchSE
from lesionkit.models._base import LesionModel, build_model
from lesionkit.models._helpers import collect_maps
from lesionkit.models._registry import register_model

__all__: list[str] = ["PatchAttentionNet", "patch_grid", "extract_patches", "unstack_patches", "PATCH_COMBINERS"]

PATCH_COMBINERS = ("mean", "add", "conv1", "concat", "gru")


def patch_grid(image_size: tuple[int, int], n_patches: int, patch_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the code's ordered patches, row-major, centre patch last when P = n² + 1.

    Centres of an n×n grid: row_i = s/2 + i·(H − s)/(n − 1), col_j = s/2 + j·(W − s)/(n − 1). HAM (450×600, P=5,
    s=224): rows [0, 224) / [226, 450), cols [0, 224) / [376, 600), centre rows [113, 337), cols [188, 412).
    """
    height, width = image_size
    if patch_size > min(height, width):
        raise ValueError(f"patch_size {patch_size} exceeds the image size {height}×{width}")
    n = math.isqrt(n_patches)
    centre = n_patches == n * n + 1
    if n * n != n_patches and not centre or n < 1:
        raise ValueError(f"n_patches={n_patches}: use a square (4, 9, 16, ...) or a square + 1 for the centre (5, 10)")
    half = patch_size / 2

    def starts(extent: int) -> list[int]:
        if n == 1:
            return [int(round(extent / 2 - half))]
        return [int(round(half + i * (extent - patch_size) / (n - 1) - half)) for i in range(n)]

    corners = [(top, left) for top in starts(height) for left in starts(width)]
    if centre:
        corners.append((int(round(height / 2 - half)), int(round(width / 2 - half))))
    return corners


def extract_patches(images: torch.Tensor, n_patches: int, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, P, C, s, s), cut at ``patch_grid`` positions (differentiable slicing)."""
    corners = patch_grid(tuple(images.shape[-2:]), n_patches, patch_size)
    return torch.stack([images[..., t:t + patch_size, l:l + patch_size] for t, l in corners], dim=1)


def unstack_patches(stacked: torch.Tensor, n_patches: int) -> torch.Tensor:
    """(B, C, P·h, w) → (B, P, C, h, w): split a map computed on ``patch_stack`` back into patches."""
    b, c, ph, w = stacked.shape
    return stacked.reshape(b, c, n_patches, ph // n_patches, w).transpose(1, 2)


class PatchStack(nn.Module):
    """(B·P, C, h, w) → (B, C, P·h, w): the patch maps of one image stacked along the height."""

    def __init__(self, n_patches: int) -> None:
        super().__init__()
        self.n_patches = n_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bp, c, h, w = x.shape
        stacked = x.reshape(bp // self.n_patches, self.n_patches, c, h, w).transpose(1, 2)
        return stacked.reshape(-1, c, self.n_patches * h, w)


class PatchAttentionNet(LesionModel):
    """Shared-backbone patch classifier with patch-level attention.

    Args:
        backbone: timm name (inception_v3, densenet121, seresnext50_32x4d, or any timm CNN).
        n_patches: P (5 or 9 in the paper).
        num_classes: outputs (7 for HAM10000, 6 for derm7pt).
        patch_size: side of a patch (224).
        image_size: full-image size the model expects by default (450×600), for ``default_cfg``.
        input_gate: gate patches at the input (code default True).
        feature_gate: gate pooled patch features (code default False).
        in_block: the paper's in-block PatchSE variant (unverified placement).
        combiner: one of ``PATCH_COMBINERS``.
        patch_dropout: probability of zeroing a patch slot in training (HAM 0.1, derm7pt 0.2).
        gru_hidden: GRU width for combiner "gru" (default: backbone features).
        drop_rate: dropout on pooled patch features.
        **kwargs: timm backbone options.
    """

    def __init__(self, backbone: str = "inception_v3", n_patches: int = 5, num_classes: int = 7, patch_size: int = 224,
                 image_size: tuple[int, int] = (450, 600), input_gate: bool = True, feature_gate: bool = False,
                 in_block: bool = False, combiner: str = "mean", patch_dropout: float = 0.0,
                 gru_hidden: int | None = None, drop_rate: float = 0.0, **kwargs: Any) -> None:
        super().__init__()
        if combiner not in PATCH_COMBINERS:
            raise ValueError(f"combiner must be one of {PATCH_COMBINERS}, not {combiner!r}")
        if not 0.0 <= patch_dropout < 1.0:
            raise ValueError(f"patch_dropout must be in [0, 1), got {patch_dropout}")
        patch_grid(tuple(image_size), n_patches, patch_size)  # validates P and sizes early
        self.backbone_name = backbone
        self.n_patches, self.patch_size, self.combiner = n_patches, patch_size, combiner
        self.patch_dropout, self.drop_rate = patch_dropout, drop_rate
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="", **kwargs)
        self.num_features = self.backbone.num_features
        self.input_gate = PatchGate(n_patches) if input_gate else None
        self.feature_gate = PatchGate(n_patches) if feature_gate else None
        self.block_se = nn.ModuleList()
        if in_block:
            for info in self.backbone.feature_info:
                se = PatchSE(info["num_chs"], n_patches)
                self.block_se.append(se)
                self.backbone.get_submodule(info["module"]).register_forward_hook(se.as_hook)
        self.patch_stack = PatchStack(n_patches)
        self.gru_hidden = gru_hidden or self.num_features
        self.combine = self._make_combiner()
        self.reset_classifier(num_classes)
        pool = self._patch_pool_size(kwargs.get("in_chans", 3))
        self.set_default_cfg((3, *image_size), (n_patches * pool[0], pool[1]), "patch_stack",
                             mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), num_classes=num_classes,
                             n_patches=n_patches, patch_size=patch_size, architecture=f"patch_{backbone}")

    def _make_combiner(self) -> nn.Module | None:
        if self.combiner == "conv1":
            return nn.Conv1d(self.n_patches, 1, kernel_size=1)
        if self.combiner == "gru":
            return nn.GRU(self.num_features, self.gru_hidden, batch_first=True)
        return None

    @property
    def head_hidden_size(self) -> int:
        return {"concat": self.n_patches * self.num_features, "gru": self.gru_hidden}.get(self.combiner,
                                                                                           self.num_features)

    @torch.no_grad()
    def _patch_pool_size(self, in_chans: int) -> tuple[int, int]:
        was_training = self.backbone.training
        self.backbone.eval()
        batch = self.n_patches if len(self.block_se) else 1  # PatchSE needs whole images
        shape = self.backbone.forward_features(torch.zeros(batch, in_chans, self.patch_size, self.patch_size)).shape
        self.backbone.train(was_training)
        return int(shape[-2]), int(shape[-1])

    def new_classifier(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.head_hidden_size, num_classes)

    def as_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Accept (B, P, C, h, w) patches or (B, C, H, W) full images (cut with ``extract_patches``)."""
        if x.dim() == 5:
            if x.shape[1] != self.n_patches:
                raise ValueError(f"got {x.shape[1]} patches, the model was built for n_patches={self.n_patches}")
            return x
        if x.dim() == 4:
            return extract_patches(x, self.n_patches, self.patch_size)
        raise ValueError(f"expected (B, P, C, h, w) patches or (B, C, H, W) images, got shape {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.as_patches(x)
        if self.training and self.patch_dropout > 0:
            keep = (torch.rand(x.shape[:2], device=x.device) >= self.patch_dropout).to(x.dtype)
            x = x * keep[:, :, None, None, None]
        if self.input_gate is not None:
            x = self.input_gate(x)
        return self.patch_stack(self.backbone.forward_features(x.flatten(0, 1)))

    def pool_features(self, x: torch.Tensor) -> torch.Tensor:
        f = unstack_patches(x, self.n_patches).mean((3, 4))  # (B, P, F)
        if self.feature_gate is not None:
            f = self.feature_gate(f)
        if self.drop_rate > 0:
            f = F.dropout(f, self.drop_rate, self.training)
        if self.combiner == "mean":  # mean of per-patch logits == classifier of the mean feature (linear head)
            h = f.mean(1)
        elif self.combiner == "add":
            h = f.sum(1)
        elif self.combiner == "conv1":
            h = self.combine(f).squeeze(1)
        elif self.combiner == "concat":
            h = f.flatten(1)
        else:
            h = self.combine(f)[0][:, -1]
        return h

    def attention_modules(self) -> dict[str, nn.Module]:
        """The attention modules present, by map name (empty for the no-attention baseline)."""
        gates = {name: m for name, m in (("input_gate", self.input_gate), ("feature_gate", self.feature_gate))
                 if m is not None}
        return {**gates, **{f"block_se.{i}": se for i, se in enumerate(self.block_se)}}

    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patch gates (B, P) and, for the in-block variant, channel gates (B, C_i) per stage."""
        return collect_maps(self, lambda: self(x), list(self.attention_modules().items()))


@register_model
def patch_inception_v3(pretrained: bool | str = False, **kwargs: Any) -> PatchAttentionNet:
    """HAM10000 configuration: InceptionV3, P=5 (4 corners + centre), input gate, mean of logits, 7 classes."""
    kwargs.setdefault("backbone", "inception_v3")
    return build_model(PatchAttentionNet, pretrained, **kwargs)


@register_model
def patch_densenet121(pretrained: bool | str = False, **kwargs: Any) -> PatchAttentionNet:
    """derm7pt configuration: DenseNet121, P=9 (3×3 grid), input gate, mean of logits, 6 classes."""
    kwargs.setdefault("backbone", "densenet121")
    kwargs.setdefault("n_patches", 9)
    kwargs.setdefault("num_classes", 6)
    return build_model(PatchAttentionNet, pretrained, **kwargs)


@register_model
def patch_seresnext50(pretrained: bool | str = False, **kwargs: Any) -> PatchAttentionNet:
    """SE-ResNeXt50 (32×4d), P=5, input gate, mean of logits."""
    kwargs.setdefault("backbone", "seresnext50_32x4d")
    return build_model(PatchAttentionNet, pretrained, **kwargs)


@register_model
def patch_attention(pretrained: bool | str = False, **kwargs: Any) -> PatchAttentionNet:
    """Any timm backbone (``backbone=``) with the patch attention of the code; defaults as patch_inception_v3."""
    return build_model(PatchAttentionNet, pretrained, **kwargs)
