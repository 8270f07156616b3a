"""The paper models. Importing this package imports every paper file, which registers its entrypoints."""
from __future__ import annotations

from lesionkit.models import arl, effnet_attention, multimodal, patch_attention, se_lcn  # noqa: F401  (registration)
from lesionkit.models.arl import ARLResNet
from lesionkit.models.effnet_attention import AttentionEfficientNet
from lesionkit.models.multimodal import ArtefactClassifier, MultimodalEfficientNet
from lesionkit.models.patch_attention import PatchAttentionNet, extract_patches, patch_grid, unstack_patches
from lesionkit.models.se_lcn import LesionSegmenter, SELCNClassifier, SymmetryNet, lae_box, lae_mask

__all__ = [
    "ARLResNet", "ArtefactClassifier", "AttentionEfficientNet", "LesionSegmenter", "MultimodalEfficientNet",
    "PatchAttentionNet", "SELCNClassifier", "SymmetryNet", "extract_patches", "lae_box", "lae_mask", "patch_grid",
    "unstack_patches",
]
