"""Each loss against a value computed by hand on a tiny batch, and each one driving a fastai Learner."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lesionkit.losses import (DiagnosisGuidedCrossEntropy, DiceRankLoss, FocalLoss, LDAMLoss, LMFLoss,
                              MultiHeadCrossEntropy, balanced_class_weights, class_weights, dx_type_factors,
                              inverse_frequency_weights, ldam_margins)

torch.set_num_threads(1)
LN2, LN3 = math.log(2), math.log(3)


def close(value: torch.Tensor, expected: float) -> None:
    assert float(value) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_inverse_frequency_and_balanced_weights() -> None:
    labels = [0, 0, 0, 1]
    torch.testing.assert_close(inverse_frequency_weights(labels, 2), torch.tensor([4 / 3, 4.0]))
    torch.testing.assert_close(inverse_frequency_weights(labels, 2, normalise=True), torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(inverse_frequency_weights(labels, 2, power=0.5), torch.tensor([4 / 3, 4.0]).sqrt())
    torch.testing.assert_close(balanced_class_weights(labels, 2), torch.tensor([2 / 3, 2.0]))
    assert class_weights(labels, 2, "none") is None
    with pytest.raises(ValueError, match=r"class\(es\) \[2\]"):
        inverse_frequency_weights(labels, 3)


def test_going_smaller_normalised_weights() -> None:
    counts = [867, 3320, 2837, 239, 628, 253, 5090, 18000, 30000]
    labels = np.repeat(np.arange(9), counts)
    expected = [.0976, .0255, .0298, .3539, .1347, .3344, .0166, .0047, .0028]
    np.testing.assert_allclose(inverse_frequency_weights(labels, 9, normalise=True).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(LMFLoss(counts).weight.numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(ldam_margins(counts, 0.8).numpy(),
                               [.580, .414, .431, .800, .628, .789, .372, .272, .239], atol=1e-3)


def test_dx_type_factors() -> None:
    kinds = ["histo", "confocal", "follow_up", "consensus"]
    torch.testing.assert_close(dx_type_factors(kinds), torch.tensor([4.0, 3.0, 2.0, 1.0]))
    torch.testing.assert_close(dx_type_factors(kinds, labels=[1, 0, 1, 0], only_class=1),
                               torch.tensor([4.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="row 1"):
        dx_type_factors(["histo", "biopsy"])


def test_diagnosis_guided_cross_entropy() -> None:
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0]])  # CE = ln 2 and -ln(1/4) = 2 ln 2
    target = torch.tensor([0, 1])
    loss = DiagnosisGuidedCrossEntropy(weight=torch.tensor([1.0, 2.0]))
    close(loss(logits, target, torch.tensor([4.0, 1.0])), (4 * 1 * LN2 + 1 * 2 * 2 * LN2) / 2)
    close(DiagnosisGuidedCrossEntropy()(logits, target), (LN2 + 2 * LN2) / 2)


def test_focal_loss() -> None:
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0]])  # p_t = 1/2 and 3/4
    target = torch.tensor([0, 0])
    expected = (0.25 * LN2 + 0.0625 * math.log(4 / 3)) / 2
    close(FocalLoss(gamma=2.0)(logits, target), expected)
    close(FocalLoss(gamma=2.0, weight=torch.tensor([2.0, 1.0]))(logits, target), 2 * expected)
    close(FocalLoss(gamma=0.0)(logits, target), (LN2 + math.log(4 / 3)) / 2)  # γ = 0 is cross-entropy


def test_ldam_loss() -> None:
    loss = LDAMLoss([16, 1], max_m=0.5, s=2.0)  # n^-1/4 = 1/2, 1 -> margins 0.25, 0.5
    torch.testing.assert_close(loss.margins, torch.tensor([0.25, 0.5]))
    logits = torch.zeros(2, 2)
    target = torch.tensor([1, 0])
    close(loss(logits, target), (math.log(1 + math.e) + math.log(1 + math.exp(0.5))) / 2)


def test_lmf_loss() -> None:
    loss = LMFLoss([16, 1])  # α = β = 0.2, γ = 2, max_m = 0.8, s = 10
    logits = torch.zeros(2, 2)
    target = torch.tensor([0, 1])
    focal = 0.25 * LN2  # weighted CE over two ln 2 terms is ln 2; (1 - e^-ln2)^2 = 1/4
    ldam = (math.log(1 + math.exp(4)) + math.log(1 + math.exp(8))) / 2  # margins 0.4, 0.8 times s = 10
    close(loss(logits, target), 0.2 * focal + 0.2 * ldam)


def test_dice_rank_loss() -> None:
    p_fg = torch.tensor([[0.75, 0.5], [0.25, 0.5]])
    logits = torch.stack([torch.zeros(2, 2), torch.log(p_fg / (1 - p_fg))]).unsqueeze(0)  # (1, 2, 2, 2)
    mask = torch.tensor([[[1, 0], [0, 0]]])
    dice_fg = 2 * 0.75 / (2.0 + 1 + 1e-5)
    dice_bg = 2 * 1.75 / (2.0 + 3 + 1e-5)
    rank = 0.05  # hard negatives 0.5, 0.5 vs the one positive 0.75: max(0, 0.5 - 0.75 + 0.3) each
    close(DiceRankLoss(k=2)(logits, mask), 0.5 * ((1 - dice_bg) + (1 - dice_fg)) + 0.05 * rank)
    close(DiceRankLoss(k=2, lam=0.0)(logits, 255 * mask.unsqueeze(1)), 0.5 * ((1 - dice_bg) + (1 - dice_fg)))


def test_multi_head_cross_entropy() -> None:
    close(MultiHeadCrossEntropy()(torch.zeros(1, 2, 2), torch.tensor([[0, 1]])), 2 * LN2)
    with pytest.raises(ValueError, match="expected pred"):
        MultiHeadCrossEntropy()(torch.zeros(1, 2, 2), torch.tensor([0, 1]))


def _fit_one_epoch(loss_func, x, ys, model) -> float:
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner

    items = list(zip(x, *ys))
    dls = DataLoaders(DataLoader(items, bs=4, shuffle=True), DataLoader(items, bs=4))
    dls.n_inp = 1
    learn = Learner(dls, model, loss_func=loss_func, cbs=[])
    with learn.no_logging():
        learn.fit(1, lr=1e-2)
    return float(learn.recorder.losses[-1])


@pytest.mark.parametrize("loss_func", [FocalLoss(), LDAMLoss([6, 2]), LMFLoss([6, 2]),
                                       DiagnosisGuidedCrossEntropy(torch.tensor([1.0, 3.0]))],
                         ids=["focal", "ldam", "lmf", "diagnosis"])
def test_classification_losses_train_a_fastai_learner(loss_func) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    y = torch.tensor([0, 0, 0, 1, 0, 0, 1, 0])
    ys = [y, dx_type_factors(["histo", "consensus"] * 4)] if isinstance(loss_func, DiagnosisGuidedCrossEntropy) else [y]
    assert math.isfinite(_fit_one_epoch(loss_func, x, ys, torch.nn.Linear(5, 2)))
    probs = loss_func.activation(torch.zeros(1, 2))
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5]]))


def test_segmentation_and_multihead_losses_train_a_fastai_learner() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 8, 8)
    masks = (torch.rand(8, 8, 8) > 0.5).long()
    assert math.isfinite(_fit_one_epoch(DiceRankLoss(), x, [masks], torch.nn.Conv2d(3, 2, 1)))
    heads = torch.randint(0, 2, (8, 3))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 6), torch.nn.Unflatten(1, (3, 2)))
    assert math.isfinite(_fit_one_epoch(MultiHeadCrossEntropy(), x, [heads], model))
