"""One call for every attribution method: ``attribute(model, images, method, target)``.

Captum supplies IntegratedGradients, NoiseTunnel (SmoothGrad), Occlusion, GradientShap and LayerGradCam; Grad-CAM++
and the models' native attention maps are added here. Every call strips fastai tensor subclasses, runs the model in
eval mode and fp32 with in-place activations off (all restored afterwards), batches through Captum's internal batch
size, passes multimodal metadata along unattributed, and returns maps at the image's resolution.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from lesionkit.attribution.cams import cam_maps, chunks, native_map, upsample
from lesionkit.attribution.inplace import disable_inplace
from lesionkit.attribution.outputs import (
    SelectHead, TwoSided, head_index, logits_of, model_cfg, then_two_sided, two_sided,
)
from lesionkit.engine.speed import choose_for_attribution, formatted

METHODS = ("integrated_gradients", "smoothgrad", "occlusion", "gradient_shap", "gradcam", "gradcam++", "native")
_ALIASES = {
    "ig": "integrated_gradients",
    "integratedgradients": "integrated_gradients",
    "noisetunnel": "smoothgrad",
    "noise_tunnel": "smoothgrad",
    "gradientshap": "gradient_shap",
    "gshap": "gradient_shap",
    "grad_cam": "gradcam",
    "layergradcam": "gradcam",
    "gradcampp": "gradcam++",
    "gradcam_pp": "gradcam++",
    "grad_cam++": "gradcam++",
    "attention": "native",
}
# How a pixel-space attribution (N, C, H, W) becomes one map: magnitude for gradient methods, the output drop for
# occlusion (negative values mean occluding *raised* the score, i.e. not evidence for the class).
_DEFAULT_SIGN = {"integrated_gradients": "absolute", "smoothgrad": "absolute", "gradient_shap": "absolute",
                 "occlusion": "positive"}


@dataclass
class Attribution:
    """Maps ``(N, H, W)`` at image resolution, the images denormalised for display ``(N, H, W, 3)`` in [0, 1],
    the class each map explains, and the model's probabilities for the same inputs."""

    maps: np.ndarray
    images: np.ndarray
    target: np.ndarray
    probs: np.ndarray
    method: str
    layer: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def canonical_method(method: str) -> str:
    key = method.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return key


def as_plain_tensor(x: Any) -> torch.Tensor:
    """fastai ``TensorImage``/``TensorBase`` -> plain ``torch.Tensor`` (fastai#3016, #3072), detached, fp32, 4-D."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"images must be a tensor or array of shape (N, C, H, W), got {type(x).__name__}")
    x = x.as_subclass(torch.Tensor).detach()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    return x.float()


def denormalize(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    """Undo input normalisation for display; without statistics each image is min-max scaled instead."""
    x = x.detach().float().cpu()
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
        img = x * s + m
    else:
        lo = x.amin(dim=(1, 2, 3), keepdim=True)
        hi = x.amax(dim=(1, 2, 3), keepdim=True)
        img = (x - lo) / (hi - lo).clamp(min=1e-8)
    img = img.clamp(0, 1)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    return img[:, :3].permute(0, 2, 3, 1).numpy()


@contextmanager
def attribution_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode, fp32, no autocast, in-place activations off, gradients on; the model's state is restored after.

    A model held in half/bfloat16 is attributed through an fp32 copy, so the caller's model is never converted.
    """
    params = [p for p in model.parameters() if p.is_floating_point()]
    if any(p.dtype != torch.float32 for p in params):
        warnings.warn("attribution runs in fp32: using a float32 copy of the model", stacklevel=3)
        model = copy.deepcopy(model).float()
    was_training = model.training
    device_type = params[0].device.type if params else "cpu"
    model.eval()
    try:
        with disable_inplace(model), torch.autocast(device_type, enabled=False), torch.enable_grad():
            yield model
    finally:
        model.train(was_training)


GRADIENT_METHODS = ("integrated_gradients", "smoothgrad", "gradient_shap", "gradcam", "gradcam++")
CAM_METHODS = ("gradcam", "gradcam++")


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch and numpy (Captum's GradientShap draws from ``np.random``) and restore both global states."""
    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


def _resolve_target(target: Any, n: int, logits: torch.Tensor) -> torch.Tensor:
    if target is None:
        return torch.zeros(n, dtype=torch.long) if logits.shape[1] == 1 else logits.argmax(1).cpu()
    t = torch.as_tensor(np.asarray(target), dtype=torch.long).flatten()
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries for {n} images; pass one class index or one per image")
    if int(t.min()) < 0 or int(t.max()) >= logits.shape[1]:
        raise ValueError(f"target {t.tolist()} out of range for a model with {logits.shape[1]} outputs")
    return t


def _probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def _reduce(attr: torch.Tensor, sign: str) -> torch.Tensor:
    if sign == "absolute":
        return attr.abs().sum(1)
    if sign == "positive":
        return attr.sum(1).clamp(min=0)
    if sign == "all":
        return attr.sum(1)
    raise ValueError(f"sign must be 'absolute', 'positive' or 'all', got {sign!r}")


def _extra(meta: torch.Tensor | None, sl: slice | None = None) -> tuple[Any, ...] | None:
    if meta is None:
        return None
    return (meta if sl is None else meta[sl],)


def attribute(
    model: nn.Module,
    images: Any,
    method: str,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    meta: Any = None,
    layer: str | nn.Module = "auto",
    internal_batch_size: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    sign: str | None = None,
    seed: int = 0,
    head: int | str | None = None,
    speedups: str = "auto",
    binary_as_two: bool = False,
    **kw: Any,
) -> Attribution:
    """Attribute ``model``'s output for class ``target`` to the pixels of ``images`` (N, C, H, W).

    Args:
        model: any classifier returning (N, n_classes) logits; multimodal models take ``forward(image, meta)``.
        images: the *normalised* model input; fastai ``TensorImage`` is fine. A single (C, H, W) image is allowed.
        method: one of ``METHODS`` ("integrated_gradients"/"ig", "smoothgrad", "occlusion", "gradient_shap",
            "gradcam", "gradcam++", "native").
        target: class to explain, one for all or one per image; None = the predicted class.
        meta: metadata tensor (N, n_meta) for multimodal models; passed along, never attributed.
        layer: CAM layer for "gradcam"/"gradcam++" ("auto" = ``default_cfg["cam_layer"]`` or the last feature map).
        internal_batch_size: images per forward pass, counting every IG step, noise sample or occlusion
            perturbation of every image (bounds memory: Captum multiplies the batch by these).
        mean, std: input normalisation to undo for display; default from the model's timm config.
        sign: how pixel methods reduce channels: "absolute" (default for gradients), "positive" (occlusion), "all".
        seed: seeds the noise of SmoothGrad and GradientShap, so maps are reproducible.
        head: for multi-head models returning (N, n_heads, n_classes), the head (index or name) to explain.
        speedups: precision/memory format of the passes (``lesionkit.engine.speed``): "auto" keeps the fastest of
            channels-last / bf16 whose input gradients stay within 10 % of fp32 (measured once per model, weights
            and input shape) for the gradient methods, fp32 for occlusion and native maps; "off" is exact fp32.
        binary_as_two: explain a one-logit (binary) model as two classes (:func:`two_sided`): target 0 is the rest,
            1 the positive class, and ``probs`` has both columns.
        **kw: method options: ``n_steps``/``baselines`` (IG), ``nt_samples``/``stdevs``/``base`` (SmoothGrad),
            ``window``/``stride``/``baselines`` (Occlusion), ``n_samples``/``stdevs`` (GradientShap), ``key`` (native),
            ``form`` (Grad-CAM++'s denominator, ``lesionkit.layers.gradcam_pp``).
    """
    method = canonical_method(method)
    x = as_plain_tensor(images)
    n_meta = int(getattr(model, "n_meta", 0) or 0)
    if n_meta and meta is None:
        raise ValueError(f"{type(model).__name__} is multimodal (n_meta={n_meta}): pass meta=<tensor (N, {n_meta})>")
    cfg = model_cfg(model)
    if mean is None and std is None and "mean" in cfg and "std" in cfg:
        mean, std = cfg["mean"], cfg["std"]
    display = denormalize(x, mean, std)
    with attribution_mode(model) as net:
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        x = x.to(device)
        meta_t = None if meta is None else as_plain_tensor_meta(meta, len(x)).to(device)
        if speedups == "auto" and method not in GRADIENT_METHODS:  # the fidelity check is on input gradients
            speedups = "off"
        speed = choose_for_attribution(net, [x, *(_extra(meta_t) or ())], speedups)
        with formatted(net, speed), speed.autocast(device.type):  # the logits pass too
            if method in CAM_METHODS:  # their own forward gives the logits: one pass
                to_logits = partial(logits_of, net, head)
                if binary_as_two:
                    to_logits = partial(then_two_sided, to_logits)
                maps, layer_name, logits, tgt = cam_maps(
                    net, x, method, meta_t, layer, internal_batch_size, kw, to_logits,
                    lambda lg, sl: _resolve_target(target, len(x), lg)[sl] if target is not None else
                    _resolve_target(None, len(lg), lg), model_cfg(net))
                info: dict[str, Any] = {}
            else:
                with torch.no_grad():
                    logits = net(x, *(_extra(meta_t) or ())).float()
                head_idx = head_index(net, head, tuple(logits.shape))
                fwd = net if head_idx is None else SelectHead(net, head_idx)
                logits = logits_of(net, head, logits)
                if binary_as_two:
                    logits, fwd = two_sided(logits), TwoSided(fwd)
                tgt = _resolve_target(target, len(x), logits)
                with _seeded(seed, device):
                    maps, layer_name, info = _run(net, fwd, x, method, tgt.to(device), meta_t, internal_batch_size,
                                                  sign, kw)
        info = {**info, "speedups": speed.name}
    return Attribution(
        maps=maps.detach().float().cpu().numpy(),
        images=display,
        target=tgt.numpy(),
        probs=_probs(logits).detach().float().cpu().numpy(),
        method=method,
        layer=layer_name,
        info=info,
    )


def as_plain_tensor_meta(meta: Any, n: int) -> torch.Tensor:
    """Metadata (N, n_meta) as a plain fp32 tensor, one row per image."""
    m = torch.as_tensor(np.asarray(meta)) if not isinstance(meta, torch.Tensor) else meta
    m = m.as_subclass(torch.Tensor).detach().float()
    if m.dim() == 1:
        m = m.unsqueeze(0)
    if len(m) != n:
        raise ValueError(f"meta has {len(m)} rows for {n} images; pass one metadata row per image")
    return m


def _run(
    net: nn.Module,
    fwd: nn.Module,
    x: torch.Tensor,
    method: str,
    tgt: torch.Tensor,
    meta: torch.Tensor | None,
    ibs: int,
    sign: str | None,
    kw: dict[str, Any],
) -> tuple[torch.Tensor, str | None, dict[str, Any]]:
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Occlusion, Saliency

    size = (x.shape[-2], x.shape[-1])
    cfg = model_cfg(net)
    sign = sign or _DEFAULT_SIGN.get(method, "positive")
    info: dict[str, Any] = {}
    if method == "integrated_gradients":
        n_steps = int(kw.pop("n_steps", 50))
        attr = IntegratedGradients(fwd).attribute(
            x, baselines=kw.pop("baselines", None), target=tgt, additional_forward_args=_extra(meta),
            n_steps=n_steps, internal_batch_size=max(ibs, 1), **kw)
        info = {"n_steps": n_steps}
        return _reduce(attr, sign), None, info
    if method == "smoothgrad":
        base = kw.pop("base", "saliency")
        nt_samples = int(kw.pop("nt_samples", 10))
        stdevs = float(kw.pop("stdevs", 0.15 * float(x.max() - x.min())))
        algo = Saliency(fwd) if base == "saliency" else IntegratedGradients(fwd)
        if base not in ("saliency", "integrated_gradients"):
            raise ValueError(f"smoothgrad base must be 'saliency' or 'integrated_gradients', got {base!r}")
        extra = {"internal_batch_size": max(ibs, 1)} if base == "integrated_gradients" else {}
        attr = NoiseTunnel(algo).attribute(
            x, nt_type=kw.pop("nt_type", "smoothgrad"), nt_samples=nt_samples, stdevs=stdevs,
            nt_samples_batch_size=max(1, ibs // len(x)), target=tgt, additional_forward_args=_extra(meta), **extra, **kw)
        return _reduce(attr, sign), None, {"nt_samples": nt_samples, "stdevs": stdevs, "base": base}
    if method == "occlusion":
        window = int(kw.pop("window", max(2, round(min(size) / 8))))
        stride = int(kw.pop("stride", max(1, window // 2)))
        c = x.shape[1]
        attr = Occlusion(fwd).attribute(
            x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
            baselines=kw.pop("baselines", 0.0), target=tgt, additional_forward_args=_extra(meta),
            perturbations_per_eval=int(kw.pop("perturbations_per_eval", max(1, ibs // len(x)))), **kw)
        return _reduce(attr, sign) / c, None, {"window": window, "stride": stride}
    if method == "gradient_shap":
        n_samples = int(kw.pop("n_samples", 20))
        stdevs = float(kw.pop("stdevs", 0.0))
        baselines = kw.pop("baselines", None)
        if baselines is None:  # zero image (= the mean colour) and one noise image drawn from the input's own scale
            baselines = torch.cat([torch.zeros_like(x[:1]), torch.randn_like(x[:1]) * x.std()])
        gs = GradientShap(fwd)
        parts = []
        for sl in chunks(len(x), max(1, ibs // n_samples)):
            parts.append(gs.attribute(x[sl], baselines=baselines, target=tgt[sl], n_samples=n_samples,
                                      stdevs=stdevs, additional_forward_args=_extra(meta, sl), **kw))
        return _reduce(torch.cat(parts), sign), None, {"n_samples": n_samples}
    # native attention maps
    fn = getattr(net, "attention_maps", None)
    if fn is None:
        raise ValueError(f"{type(net).__name__} has no attention_maps(); native maps exist only for lesionkit models")
    key = kw.pop("key", None)
    parts = []
    for sl in chunks(len(x), ibs):
        with torch.no_grad():
            maps = fn(x[sl], meta[sl]) if meta is not None else fn(x[sl])
        key, m = native_map(maps, key, type(net).__name__, cfg, size)
        parts.append(upsample(m, size))
    return torch.cat(parts), key, {"key": key}
