"""The paper models, their registry and the model factory (timm's layout).

Importing this package imports every paper file, which registers its entrypoints. ``create_model`` builds a
registered model or any timm architecture and records ``model.lesionkit_spec``; ``model_spec`` / ``load_model``
save and rebuild a model from ``<name>.json`` + ``<name>.pth``.
"""
from __future__ import annotations

from lesionkit.models import arl, effnet_attention, multimodal, patch_attention, se_lcn  # noqa: F401  (registration)
from lesionkit.models._base import LesionModel
from lesionkit.models._factory import create_model, create_timm_model, load_model, model_spec
from lesionkit.models._registry import UnknownModelError, is_model, list_models, model_entrypoint, register_model
from lesionkit.models.arl import ARLResNet
from lesionkit.models.effnet_attention import AttentionEfficientNet
from lesionkit.models.multimodal import ArtefactClassifier, MultimodalEfficientNet
from lesionkit.models.patch_attention import PatchAttentionNet, extract_patches, patch_grid, unstack_patches
from lesionkit.models.se_lcn import LesionSegmenter, SELCNClassifier, SymmetryNet, lae_box, lae_mask

__all__ = [
    "ARLResNet", "ArtefactClassifier", "AttentionEfficientNet", "LesionModel", "LesionSegmenter",
    "MultimodalEfficientNet", "PatchAttentionNet", "SELCNClassifier", "SymmetryNet", "UnknownModelError",
    "create_model", "create_timm_model", "extract_patches", "is_model", "lae_box", "lae_mask", "list_models",
    "load_model", "model_entrypoint", "model_spec", "patch_grid", "register_model", "unstack_patches",
]
