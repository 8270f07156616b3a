"""Patch grids and test-time views: shapes, order, determinism, and that TTA averages per image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lesionkit.data import load_dataset
from lesionkit.data.splits import grouped_holdout
from lesionkit.data.views import grid_boxes, patch_dls, tta_dl

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ds(synthetic_dir):
    return load_dataset(synthetic_dir)


def test_grid_boxes_match_the_papers_layout():
    assert grid_boxes("2x2+c") == [(0, 0), (0, 376), (226, 0), (226, 376), (113, 188)]
    assert grid_boxes("3x3") == [(y, x) for y in (0, 113, 226) for x in (0, 188, 376)]


def test_patch_dls_ordered_patches(ds):
    tr, va = grouped_holdout(ds.df, 0.25, seed=0)
    dls = patch_dls(ds, tr, va, grid="3x3", patch=32, full=(48, 64), bs=3)
    x, y = dls.valid.one_batch()
    assert x.shape == (3, 9, 3, 32, 32) and dls.n_patches == 9 and 0 <= x.min() and x.max() <= 1
    # the patches are crops of the resized image at the grid positions, in order
    from PIL import Image
    img = np.asarray(Image.open(ds.df.path.iloc[va[0]]).convert("RGB").resize((64, 48), Image.BILINEAR))
    y0, x0 = grid_boxes("3x3", (48, 64), 32)[5]
    expect = torch.from_numpy(img[y0:y0 + 32, x0:x0 + 32]).permute(2, 0, 1).float() / 255
    assert torch.allclose(x[0, 5].cpu(), expect, atol=2 / 255)
    drop = patch_dls(ds, tr, va, grid="2x2+c", patch=32, full=(48, 64), bs=8, patch_dropout=0.5, seed=0)
    xt = drop.train.one_batch()[0]
    zeroed = (xt.flatten(2).amax(-1) == 0)
    assert xt.shape[1] == 5 and 0 < zeroed.float().mean() < 1
    assert not (drop.valid.one_batch()[0].flatten(2).amax(-1) == 0).any()      # no dropout at validation


@pytest.mark.parametrize("views,n", [("multicrop", 9), ("multiscale", 9)])
def test_tta_dl_shapes_and_determinism(ds, views, n):
    dl = tta_dl(ds, np.arange(4), size=32, views=views, bs=2)
    x, y = dl.one_batch()
    assert x.shape == (2, n, 3, 32, 32) and y.tolist() == ds.df.label_idx.iloc[:2].tolist()
    again = tta_dl(ds, np.arange(4), size=32, views=views, bs=2).one_batch()[0]
    assert torch.equal(x, again)


def test_stacked_views_are_averaged_by_the_engine(ds):
    from lesionkit.engine import predict

    class MeanColour(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3))                       # 3 "classes" = channel means

    dl = tta_dl(ds, np.arange(5), size=32, views="multicrop", bs=2, norm=None)
    assert dl.stacked_views
    probs, targets = predict(MeanColour(), dl)
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1)
    x = dl.one_batch()[0].as_subclass(torch.Tensor)
    per_view = MeanColour()(x.flatten(0, 1)).softmax(-1).reshape(2, 9, 3).mean(1)
    assert np.allclose(probs[:2], per_view.numpy(), atol=1e-5)
    assert targets.tolist() == ds.df.label_idx.iloc[:5].tolist()


class _Draws(torch.utils.data.Dataset):
    def __init__(self):
        from lesionkit.data.augment import WorkerRNG

        self.rng = WorkerRNG(seed=3)

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.rng.get().random()


def test_worker_rng_differs_between_workers_and_repeats_with_seed():
    def draws():
        torch.manual_seed(0)                       # what seed_everything does for a stage: the workers' seeds
        dl = torch.utils.data.DataLoader(_Draws(), batch_size=1, num_workers=2)
        return [float(x) for x in dl]

    a, b = draws(), draws()
    assert a == b                                  # same seed, same workers -> same draws
    assert a[0] != a[1]                            # worker 0 and worker 1 do not share one sequence
    torch.manual_seed(1)
    assert [float(x) for x in torch.utils.data.DataLoader(_Draws(), batch_size=1, num_workers=2)] != a
