"""Map scores against lesion masks (SE-LCN's pointing game / dilated IoU / overlap, mass inside) and faithfulness."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from lesionkit.attribution.scores import (
    SCORES,
    best_iou,
    deletion_insertion,
    dilate_mask,
    iou_dilated,
    mask_scores,
    mass_inside,
    overlap,
    pointing_game,
    score_maps,
    summarize_scores,
)


@pytest.fixture(scope="module")
def synthetic_masks(synthetic_dir: Path) -> tuple[list[str], np.ndarray]:
    df = pd.read_csv(synthetic_dir / "labels.csv")
    masks = np.stack([np.asarray(Image.open(synthetic_dir / f)) > 127 for f in df.mask_filename])
    keep = masks.reshape(len(masks), -1).any(axis=1)
    assert keep.mean() > 0.9, "the synthetic set should draw a lesion in (almost) every image"
    return list(df.image_id[keep]), masks[keep]


def test_the_mask_itself_scores_pointing_game_one(synthetic_masks: tuple[list[str], np.ndarray]) -> None:
    ids, masks = synthetic_masks
    df = score_maps(masks.astype(float), masks * 255, ids, model="oracle", method="mask")
    assert len(df) == len(ids) > 30
    assert df.pointing_game.mean() == 1.0
    assert df.overlap.min() == 1.0 and df.mass_inside.min() == 1.0
    # IoU with the *dilated* mask is |G| / |G_dil|: below one by construction
    expected = [m.sum() / dilate_mask(m).sum() for m in masks]
    np.testing.assert_allclose(df.iou, expected)
    assert df.iou.max() < 1.0


def test_a_random_map_scores_chance(synthetic_masks: tuple[list[str], np.ndarray]) -> None:
    _, masks = synthetic_masks
    rng = np.random.default_rng(0)
    reps = 20
    hits, mass, frac = [], [], []
    for m in masks:
        for _ in range(reps):
            cam = rng.random(m.shape)
            hits.append(pointing_game(cam, m))
            mass.append(mass_inside(cam, m))
            frac.append(m.mean())
    chance = float(np.mean(frac))
    sigma = math.sqrt(chance * (1 - chance) / len(hits))
    assert abs(np.mean(hits) - chance) < 4 * sigma
    assert np.mean(hits) < 0.5 < 1.0  # far from the oracle's 1.0
    assert abs(np.mean(mass) - chance) < 0.01  # mass inside a uniform map = mask area


def test_dilation_follows_se_lcn() -> None:
    m = np.zeros((224, 224), bool)
    m[112, 112] = True
    # k = ceil(0.05 * 224) = 12, two iterations: a single pixel grows to a 23 x 23 square
    assert dilate_mask(m).sum() == 23 * 23
    assert dilate_mask(m, iterations=1).sum() == 12 * 12


def test_iou_and_overlap_match_hand_computation() -> None:
    from sklearn.metrics import jaccard_score

    rng = np.random.default_rng(1)
    mask = np.zeros((64, 64), bool)
    mask[20:40, 10:30] = True
    cam = rng.random((64, 64)) * 3 + 5  # min-max normalised before the 0.5 threshold
    b = (cam - cam.min()) / np.ptp(cam) > 0.5
    g = dilate_mask(mask)
    assert iou_dilated(cam, mask) == pytest.approx(jaccard_score(g.ravel(), b.ravel()))
    assert overlap(cam, mask) == pytest.approx((b & g).sum() / b.sum())


def test_edge_cases_do_not_crash() -> None:
    mask = np.zeros((32, 32), bool)
    mask[8:16, 8:16] = True
    flat = np.ones((32, 32))
    assert pointing_game(flat, mask) is False  # a constant map points nowhere
    assert math.isnan(overlap(flat, mask))  # SE-LCN divides by zero here
    assert iou_dilated(flat, mask) == 0.0
    assert math.isnan(mass_inside(np.zeros((32, 32)), mask))
    empty = np.zeros((32, 32), bool)
    peaked = np.zeros((32, 32))
    peaked[0, 0] = 1
    assert overlap(peaked, empty) == 0.0  # SE-LCN: 0 for an empty mask
    assert pointing_game(peaked, empty) is False
    with pytest.raises(ValueError, match="resize the mask"):
        mask_scores(np.ones((16, 16)), mask)


def test_score_maps_resizes_masks_and_summarizes() -> None:
    big = np.zeros((128, 96), np.uint8)
    big[32:96, 24:72] = 255
    cam = np.zeros((64, 48))
    cam[32, 24] = 1.0
    df = score_maps(np.stack([cam, cam]), [big, big], ["a", "b"], model="m", method="x")
    assert df.pointing_game.tolist() == [1.0, 1.0]
    assert df.mask_fraction.iloc[0] == pytest.approx(0.25, abs=0.02)
    summary = summarize_scores(pd.concat([df, df.assign(method="y", pointing_game=0.0)]))
    assert summary.set_index("method").loc["x", "pointing_game_mean"] == 1.0
    assert summary.set_index("method").loc["y", "pointing_game_mean"] == 0.0
    assert summary.n_images.tolist() == [2, 2]
    with pytest.raises(ValueError, match="2 maps but 1 masks"):
        score_maps(np.stack([cam, cam]), [big])


def test_best_iou_of_the_mask_plus_noise_outside_is_one() -> None:
    rng = np.random.default_rng(2)
    mask = np.zeros((48, 48), bool)
    mask[10:30, 12:36] = True
    noise = rng.random(mask.shape) * 0.3
    cam = np.where(mask, 1.0, noise)
    best, t = best_iou(cam, mask)
    assert best == 1.0
    norm_noise_max = (noise[~mask].max() - cam.min()) / (1.0 - cam.min())
    assert norm_noise_max <= t < norm_noise_max + 0.05 + 1e-9  # the first grid threshold above the noise
    scores = mask_scores(cam, mask)
    assert scores["iou_best"] == 1.0 and scores["iou_best_threshold"] == t
    assert scores["iou"] < 1.0  # the fixed-threshold IoU is against the dilated mask


def test_best_iou_of_a_ramp_matches_hand_computation() -> None:
    # cam[:, j] = j over 20 columns (normalised j / 19); the mask is rows 0-4 x columns 12-19 (40 px) of 10 rows.
    # B at t = the columns j >= c. For c >= 12, n = 20 - c: IoU = 5n / (5n + 40), best at n = 8: 40 / 80 = 0.5;
    # for c < 12: IoU = 40 / 10n <= 4 / 9. c = 12 needs 11/19 <= t < 12/19 (0.579..0.632): on the grid t = 0.60.
    cam = np.tile(np.arange(20, dtype=float), (10, 1))
    mask = np.zeros((10, 20), bool)
    mask[:5, 12:] = True
    best, t = best_iou(cam, mask)
    assert best == pytest.approx(0.5)
    assert t == pytest.approx(0.60)
    # the vectorised search equals a loop over thresholds
    ts = [0.3, 0.5, 0.62, 0.7]
    loop = [((cam / 19 > x) & mask).sum() / ((cam / 19 > x) | mask).sum() for x in ts]
    assert best_iou(cam, mask, ts) == (pytest.approx(max(loop)), ts[int(np.argmax(loop))])
    with pytest.raises(ValueError, match="resize the mask"):
        best_iou(cam, mask[:, :10])


def test_best_iou_of_an_empty_mask_is_nan() -> None:
    cam = np.random.default_rng(3).random((16, 16))
    best, t = best_iou(cam, np.zeros((16, 16), bool))
    assert math.isnan(best) and math.isnan(t)
    scores = mask_scores(cam, np.zeros((16, 16), bool))
    assert math.isnan(scores["iou_best"]) and math.isnan(scores["iou_best_threshold"])


def test_summaries_report_the_best_iou() -> None:
    assert "iou_best" in SCORES
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    df = score_maps(np.stack([mask / 255.0, np.ones((32, 32))]), [mask, mask], ["a", "b"], model="m", method="x")
    assert {"iou_best", "iou_best_threshold"} <= set(df.columns)
    assert df.iou_best.tolist() == [1.0, 0.0]  # a constant map normalises to zeros: empty at every threshold
    summary = summarize_scores(df)
    assert summary.iou_best_mean.iloc[0] == pytest.approx(0.5)
    assert "iou_best_threshold_mean" not in summary.columns


class _RegionModel(nn.Module):
    """Class 1's logit grows with the mean of the top-left 8x8 region; class 0's is fixed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 8 * x[:, :, :8, :8].mean((1, 2, 3)) - 4
        return torch.stack([torch.zeros_like(s), s], dim=1)


def test_deletion_and_insertion_reward_the_faithful_map() -> None:
    x = torch.ones(2, 3, 16, 16)
    good = np.zeros((2, 16, 16), np.float32)
    good[:, :8, :8] = 1
    bad = 1 - good
    curve_good, del_good = deletion_insertion(_RegionModel(), x, good, [1, 1], steps=8)
    _, del_bad = deletion_insertion(_RegionModel(), x, bad, [1, 1], steps=8)
    assert curve_good.shape == (2, 9)
    assert curve_good[0, 0] == pytest.approx(torch.softmax(torch.tensor([0.0, 4.0]), 0)[1].item())
    assert (del_good < del_bad - 0.3).all()
    _, ins_good = deletion_insertion(_RegionModel(), x, good, [1, 1], mode="insertion", baseline="zero", steps=8)
    _, ins_bad = deletion_insertion(_RegionModel(), x, bad, [1, 1], mode="insertion", baseline="zero", steps=8)
    assert (ins_good > ins_bad + 0.3).all()
    with pytest.raises(ValueError, match="mode must be"):
        deletion_insertion(_RegionModel(), x, good, [1, 1], mode="both")


def test_score_comparison_figure(synthetic_masks: tuple[list[str], np.ndarray], tmp_path: Path) -> None:
    from lesionkit.attribution.figures import plot_map_scores, save_figure

    ids, masks = synthetic_masks
    rng = np.random.default_rng(0)
    frames = [score_maps(masks.astype(float), masks, ids, model="oracle", method="mask"),
              score_maps(rng.random(masks.shape), masks, ids, model="random", method="mask")]
    fig = plot_map_scores(pd.concat(frames))
    assert len(fig.axes) == 4
    path = save_figure(fig, tmp_path, "map_scores")
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="lacks column"):
        plot_map_scores(frames[0], scores=("deletion_auc",))
