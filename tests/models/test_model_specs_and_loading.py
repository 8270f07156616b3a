"""create_model records how to rebuild a model; Run.save_model + load_model round-trip it; no import circle."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from lesionkit.models import UnknownModelError, create_model, load_model, model_spec
from lesionkit.records.runs import Run

torch.set_num_threads(1)

PATCH_KW = {"backbone": "resnet10t", "patch_size": 32, "image_size": (64, 64)}


def test_create_model_records_name_and_kwargs() -> None:
    model = create_model("patch_attention", pretrained="false", num_classes=3, drop_rate=None, **PATCH_KW)
    assert model.lesionkit_spec == {"name": "patch_attention",
                                    "kwargs": {"num_classes": 3, "backbone": "resnet10t", "patch_size": 32,
                                               "image_size": [64, 64]}}  # JSON values; pretrained and None left out
    json.dumps(model.lesionkit_spec)
    assert create_model("resnet10t", num_classes=4).lesionkit_spec == {"name": "resnet10t",
                                                                       "kwargs": {"num_classes": 4}}


def test_model_spec_adds_extra_keys_and_follows_reset_classifier() -> None:
    model = create_model("arl_resnet18")
    assert model_spec(model, classes=["benign", "malignant"]) == {
        "name": "arl_resnet18", "kwargs": {"num_classes": 1}, "initialised_from": None,
        "classes": ["benign", "malignant"]}
    model.reset_classifier(3)
    assert model_spec(model)["kwargs"] == {"num_classes": 3}
    assert model.lesionkit_spec["kwargs"] == {}  # the record itself is untouched


def test_model_spec_refuses_modules_without_a_spec() -> None:
    with pytest.raises(ValueError, match="lesionkit_spec"):
        model_spec(nn.Linear(2, 2))
    model = create_model("resnet10t", act_layer=nn.ReLU)  # a class: JSON cannot hold it, the model still builds
    with pytest.raises(ValueError, match="act_layer"):
        model_spec(model)


@pytest.mark.parametrize("name, kwargs", [("arl_resnet18", {"num_classes": 1}), ("resnet18", {"num_classes": 3}),
                                          ("patch_attention", {"num_classes": 2, **PATCH_KW})])
def test_save_then_load_model_round_trip(tmp_path: Path, name: str, kwargs: dict) -> None:
    torch.manual_seed(1)
    model = create_model(name, **kwargs).eval()
    Run(dir=tmp_path, notebook="t").save_model(model, spec=model_spec(model, classes=["a", "b", "c"]))
    torch.manual_seed(2)  # a rebuild starts from other random weights: equal outputs mean the state_dict loaded
    restored = load_model(tmp_path)
    assert type(restored) is type(model) and not restored.training
    assert restored.lesionkit_spec == model.lesionkit_spec
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x), rtol=0, atol=0)


def test_load_model_reads_older_flat_specs(tmp_path: Path) -> None:
    model = create_model("arl_resnet18", num_classes=2).eval()
    run = Run(dir=tmp_path, notebook="t")
    run.save_model(model, name="flat", spec={"name": "arl_resnet18", "classes": ["a", "b"], "norm": "imagenet"})
    restored = load_model(tmp_path, name="flat")  # num_classes from len(classes); "norm" is no constructor argument
    assert restored.num_classes == 2
    torch.testing.assert_close(restored.fc.weight, model.fc.weight)


def test_load_model_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.json"):
        load_model(tmp_path)
    run = Run(dir=tmp_path, notebook="t")
    run.save_model(create_model("resnet10t", num_classes=2), spec={"name": "resnet10t", "kwargs": {"num_classes": 2}})
    (tmp_path / "model.pth").unlink()
    with pytest.raises(FileNotFoundError, match="model.pth"):
        load_model(tmp_path)
    run.save_model(nn.Linear(2, 2), name="odd", spec={"name": "no_such_net", "kwargs": {}})
    with pytest.raises(UnknownModelError, match="odd.json"):
        load_model(tmp_path, name="odd")
    run.save_model(nn.Linear(2, 2), name="nameless", spec={"classes": ["a"]})
    with pytest.raises(ValueError, match="nameless.json"):
        load_model(tmp_path, name="nameless")
    run.save_model(create_model("resnet10t", num_classes=2), name="wrong", spec={"name": "resnet10t",
                                                                                 "kwargs": {"num_classes": 5}})
    with pytest.raises(RuntimeError, match="wrong.pth"):
        load_model(tmp_path, name="wrong")


def test_load_model_is_exported_lazily() -> None:
    import lesionkit

    assert lesionkit.load_model is load_model
    assert lesionkit.create_model is create_model


def test_every_models_submodule_imports_first_without_a_circle() -> None:
    """In a fresh interpreter, each lesionkit.models submodule is imported first, with every lesionkit module
    forgotten before the next one (torch/timm stay loaded: one interpreter start instead of one per module)."""
    package = Path(__file__).resolve().parents[2] / "lesionkit" / "models"
    names = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    assert {"_registry", "_base", "_factory", "pretrained", "arl", "se_lcn"} <= set(names)
    script = "\n".join([
        "import importlib, sys",
        f"for name in {names!r}:",
        "    for key in [k for k in sys.modules if k == 'lesionkit' or k.startswith('lesionkit.')]:",
        "        del sys.modules[key]",
        "    module = importlib.import_module('lesionkit.models.' + name)",
        "    assert sys.modules['lesionkit.models'].list_models(module='arl'), name",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
