"""Grad-CAM++ (Captum has none) and the reduction of a model's native attention maps to one map per image."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lesionkit.layers.gradcam_pp import grad_cam_plus_plus


def grad_cam_pp(
    model: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    additional_forward_args: tuple[Any, ...] = (),
) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19) at ``layer``: a ``(N, 1, h, w)`` map, not yet upsampled.

    With A the layer's activations and g = dS/dA for the target logit S, ``alpha = g² / (2g² + Σ_uv A · g³)``
    (zero denominators replaced by 1, as SE-LCN does), ``w_k = Σ_uv alpha · ReLU(g)``, ``M = ReLU(Σ_k w_k A_k)``;
    the formula is shared with SE-LCN's in-graph CAM (``lesionkit.layers.gradcam_pp``). SE-LCN's code scales g by
    exp(S): a positive per-image constant that the per-image normalisation of every score removes.

    The layer output is captured with a forward hook that hands a *clone* downstream (what Captum's layer methods do),
    so later in-place operations cannot corrupt the activations or their gradient.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inp: Any, out: Any) -> Any:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"Grad-CAM++ needs a layer that outputs one tensor, got {type(out).__name__}")
        captured.append(out)
        return out.clone()

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            # the input requires grad so the layer's output is in the graph even when every parameter is frozen
            logits = model(x.detach().requires_grad_(True), *additional_forward_args)
            if not captured:
                raise RuntimeError("the CAM layer was not called during the forward pass; pass another layer=")
            acts = captured[-1]
            score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
    acts, grads = acts.detach(), grads.detach()
    if acts.dim() != 4:
        raise ValueError(f"Grad-CAM++ needs a 4-D (N, C, h, w) layer output, got shape {tuple(acts.shape)}")
    return grad_cam_plus_plus(acts, grads)


def native_map(maps: dict[str, torch.Tensor], key: str | None, model_name: str) -> tuple[str, torch.Tensor]:
    """Pick one of ``model.attention_maps(x)`` and bring it to ``(N, 1, h, w)`` (channel maps are averaged)."""
    if not maps:
        raise ValueError(
            f"{model_name} has no native attention maps (attention_maps() returned an empty dict); "
            "use method='gradcam' or 'gradcam++' instead"
        )
    if key is None:
        key = next(iter(maps))
    elif key not in maps:
        raise KeyError(f"{model_name} has no attention map {key!r}; available: {', '.join(maps)}")
    m = maps[key].detach().float()
    if m.dim() == 3:
        m = m.unsqueeze(1)
    elif m.dim() == 4 and m.shape[1] != 1:
        m = m.mean(dim=1, keepdim=True)
    elif m.dim() != 4:
        raise ValueError(
            f"attention map {key!r} of {model_name} has shape {tuple(m.shape)}; expected (N, h, w) or (N, C, h, w)"
        )
    return key, m


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 1, h, w)`` -> ``(N, H, W)`` by bilinear interpolation (what Captum's LayerAttribution.interpolate does)."""
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return maps[:, 0]
