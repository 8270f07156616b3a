"""Grad-CAM++ from a layer's activations and gradients (SE-LCN's symmetry CAM), in torch so it runs in-graph."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# α's denominator: "paper" is Chattopadhay et al. 2018 eq. 19, 2g² + (Σ_uv A_k)·g³ at each position; "code" is
# SE-LCN's gradcam/gradcam.py, 2g² + Σ_uv(A_k·g³), one sum per channel. The SE-LCN paper's numbers came from "code".
GRADCAM_PP_FORMS = ("paper", "code")


def grad_cam_plus_plus(activations: torch.Tensor, gradients: torch.Tensor, form: str = "paper") -> torch.Tensor:
    """M = ReLU(Σ_k w_k A_k), w_k = Σ_uv α_kuv ReLU(g_kuv), α = g² / denominator (zero denominators → 1), the
    denominator by ``form`` (:data:`GRADCAM_PP_FORMS`).

    The original multiplies the gradients by exp(S) (gradient of exp of the score); that is one positive scalar per
    image, which the min-max normalisation removes, and it overflows for large logits, so it is left out.
    Returns (B, 1, h, w), unnormalised.
    """
    if form not in GRADCAM_PP_FORMS:
        raise ValueError(f"Grad-CAM++ form={form!r}: choose one of {GRADCAM_PP_FORMS}")
    g2 = gradients.pow(2)
    if form == "paper":
        third = activations.sum((2, 3), keepdim=True) * g2 * gradients
    else:
        third = (activations * g2 * gradients).sum((2, 3), keepdim=True)
    denom = 2 * g2 + third
    denom = torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = g2 / denom
    weights = (alpha * F.relu(gradients)).sum((2, 3), keepdim=True)
    return F.relu((weights * activations).sum(1, keepdim=True))


def minmax_normalise(maps: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Scale each map of (B, 1, H, W) to [0, 1]."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
    return ((flat - lo) / (hi - lo + eps)).reshape_as(maps)
