"""fastai DataLoaders on the synthetic set: shapes, labels, normalisation, presets, test loaders, pre-flight checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lesionkit.data import load_dataset
from lesionkit.data.augment import IMAGENET_STATS
from lesionkit.data.errors import DataError, GroupLeakError
from lesionkit.data.loaders import image_dls, mask_dls, meta_dls, test_dl
from lesionkit.data.splits import grouped_holdout

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ds(synthetic_dir):
    return load_dataset(synthetic_dir)


@pytest.fixture(scope="module")
def split(ds):
    return grouped_holdout(ds.df, 0.25, group_col=["lesion_id", "patient_id"], seed=0)


def test_image_dls_shapes_labels_and_vocab(ds, split):
    tr, va = split
    dls = image_dls(ds, tr, va, size=40, bs=6, preset="none", norm=None)
    assert list(dls.vocab) == ds.classes and dls.c == ds.n_classes
    x, y = dls.valid.one_batch()
    assert x.shape == (6, 3, 40, 40) and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == ds.df.label_idx.iloc[va[:6]].tolist()      # valid order = valid_idx order
    assert len(dls.train.dataset) == len(tr) and len(dls.valid.dataset) == len(va)


def test_normalisation_uses_given_stats(ds, split):
    tr, va = split
    raw = image_dls(ds, tr, va, size=32, bs=8, preset="none", norm=None).valid.one_batch()[0]
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    normed = image_dls(ds, tr, va, size=32, bs=8, preset="none", norm=(mean, std)).valid.one_batch()[0]
    expect = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(normed.cpu(), expect.cpu(), atol=1e-5)
    assert IMAGENET_STATS[0] == (0.485, 0.456, 0.406)


def test_dihedral_preset_turns_and_flips_train_images_only(ds, split):
    """Each train image comes out as one of its 8 flips / quarter turns (which keep a symmetry label); the
    validation images come out as they are."""
    tr, va = split
    plain = image_dls(ds, tr, va, size=32, bs=8, preset="none", seed=2, norm=None)
    turned = image_dls(ds, tr, va, size=32, bs=8, preset="dihedral", seed=2, norm=None)
    assert torch.allclose(turned.valid.one_batch()[0].cpu(), plain.valid.one_batch()[0].cpu(), atol=1e-4)
    xs = plain.train.new(shuffle=False).one_batch()[0].cpu()     # the same images in the same order
    ys = turned.train.new(shuffle=False).one_batch()[0].cpu()
    changed = 0
    for x, y in zip(xs, ys):
        views = [torch.rot90(v, k, (1, 2)) for v in (x, x.flip(2)) for k in range(4)]
        assert any(torch.allclose(v, y, atol=1e-4) for v in views)
        changed += not torch.allclose(x, y, atol=1e-4)
    assert changed > 0


@pytest.mark.parametrize("preset", ["fastai", "first_place", "arl", "dihedral"])
def test_presets_train_batches_at_size(ds, split, preset):
    tr, va = split
    dls = image_dls(ds, tr, va, size=48, bs=4, preset=preset, seed=1)
    xb, yb = dls.train.one_batch()
    assert xb.shape == (4, 3, 48, 48) and torch.isfinite(xb).all() and yb.shape == (4,)
    assert dls.valid.one_batch()[0].shape == (4, 3, 48, 48)


def test_shuffle_order_follows_seed(ds, split):
    tr, va = split
    order = [image_dls(ds, tr, va, size=32, bs=4, seed=s, preset="none").train.get_idxs() for s in (5, 5, 6)]
    assert order[0] == order[1] and order[0] != order[2]


def test_balanced_sampling_evens_out_classes(ds, split):
    tr, va = split
    dls = image_dls(ds, tr, va, size=32, bs=4, preset="none", balanced=True, seed=0)
    labels = ds.df.label.to_numpy()[tr]
    draws = np.concatenate([labels[dls.train.get_idxs()] for _ in range(30)])
    share = {c: (draws == c).mean() for c in ds.classes}
    natural = {c: (labels == c).mean() for c in ds.classes}
    assert max(share.values()) - min(share.values()) < 0.06
    assert max(natural.values()) - min(natural.values()) > 0.2


def test_test_dl_over_any_rows(ds, split):
    tr, va = split
    dls = image_dls(ds, tr, va, size=32, bs=4, preset="none")
    rows = np.asarray(tr[:5])
    xb, yb = test_dl(dls, ds, rows).one_batch()
    assert xb.shape == (4, 3, 32, 32) and yb.tolist() == ds.df.label_idx.iloc[rows[:4]].tolist()
    x2, y2 = dls.test_dl(ds.df.iloc[rows], with_labels=True).one_batch()      # fastai's own API works too
    assert torch.equal(x2, xb) and torch.equal(y2, yb)
    unlabelled = test_dl(dls, ds, rows, with_labels=False).one_batch()
    assert len(unlabelled) == 1


def test_meta_dls_two_inputs_encoder_fitted_on_train(ds, split):
    tr, va = split
    dls = meta_dls(ds, tr, va, size=32, bs=4, preset="none")
    img, meta, y = dls.one_batch()
    assert img.shape == (4, 3, 32, 32) and meta.shape == (4, dls.n_meta) and dls.n_inp == 2
    assert dls.meta_encoder.sites == sorted(ds.df.site.iloc[tr].dropna().unique())
    tb = test_dl(dls, ds, va[:4]).one_batch()
    assert tb[1].shape == (4, dls.n_meta)
    expect = dls.meta_encoder.transform(ds.df.iloc[va[:4]])
    assert np.allclose(tb[1].cpu().numpy()[:, :2], expect[:, :2])          # sex, age as encoded


def test_show_batch_works_for_every_loader(ds, split):
    import matplotlib

    matplotlib.use("Agg")
    tr, va = split
    for make in (image_dls, meta_dls, mask_dls):
        make(ds, tr, va, size=32, bs=4, preset="none").show_batch(max_n=2)


def test_mask_dls_aligned_binary_masks(ds, split):
    tr, va = split
    dls = mask_dls(ds, tr, va, size=32, bs=4, preset="fastai")
    x, m = dls.train.one_batch()
    assert x.shape == (4, 3, 32, 32) and m.shape == (4, 32, 32) and set(m.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="mask loaders support"):
        mask_dls(ds, tr, va, preset="first_place")


def test_loader_refuses_leaky_or_overlapping_split(ds, split):
    tr, va = split
    with pytest.raises(GroupLeakError, match="lesion_id"):
        same_lesion = np.flatnonzero((ds.df.lesion_id == ds.df.lesion_id.iloc[tr[0]]).to_numpy())
        image_dls(ds, np.setdiff1d(tr, same_lesion[1:]), np.union1d(va, same_lesion[1:]), size=32) \
            if len(same_lesion) > 1 else image_dls(ds, tr, np.union1d(va, tr[:1]), size=32)


def test_loader_preflight_lists_bad_files(synthetic_dir, tmp_path):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(synthetic_dir, root)
    ds = load_dataset(root)
    bad = ds.df.path.iloc[[0, 3]].tolist()
    open(bad[0], "wb").close()                                 # zero bytes
    data = open(bad[1], "rb").read()
    open(bad[1], "wb").write(data[: len(data) // 2])           # truncated
    with pytest.raises(DataError, match="2 problem") as e:
        image_dls(ds, np.arange(0, 20), np.arange(20, 30), size=32, leak_check=False)
    assert bad[0] in str(e.value) and bad[1] in str(e.value)
