"""Multimodal EfficientNet and the artefact classifier: parameter counts, metadata branch, multi-sample dropout."""
from __future__ import annotations

import pytest
import torch

from lesionkit.layers import MetaBranch, MultiSampleDropoutHead
from lesionkit.models.multimodal import ARTEFACT_HEADS, ArtefactClassifier, MultimodalEfficientNet
from lesionkit.models import create_model

torch.set_num_threads(1)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_meta_branch_count_and_order() -> None:
    branch = MetaBranch(14)
    assert n_params(branch) == 74_624
    assert [type(m).__name__ for m in branch] == ["Linear", "BatchNorm1d", "SiLU", "Dropout", "Linear", "BatchNorm1d",
                                                  "SiLU"]
    assert [type(m).__name__ for m in MetaBranch(14, order="act_bn")][:3] == ["Linear", "SiLU", "BatchNorm1d"]


def test_first_place_b3_meta_model_count() -> None:
    model = MultimodalEfficientNet(backbone="tf_efficientnet_b3", num_classes=9, n_meta=14)
    assert n_params(model) == 10_696_232 + 74_624 + (1536 + 128) * 9 + 9


def test_b2_counts_with_and_without_metadata() -> None:
    assert n_params(create_model("multimodal_b2_image")) == 7_700_994 + 1408 * 2 + 2
    assert n_params(create_model("multimodal_b2")) == 7_700_994 + 74_624 + (1408 + 128) * 2 + 2


def test_multi_sample_dropout_head() -> None:
    head = MultiSampleDropoutHead(6, 3, n_samples=5, p=0.5)
    x = torch.randn(4, 6)
    torch.testing.assert_close(head.eval()(x), head.fc(x))
    head.train()
    torch.manual_seed(0)
    out = head(x)
    torch.manual_seed(0)
    manual = torch.stack([head.fc(torch.nn.functional.dropout(x, 0.5, True)) for _ in range(5)]).mean(0)
    torch.testing.assert_close(out, manual)
    assert not torch.allclose(out, head.fc(x))


def test_metadata_is_required_and_checked() -> None:
    model = create_model("multimodal_b2", n_meta=5).eval()
    image = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match="n_meta=5"):
        model(image)
    with pytest.raises(ValueError, match="3 features"):
        model(image, torch.randn(2, 3))
    with torch.no_grad():
        a = model(image, torch.zeros(2, 5))
        b = model(image, torch.ones(2, 5))
    assert not torch.allclose(a, b)  # the metadata reaches the output


def test_backbone_dropout_option_reaches_timm() -> None:
    assert create_model("multimodal_b2", backbone_drop_rate=0.3).backbone.drop_rate == 0.3
    assert create_model("multimodal_b2").backbone.drop_rate == 0.0


def test_artefact_classifier_heads() -> None:
    model: ArtefactClassifier = create_model("artefact_b2").eval()
    assert n_params(model) == 7_700_994 + 6 * (1408 * 2 + 2)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 6, 2)
    named = model.as_dict(logits)
    assert tuple(named) == ARTEFACT_HEADS
    torch.testing.assert_close(named["ruler"], logits[:, 4])
