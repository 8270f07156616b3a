"""Where the patch_attention notebook departs from Gessert et al. (TBME 2019) or its released code (ngessert/
patch-lesion, methods-a §1), one line each, beside the config field that chooses (rendered by the notebook; checked
against `PatchAttentionConfig` by tests/papers/test_deviations.py).

Rule for defaults: the paper where it says; the code where only the code is known (its weights, its loss).
"""
from __future__ import annotations

from lesionkit.papers.deviations import Deviation

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Attention placement", "PatchSE after every backbone stage with reduction 16, from the paper's "
              "description; not in any commit of the released code, not checked against the PDF. "
              "`variant=\"code\"` is exact.", "variant", "paper", "paper", option="code"),
    Deviation("Baseline", "The abstract's +7% is \"over previous methods\" / \"other patch-based methods\"; the spec "
              "does not say which model that is. Ours is the code's own patch model with the attention off, trained "
              "with the headline weighting (the dx factor when it is on); with `dx_weighting=\"off\"` it is the "
              "shipped cfgs' loss (class weights only)."),
    Deviation("Diagnosis factor", "Applied to every class, what the code ran (its stale-key bug); "
              "`dx_only_class=\"nv\"` is the reading of its comment (\"only for nevus\").", "dx_only_class", "",
              "code", option="nv"),
    Deviation("Diagnosis types", "d comes from HAM10000's `dx_type` codes or, for an ISIC 2018 Task 3 download, "
              "from its LesionGroupings `diagnosis_confirm_type` strings (histopathology 4, confocal microscopy 3, "
              "serial imaging 2, single image expert consensus 1). An image without a type gets d = 1 (consensus); "
              "the code's factor list falls out of step instead (methods-a §1.7 point 7)."),
    Deviation("Loss scale", "Both weighting modes use the batch mean of d·w·CE (the code's options 6/7); the code's "
              "plain option 5 is PyTorch's weighted mean, normalised by Σ w. Weighting is thus the only difference "
              "between the modes."),
    Deviation("Augmentation", "As the code (utils.py), on the training split only: the whole image is flipped "
              "horizontally and vertically (p = 0.5 each), its brightness scaled by U(1 − 32/255, 1 + 32/255) and "
              "its saturation by U(0.5, 1.5) (ColorJitter(brightness=32/255, saturation=0.5)), then cut; patch "
              "dropout zeroes patch slots inside the model. The two jitters run in a fixed order (ColorJitter "
              "shuffles it), and the code's `full_color_distort` extras (contrast 0.5, hue 0.2) are not applied."),
    Deviation("ImageNet weights", "`pretrained=true` loads timm's copy of the torchvision weights the code's "
              "backbones loaded (`densenet121.tv_in1k` for the derm7pt cfg's DenseNet121; InceptionV3's timm "
              "default is torchvision's already). `weights=\"timm\"` takes timm's default tag instead "
              "(`densenet121.ra_in1k`, trained with timm's own recipe; lesionkit's earlier choice). Backbones "
              "without a torchvision copy in timm (e.g. the demo's tf_efficientnet_lite0) load timm's default either "
              "way.", "weights", "torchvision", "code", option="timm"),
    Deviation("Geometry", "Every image is resized to 450×600 (scaled by `image_size`/224) before cutting; the code "
              "uses the 600×450 HAM originals as they are and crops only the top-left 450×600 of larger derm7pt "
              "images."),
    Deviation("Split", "The code's `indices_tbe.pkl` (3 fixed folds + a 2511-image test set) is not shipped; "
              "lesion-grouped folds and a grouped test set (`test_frac=0.25`) from `seed` replace it where the data "
              "has no official parts. On derm7pt the code selects its checkpoint on the test set; here selection is "
              "always on validation lesions."),
    Deviation("Selection", "Validation is scored every epoch (the code: every 5 epochs and at epoch 1)."),
    Deviation("F1", "`f1_weighted` is sklearn's orientation; the code's swapped one is `f1_weighted_code` (both "
              "reported)."),
    Deviation("Smoke and demo runs", "They use small backbones, 32–48-px patches and a few epochs; their numbers say "
              "nothing about the paper's."),
)

__all__ = ["DEVIATIONS"]
