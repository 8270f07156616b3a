"""Grad-CAM++ (Captum has none) and the reduction of a model's native attention maps to one map per image."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from lesionkit.attribution.layers import resolve_layer
from lesionkit.layers.gradcam_pp import grad_cam_plus_plus

Logits = Callable[[torch.Tensor], torch.Tensor]
Picker = Callable[[torch.Tensor, slice], torch.Tensor]


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` (at least 1) covering ``range(n)``: the passes' batches."""
    size = max(1, int(size))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class TargetScore(nn.Module):
    """Each image's target logit as an (N, 1) output, keeping the logits it came from (``last``).

    A CAM method's own forward pass thus also gives the predictions and the predicted class: Grad-CAM costs one
    forward (+ the short backward to its layer) per batch instead of a separate no-grad logits pass plus its own,
    the same maps and targets. ``to_logits`` turns the model's output into (N, n_classes) logits (a multi-head
    model's head); ``pick(logits, chunk)`` is the chunk's target class per image."""

    def __init__(self, net: nn.Module, to_logits: Logits, pick: Picker) -> None:
        super().__init__()
        self.net, self.to_logits, self.pick = net, to_logits, pick
        self.chunk, self.last, self.target = slice(0), torch.empty(0), torch.empty(0, dtype=torch.long)

    def forward(self, x: torch.Tensor, *extra: Any) -> torch.Tensor:
        logits = self.to_logits(self.net(x, *extra))
        self.last = logits.detach().float()
        self.target = self.pick(self.last, self.chunk).to(logits.device)
        return logits.gather(1, self.target.view(-1, 1))


def cam_maps(net: nn.Module, x: torch.Tensor, method: str, meta: torch.Tensor | None, layer: str | nn.Module,
             batch: int, kw: dict[str, Any], to_logits: Logits, pick: Picker, cfg: dict[str, Any]
             ) -> tuple[torch.Tensor, str, torch.Tensor, torch.Tensor]:
    """Grad-CAM (Captum's LayerGradCam) or Grad-CAM++ at ``layer``, upsampled to the input: (maps, layer name,
    logits, targets), one forward pass per ``batch`` images (:class:`TargetScore`); ``cfg`` is the model's timm
    config (patch models' CAMs are unstacked onto the image)."""
    from captum.attr import LayerGradCam

    name, module = resolve_layer(net, layer, example=x if meta is None else None)
    score = TargetScore(net, to_logits, pick)
    size = (x.shape[-2], x.shape[-1])
    maps, logits, targets = [], [], []
    for sl in chunks(len(x), batch):
        score.chunk = sl
        extra = () if meta is None else (meta[sl],)
        zero = torch.zeros(sl.stop - sl.start, dtype=torch.long, device=x.device)
        if method == "gradcam":
            cam = LayerGradCam(score, module).attribute(x[sl], target=0, additional_forward_args=extra or None,
                                                        relu_attributions=True, **kw)
        else:
            cam = grad_cam_pp(score, module, x[sl], zero, extra, form=kw.get("form", "paper"))
        cam = cam.detach().float()
        if cfg.get("n_patches") and name == cfg.get("cam_layer"):
            cam = unstack_patch_cam(cam, cfg, size)
        maps.append(upsample(cam, size))
        logits.append(score.last)
        targets.append(score.target.cpu())
    return torch.cat(maps), name, torch.cat(logits), torch.cat(targets)


def grad_cam_pp(
    model: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    additional_forward_args: tuple[Any, ...] = (),
    form: str = "paper",
) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19) at ``layer``: a ``(N, 1, h, w)`` map, not yet upsampled.

    With A the layer's activations and g = dS/dA for the target logit S, ``alpha = g² / (2g² + (Σ_uv A) · g³)``
    (zero denominators replaced by 1, as SE-LCN does), ``w_k = Σ_uv alpha · ReLU(g)``, ``M = ReLU(Σ_k w_k A_k)``;
    ``form="code"`` takes SE-LCN's code's denominator ``2g² + Σ_uv (A · g³)`` instead (method option ``form``). The
    formula is shared with SE-LCN's in-graph CAM (``lesionkit.layers.gradcam_pp``). SE-LCN's code scales g by
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
    return grad_cam_plus_plus(acts, grads, form)


def native_map(
    maps: dict[str, torch.Tensor],
    key: str | None,
    model_name: str,
    cfg: dict[str, Any] | None = None,
    image_hw: tuple[int, int] | None = None,
) -> tuple[str, torch.Tensor]:
    """Pick one of ``model.attention_maps(x)`` and bring it to ``(N, 1, h, w)``: channel maps are averaged, and a
    patch model's per-patch gates (N, P) are painted over the patches they weight."""
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
    if m.dim() == 2 and cfg is not None and cfg.get("n_patches") == m.shape[1] and image_hw is not None:
        return key, paint_patches(m, cfg, image_hw)  # patch gates (N, P) shown where the patches are
    if m.dim() == 3:
        m = m.unsqueeze(1)
    elif m.dim() == 4 and m.shape[1] != 1:
        m = m.mean(dim=1, keepdim=True)
    elif m.dim() != 4:
        raise ValueError(
            f"attention map {key!r} of {model_name} has shape {tuple(m.shape)}; expected (N, h, w), (N, C, h, w) "
            "or per-patch gates (N, P) of a patch model"
        )
    return key, m


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, 1, h, w)`` -> ``(N, H, W)`` by bilinear interpolation (what Captum's LayerAttribution.interpolate does)."""
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return maps[:, 0]


def _patch_corners(cfg: dict[str, Any], image_hw: tuple[int, int]) -> list[tuple[int, int]]:
    from lesionkit.models.patch_attention import patch_grid  # lazy: only patch-attention models need their grid

    return patch_grid(image_hw, int(cfg["n_patches"]), int(cfg["patch_size"]))


def paint_patches(values: torch.Tensor, cfg: dict[str, Any], image_hw: tuple[int, int]) -> torch.Tensor:
    """Patch-based models: per-patch maps ``(N, P, h, w)`` (or per-patch scalars ``(N, P)``) -> ``(N, 1, H, W)``.

    Each patch's map is resized to the patch and placed where the model cut it from the image (its ``patch_grid``);
    pixels covered by several patches take the mean, pixels no patch covers stay 0.
    """
    n, p = values.shape[:2]
    size = int(cfg["patch_size"])
    if values.dim() == 2:
        values = values[:, :, None, None].expand(n, p, size, size)
    elif tuple(values.shape[-2:]) != (size, size):
        values = F.interpolate(values, size=(size, size), mode="bilinear", align_corners=False)
    canvas = values.new_zeros(n, 1, *image_hw)
    count = values.new_zeros(1, 1, *image_hw)
    for k, (top, left) in enumerate(_patch_corners(cfg, image_hw)):
        canvas[:, 0, top : top + size, left : left + size] += values[:, k]
        count[:, 0, top : top + size, left : left + size] += 1
    return canvas / count.clamp(min=1)


def unstack_patch_cam(cam: torch.Tensor, cfg: dict[str, Any], image_hw: tuple[int, int]) -> torch.Tensor:
    """A CAM at a patch model's ``patch_stack`` layer is (N, 1, P·h, w): the P patch maps stacked along the height.
    Upsampling it as one picture would smear patches over each other, so it is unstacked and painted instead."""
    n, _, ph, w = cam.shape
    p = int(cfg["n_patches"])
    return paint_patches(cam.reshape(n, p, ph // p, w), cfg, image_hw)
