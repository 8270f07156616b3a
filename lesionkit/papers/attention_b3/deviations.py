"""Where the attention_b3 notebook departs from "Going Smaller" and its code (methods-b §B): one line each, beside
the config field that chooses (rendered by ``papers.deviations.show_deviations``).

The paper's text was not retrievable for the spec, which is read from the code; the code (and External-Attention-
pytorch, whose modules its class names match) therefore decides what "the paper's" is. A default that is neither
says why in its line.
"""
from __future__ import annotations

from lesionkit.papers.deviations import Deviation

DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("Attention modules", "The code's `SA_models_multi.py` was never published; the modules follow "
              "External-Attention-pytorch, whose defaults the code most likely imported (SGE β initialised to 0, "
              "CBAM kernel 49); `module_papers` takes the modules' own papers (SGE β 1, CBAM kernel 7).",
              "variant", "paper", "code", option="module_papers"),
    Deviation("Spatial-attention init", "The spatial convs of Spatial-B3 and of all seven CBAMs of S2-CBAM-B3 start "
              "from PyTorch's default init, as External-Attention's modules do (its `CBAMBlock.init_weights` is never "
              "called); `zeros` starts their weights at zero (a uniform gate), which lesionkit used before because "
              "in a 5-epoch Lite0 demo the default-initialised gate saturated and Spatial-B3 stayed at chance. The "
              "spec names no init, so the originals' is the default; parameter counts are the same.",
              "spatial_init", "pytorch", "code", option="zeros"),
    Deviation("Plain B3 baseline", "The plain `tf_efficientnet_b3` with a Linear head (`effb3_baseline`, the code's "
              "`Effnet_Melanoma` without metadata, §B.4) trains beside the four attention models, so the headline "
              "\"attention vs plain B3\" needs no extra parameter; the paper's ProveAI table (§B.10) has no plain-B3 "
              "row, and the notebook prints the ISIC 2020 winners' ProveAI rows instead.",
              "models", "sge_b3,spatial_b3,s2mlp_b3,s2cbam_b3,effb3_baseline", "neither",
              option="sge_b3,spatial_b3,s2mlp_b3,s2cbam_b3"),
    Deviation("Schedule stepping", "The warmup and cosine are stepped once per epoch, as the code steps its scheduler "
              "(with its epoch-2 double step): epoch 1 runs at lr/10 (3e-5), epoch 2 at lr (3e-4), the last epoch "
              "above 0. Smoke runs step every batch, so that their one epoch is not trained entirely at lr/10; "
              "`batch` (lesionkit's earlier default) moves the rate every batch and reaches 0 at the end.",
              "schedule_stepping", "epoch", "code", option="batch"),
    Deviation("Validation views", "Validation is on clean, resized images; the code validates on 10 flip views of "
              "augmented images (`transforms_val = transforms_train`): `train_augment` gives one augmented view per "
              "image and epoch. Test time uses the 8 distinct flip/transpose views; the code's 10 repeat two of them "
              "(so they count twice in its mean).", "validation", "clean", "neither", option="train_augment"),
    Deviation("Dark-corner-removed images", "`dca=True` in the code reads them from an unpublished absolute path; "
              "they are not used: the images in `data_dir` are read as they are."),
    Deviation("Class counts of LMF", "They come from the training rows; the code hard-codes [867, 3320, 2837, 239, "
              "628, 253, 5090, 18000, 30000] (its nevus and unknown counts are not the data's)."),
    Deviation("Held-out test rows", "`test_frac` of `data_dir` is held out even when `test_dir` is given (the "
              "lead's `split`); the code trains its folds on all of ISIC 2019 + 2020.", "test_frac", 0.2, "neither"),
    Deviation("Official ISIC layouts", "They carry no tfrecord: their 2020 duplicates "
              "(`ISIC_2020_Training_Duplicates.csv`) are not dropped and they have no `fold` column; 2019 rows "
              "without a fold (official 2019 beside Deotte's 2020) are always training rows."),
    Deviation("Augmentation library", "The 1st place's albumentations list (the code's) runs on albumentations 2.x, "
              "ported as in the multimodal notebook: RandomBrightnessContrast for RandomBrightness / RandomContrast, "
              "Affine for ShiftScaleRotate, CoarseDropout for Cutout, 0.4.6's ElasticTransform re-implemented; the "
              "random draws differ from 0.4.6's. `fastai` trains with fastai's aug_transforms instead.",
              "augment", "first_place", "code", option="fastai"),
    Deviation("ImageNet weights", "`tf_efficientnet_b3.aa_in1k` is what geffnet's `tf_efficientnet_b3` (which the "
              "code loads with `--pretrained`; its default trains from scratch) became in timm; timm's untagged `tf_efficientnet_b3` would load the Noisy Student ones "
              "(`ns_jft_in1k`, trained with extra JFT images).", "backbone", "tf_efficientnet_b3.aa_in1k", "code"),
    Deviation("External labels", "`test_dir` is scored as `positive` vs rest (the paper's binary truth); the code's "
              "9-class relabelling of ProveAI (atypical melanocytic proliferation → NV) and its 20 offline TTA "
              "copies per lesion are not reproduced (their recipe is unpublished). The code's 8-class option "
              "(`--out-dim 8`, no unknown) is not offered."),
    Deviation("Precision and bootstrap", "torch autocast (`speedups`) replaces apex O1; the bootstrap of "
              "specificity is seeded (`seed`), the code's is not."),
    Deviation("Smoke", "A smoke run trains one fold of Lite0 at 64 px for 1 epoch on about 80 images."),
)

__all__ = ["DEVIATIONS"]
