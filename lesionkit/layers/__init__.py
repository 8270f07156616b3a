"""Reusable blocks of the five papers, one concept per file (timm.layers is reused where it has the block)."""
from __future__ import annotations

from lesionkit.layers.arl import ARLBasicBlock, ARLBottleneck, ResidualAttention
from lesionkit.layers.cbam import CBAM
from lesionkit.layers.e_layer import ELayer
from lesionkit.layers.gradcam_pp import grad_cam_plus_plus, minmax_normalise
from lesionkit.layers.meta_branch import MetaBranch
from lesionkit.layers.msd_head import MultiSampleDropoutHead
from lesionkit.layers.patch_gate import PatchGate, PatchSE
from lesionkit.layers.s2_attention import S2Attention, SplitAttention, spatial_shift1, spatial_shift2
from lesionkit.layers.sge import SpatialGroupEnhance
from lesionkit.layers.spatial_attention import SpatialAttention

__all__ = [
    "ARLBasicBlock", "ARLBottleneck", "CBAM", "ELayer", "MetaBranch", "MultiSampleDropoutHead", "PatchGate", "PatchSE",
    "ResidualAttention", "S2Attention", "SpatialAttention", "SpatialGroupEnhance", "SplitAttention",
    "grad_cam_plus_plus", "minmax_normalise", "spatial_shift1", "spatial_shift2",
]
