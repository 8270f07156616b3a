"""Where the arl notebook departs from ARL-CNN (Zhang et al., TMI 2019) or its unofficial code (Vipermdl/ARL,
methods-a §2), one line each, beside the config field that chooses (rendered by the notebook; checked against
`ARLConfig` by tests/papers/test_deviations.py).

Rule for defaults: the paper where it is known; where only the code is known (its augmentation and views: the spec's
checklist, methods-a §4, prescribes them), the code's. Selection is the one exception, on the spec's own advice.
"""
from __future__ import annotations

from lesionkit.papers.deviations import Deviation

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Attention", "`variant=\"paper\"` (spatial softmax per channel, learnable α from 0.001) is the paper's "
              "block as we read it (unverified against the PDF); `variant=\"code\"` is the repository's softmax "
              "across channels with a fixed α = 0.001.", "variant", "paper", "paper", option="code"),
    Deviation("Training augmentation", "After the crop, the code's horizontal and vertical flips (p = 0.5 each) and a "
              "rotation of up to ±10° with black corners, on the batch (fastai, bilinear; torchvision 0.2's "
              "RandomRotation resamples nearest-neighbour). The paper's own augmentation is not in the spec, which "
              "prescribes the code's. `augment=\"arl_dihedral\"` (lesionkit's earlier default) uses fastai's Dihedral "
              "instead, which adds 90° turns and transposes, with reflection padding; `augment=\"fastai\"` is "
              "fastai's aug_transforms without the crops.", "augment", "arl", "code", option="arl_dihedral"),
    Deviation("Crops", "Crops are drawn anew every epoch (the code reuses its 61 fixed files every epoch), and the "
              "scale is drawn per visit (the whole image 1 time in 61, each scale equally often on average; the code "
              "has exactly 15 per scale)."),
    Deviation("Crop orientation", "The crop keeps the intended H × W orientation; the code swaps height and width "
              "(`image.size` is (W, H))."),
    Deviation("Validation views", "Every epoch validates on the 9 test views of each validation image, logits "
              "averaged, as the code; their crops are fixed per image here (seeded by the image), the code draws new "
              "ones every epoch. `valid_views=\"one\"` (lesionkit's earlier default) validates on one resized view.",
              "valid_views", "multiscale", "code", option="one"),
    Deviation("Model selection", "The best epoch by validation AUC, as the spec advises (methods-a §2.7: the code's "
              "rule, accuracy at 0.5 with unweighted BCE, gave sensitivity 0.49); `monitor=\"accuracy\"` is the "
              "code's rule (accuracy of the mean logit's sigmoid at `threshold`).", "monitor", "auc", "neither",
              option="accuracy"),
    Deviation("LR steps", "The LR halves in place at 30/60/90 % of training; the code re-created the SGD optimizer "
              "there, which also reset its momentum."),
    Deviation("ImageNet weights", "timm's ResNet (for depth 50 `resnet50.a1_in1k`, the A1 recipe), not the "
              "torchvision weights of 2019 the code loaded."),
    Deviation("Test views", "The 9 test views cut their crops in the original's pixels too, but from the loader's "
              "reduced decode (at least 2 × `image_size`), so a 0.2 view has fewer source pixels than the code's "
              "full-resolution crop."),
    Deviation("Split", "ISIC 2017's official train/valid/test parts where the data has them (`split=\"official\"`), "
              "else a grouped split with a warning; neither the code nor this notebook adds the paper's ~1320 extra "
              "ISIC-archive images."),
    Deviation("Seeds", "The run's `seed` (the code: 6666 for numpy, torch and random; the test and validation views "
              "use 6666 + seed)."),
)

__all__ = ["DEVIATIONS"]
