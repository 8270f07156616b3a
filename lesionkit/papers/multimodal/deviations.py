"""Where the multimodal notebook departs from the Eye-for-AI code (methods-b §C) and the 1st-place code it builds on
(§A): one line each, beside the config field that chooses (rendered by ``papers.deviations.show_deviations``).

The paper's text gives no recipe beyond the code, so the code decides what "the paper's" is (the spec is read from
the code); a default that is neither says why in its line.
"""
from __future__ import annotations

from lesionkit.papers.deviations import Deviation

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Data", "The paper trains on Kaggle's \"melanoma-external-malignant-256\" (nroman: ISIC 2020 at 256 px "
              "plus extra malignant images from ISIC 2018/2019, with train.csv in the ISIC 2020 columns); the default "
              "here is the embedded synthetic set, so that the notebook runs offline. Point `data_dir` at that "
              "folder to train on the paper's data.", "data_dir", "synthetic", "neither"),
    Deviation("Missing sex and age", "Filled with the modal sex and median age (§C.3), learnt from the training "
              "rows only and applied to every split; the code fills train.csv from all of its rows before its 80/20 "
              "split, so its held-out 20 % also shapes the fill values (and Kaggle's test.csv from its own rows). "
              "`first_place` keeps the 1st place's constants (sex -1, age 0).",
              "meta_missing", "impute", "code", option="first_place"),
    Deviation("Schedule stepping", "The warm-up and cosine are stepped once per epoch, as the code steps its "
              "scheduler: epoch 1 at lr/10, epoch 2 at lr, the last epoch above 0. Smoke runs step every batch, so "
              "that their one epoch is not trained entirely at lr/10; `batch` (lesionkit's earlier default) moves "
              "the rate every batch, rising smoothly through epoch 1 and reaching 0 at the end.",
              "schedule_stepping", "epoch", "code", option="batch"),
    Deviation("Augmentation library", "albumentations 2.x instead of 0.4.6: RandomBrightness / RandomContrast → two "
              "RandomBrightnessContrast; ShiftScaleRotate → Affine (same ranges, black border); Cutout → "
              "CoarseDropout with one 0.375·S hole; GaussNoise variance 5-30 → the equivalent std range. "
              "ElasticTransform(alpha=3) is re-implemented as 0.4.6 had it (sigma 50, a random affine warp of up to "
              "50 px per control point before the elastic field, reflected borders); "
              "`first_place_train(elastic=\"albumentations2\")` is 2.x's plain field. The other transforms take "
              "2.x's implementations with the spec's arguments; their random draws differ from 0.4.6's."),
    Deviation("ImageNet weights", "timm's `tf_efficientnet_b2.aa_in1k`, the closest to `efficientnet_pytorch`'s B2 "
              "(UNVERIFIED that they are the same checkpoint). `backbone_drop_rate=0.3` (timm's dropout on the "
              "pooled features) and `drop_path_rate=0.2` stand in for `efficientnet_pytorch`'s built-in dropout and "
              "drop-connect.", "backbone", "tf_efficientnet_b2.aa_in1k", "neither"),
    Deviation("Split", "Grouped by lesion and patient, so no patient is on both sides; `image` is the code's "
              "stratified 80/20 by image (random_state 42 there, `seed` here), whose 20 % both selects the epoch and "
              "is reported.", "split_by", "patient", "neither", option="image"),
    Deviation("Acquisition features", "The 1st place's `n_images` (images per patient) is off: it describes how "
              "often a patient was photographed, not the patient (`use_n_images`).",
              "use_n_images", False, "neither", option=True),
    Deviation("JPEG size feature", "The 1st place's `image_size` (ln of the JPEG's bytes) is off: it depends on "
              "the encoder (`use_image_size`).", "use_image_size", False, "neither", option=True),
    Deviation("Test-time views", "8-view flip/transpose TTA with averaged softmax (the 1st place's); the "
              "multimodal code has no test script.", "tta", True, "neither", option=False),
    Deviation("Seed", "The run's `seed` seeds splits, sampling and initialisation (the code: 0 for its "
              "initialisation, 42 for its split).", "seed", 0, "code"),
)

__all__ = ["DEVIATIONS"]
