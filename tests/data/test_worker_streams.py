"""Augmentation streams with loader workers: every preset draws afresh each epoch and in each worker, and the same
seed repeats a run exactly (fastai's own transforms get torch's per-epoch worker seed; lesionkit's must follow it)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from fastai.data.core import Pipeline
from fastai.data.transforms import IntToFloatTensor

from lesionkit.data import load_dataset
from lesionkit.data.augment import album_nodes, first_place_train
from lesionkit.data.loaders import image_dls
from lesionkit.data.views import patch_dls
from lesionkit.engine.seed import seed_everything

torch.set_num_threads(1)
LOADERS = {preset: (image_dls, {"size": 32, "preset": preset}) for preset in ("fastai", "first_place", "arl", "dihedral")}
LOADERS["patch_grid"] = (patch_dls, {"grid": "2x2+c", "patch": 16, "full": (24, 32)})
ITEM_STREAMS = {"first_place", "arl", "patch_grid"}  # lesionkit's own streams, in the workers' item stage


@pytest.fixture(scope="module")
def one_image(synthetic_dir):
    """Eight training rows of one image (and two validation rows): the same item at every position, so what differs
    between the two workers' batches is their random draws."""
    ds = load_dataset(synthetic_dir)
    return ds.subset([0] * 8 + [1, 2])


def two_epochs(ds, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images of epochs 1 and 2 (2 batches of 4: batch 0 from worker 0, batch 1 from worker 1). Where
    lesionkit's own streams act in the item stage, the batch stage's random flips (drawn in the main process) are
    left out, so they cannot hide a repeat."""
    make, opts = LOADERS[name]
    seed_everything(0)
    dls = make(ds, np.arange(8), [8, 9], bs=4, seed=0, num_workers=2, norm=None, shuffle=False, verify=False,
               leak_check=False, **opts)
    if name in ITEM_STREAMS:
        dls.train.after_batch = Pipeline([IntToFloatTensor()])
    return tuple(torch.cat([b[0].as_subclass(torch.Tensor) for b in dls.train]) for _ in range(2))


def changed(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of images that differ anywhere."""
    return (a != b).flatten(1).any(1).float().mean().item()


@pytest.mark.parametrize("name", list(LOADERS))
def test_workers_draw_afresh_each_epoch_and_repeat_with_the_seed(one_image, name: str) -> None:
    e1, e2 = two_epochs(one_image, name)
    assert changed(e1, e2) >= 0.75, "epoch 2 replays epoch 1's augmentations"
    assert changed(e1[:4], e1[4:]) >= 0.75, "worker 1 replays worker 0's augmentations of the same item"
    r1, r2 = two_epochs(one_image, name)
    assert torch.equal(e1, r1) and torch.equal(e2, r2), "the same seed and workers did not repeat the run"


def test_each_albumentations_step_has_its_own_stream() -> None:
    """albumentations 2.x seeds every step with the Compose's seed: the three flips then fire together."""
    firsts = [node.py_random.random() for node in album_nodes(first_place_train(32, seed=3))]
    assert len(set(firsts)) == len(firsts)
    again = [node.py_random.random() for node in album_nodes(first_place_train(32, seed=3))]
    assert again == firsts
