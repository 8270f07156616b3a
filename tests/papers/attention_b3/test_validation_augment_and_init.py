"""Going Smaller's validation rule and initialisation: validation on clean images by default, the code's
`transforms_val = transforms_train` (methods-b §B.5, §B.12) as `validation="train_augment"`, test loaders clean in
both; `pretrained=True` with tf_efficientnet_b3 by default, the smoke settings offline (Lite0's installed weights)."""
from __future__ import annotations

import torch

from lesionkit.data.loaders import test_dl
from lesionkit.data.splits import make_splits
from lesionkit.papers.attention_b3 import recipe as b3


def _valid_batch(dls) -> torch.Tensor:
    return next(iter(dls.valid))[0].clone()


def test_validation_clean_by_default_and_the_codes_training_augmentations_as_option(synthetic_dir):
    base = {"data_dir": str(synthetic_dir), "backbone": "tf_efficientnet_lite0", "pretrained": "false",
            "image_size": 64, "batch_size": 8, "augment": "fastai", "speedups": "off"}
    clean_cfg = b3.AttentionB3Config.from_params(base)
    aug_cfg = b3.AttentionB3Config.from_params({**base, "validation": "train_augment"})
    assert b3.AttentionB3Config().validation == "clean"
    ds = b3.load(clean_cfg)
    tr, va = make_splits(ds.df, folds=1, test_frac=0.2, valid_frac=0.2, seed=0).folds[0]
    clean = b3.variant("sge_b3", ds, clean_cfg).dls(tr, va)
    aug = b3.variant("sge_b3", ds, aug_cfg).dls(tr, va)
    c1, c2 = _valid_batch(clean), _valid_batch(clean)
    a1, a2 = _valid_batch(aug), _valid_batch(aug)
    assert torch.equal(c1, c2)                              # clean: the same pixels every epoch
    assert c1.shape == a1.shape
    assert not torch.allclose(a1, c1) and not torch.allclose(a1, a2)   # augmented afresh at every pass
    assert len(aug.valid.dataset) == len(va) and not aug.valid.shuffle
    rows = va[:8]
    t_clean = next(iter(test_dl(clean, ds, rows)))[0]
    t_aug = next(iter(test_dl(aug, ds, rows)))[0]
    assert torch.equal(t_clean, t_aug) and torch.equal(t_clean, c1)  # test rows stay resize-only in both


def test_pretrained_b3_by_default_and_smoke_offline():
    cfg = b3.AttentionB3Config()
    assert cfg.pretrained is True and cfg.backbone == "tf_efficientnet_b3.aa_in1k"
    smoke = b3.AttentionB3Config(smoke=True).effective()
    assert smoke.pretrained is True and smoke.backbone == "tf_efficientnet_lite0"   # weights installed: offline
    assert (cfg.folds, smoke.folds) == (5, 1)                                       # the paper's 5 folds
    torch.manual_seed(0)
    m1 = b3.build_model("sge_b3", smoke, 9)
    torch.manual_seed(1)
    m2 = b3.build_model("sge_b3", smoke, 9)
    stem = "backbone.conv_stem.weight" if "backbone.conv_stem.weight" in m1.state_dict() else "conv_stem.weight"
    assert torch.equal(m1.state_dict()[stem], m2.state_dict()[stem])          # ImageNet weights, not a random init
