"""Where the se_lcn notebook departs from SE-LCN's paper or code (methods-a §3), each beside the field that chooses
it; the notebook renders this list (``papers.deviations.show_deviations``) and a test checks it against the config."""
from __future__ import annotations

from lesionkit.papers.deviations import Deviation

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Data", "SymDerm_v2 (the symmetry set) is not public: the symmetry stage reads PH2's asymmetry (0 vs 1/2, "
                      "the paper's binarisation) or the synthetic set's label. The segmenter trains on the symmetry "
                      "dataset's masks unless `seg_data_dir` points at HAM10000 / ISIC masks as the paper's did. The "
                      "embedded default is the synthetic set.", "seg_data_dir", "", "neither"),
    Deviation("Splits (fixed on purpose)", "Grouped by lesion and patient (`split=\"official\"` uses a dataset's own "
              "parts where it has them) instead of the code's image-level 80/20 and 75/25 splits; the segmenter's and "
              "symmetry net's test sets hold the classifier's test images when the datasets share them."),
    Deviation("Class balance", "Class-balanced sampling of the training rows instead of the offline balanced copy with "
              "mirrored / rotated duplicates (NV down to 2000, the rest \"up\" to ≤ 2000), so no augmented copy of a "
              "training image can land in a validation fold; `balanced=false` trains on the rows as they are.",
              "balanced", True, "neither", option=False),
    Deviation("Hair removal", "Runs on the image as the loaders decode it (originals up to 4 × `image_size` as they "
              "are, so HAM10000's 600×450 at 256 px; larger ones first reduced), cached as PNG. Grey is the usual luma "
              "(the paper's \"grayscale\"); the code reads BGR and converts with RGB2GRAY (red and blue weights "
              "swapped), available as `lesionkit.papers.se_lcn.hair.remove_hair(code_grey=True)`, not as a notebook "
              "parameter.", "hair_removal", True, "paper"),
    Deviation("Segmenter weights", "timm's `xception65` (aligned Xception, the code's 3 entry / 16 middle / exit "
              "blocks; BN and ReLU placement inside the blocks follow timm) with ImageNet weights, head randomly "
              "initialised; the code started all of DeepLabV3+ from a VOC2012-trained checkpoint that is not public.",
              "seg_encoder", "tu-xception65", "neither"),
    Deviation("Segmenter inputs", "Normalised with the mean/std the encoder's timm ImageNet weights were trained with "
              "(0.5/0.5 for `xception65` and smoke's Lite0), as loading those weights requires; the code's own "
              "normalisation belonged to its unpublished VOC checkpoint. `seg_norm=\"imagenet\"` keeps ImageNet's "
              "mean/std, the earlier default.", "seg_norm", "weights", "neither", option="imagenet"),
    Deviation("Segmenter training", "Inputs resized bilinearly (the code: bicubic), with fastai's aug_transforms "
              "(flips, rotation, zoom and warp on image and mask, lighting on the image); the poly decay runs over the actual training (the code's max_it assumes 2000 images)."),
    Deviation("Symmetry net", "SqueezeNet from scratch (no offline ImageNet weights; the paper's started from "
              "ImageNet), its final conv the code's fresh `Conv2d(512, 2, 1)`."),
    Deviation("CAM size", "The CAM is computed on the symmetry net's own input size (`image_size`, 256) and resized to "
              "`cam_size` 224; the code trained at 256 but fed 224 px images to Grad-CAM++.", "cam_size", 224, "code"),
    Deviation("Grad-CAM++ formula", "The symmetry CAMs (the classifier's CAM input and what the pointing game scores) "
              "and the classifier's Grad-CAM++ maps use the Grad-CAM++ paper's α = g² / (2g² + (Σ_uv A)·g³). "
              "SE-LCN's `gradcam/gradcam.py` sums A·g³ over positions, 2g² + Σ_uv(A·g³), and that form produced the "
              "paper's numbers; the paper names the method, not the formula, so the Grad-CAM++ paper's is the "
              "default.", "cam_form", "paper", "paper", option="code"),
    Deviation("Classifier", "timm's `efficientnet_b4` (same topology as torchvision's, timm's ImageNet weights). "
              "Masked / LAE copies are written at `image_size` (the code: 640×450).", "classifier_backbone",
              "efficientnet_b4", "paper"),
    Deviation("Standalone baseline", "Trained beside SE-LCN with its own recipe (the code's train_classifier_cv.py): "
              "the plain EfficientNet with dropout 0.4 before its linear head, torch Adam lr 1e-5 (constant), L2 "
              "weight decay 5e-4, batch 16, 1/count-weighted cross-entropy, patience 10 on validation loss. Its class "
              "weights follow the class indices (the code's landed on the wrong classes, methods-a §3.2) and come "
              "from the training rows, drawn class-balanced as the CAM model's (`balanced`), so rare classes weigh "
              "more than on the code's balanced copy.", "baseline", True, "paper"),
    Deviation("Not rerun / added", "Not rerun: the Optuna searches (their tuned values are the defaults). Added: macro "
              "AUC beside the paper's four metrics, and the all-zero-CAM control trained beside SE-LCN, which "
              "isolates what the map adds (the paper compares against the standalone baseline)."),
)

__all__ = ["DEVIATIONS"]
