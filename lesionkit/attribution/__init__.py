"""Attribution maps for lesion classifiers: one ``attribute`` call over Captum's methods, Grad-CAM++ and native maps,
scores of a map against the lesion mask, and maps precomputed and stored with a run for the viewer."""
from __future__ import annotations

from lesionkit.attribution.core import METHODS, Attribution, as_plain_tensor, attribute, canonical_method, denormalize
from lesionkit.attribution.explain import explain_rows
from lesionkit.attribution.inplace import disable_inplace
from lesionkit.attribution.layers import LayerResolutionError, resolve_layer
from lesionkit.attribution.precompute import (
    AttributionsNotFoundError,
    AttributionStore,
    load_attributions,
    precompute_attributions,
    predict_proba,
)
from lesionkit.attribution.scores import (
    SCORES,
    deletion_insertion,
    iou_dilated,
    mask_scores,
    mass_inside,
    overlap,
    pointing_game,
    score_maps,
    summarize_scores,
)

__all__ = [
    "METHODS",
    "SCORES",
    "AttributionStore",
    "AttributionsNotFoundError",
    "deletion_insertion",
    "explain_rows",
    "iou_dilated",
    "load_attributions",
    "mask_scores",
    "mass_inside",
    "overlap",
    "pointing_game",
    "precompute_attributions",
    "predict_proba",
    "score_maps",
    "summarize_scores",
    "Attribution",
    "LayerResolutionError",
    "as_plain_tensor",
    "attribute",
    "canonical_method",
    "denormalize",
    "disable_inplace",
    "resolve_layer",
]
