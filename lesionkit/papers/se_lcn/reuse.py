"""A finished SE-LCN cascade used again on new images: its segmenter and symmetry net read back from the run record,
and the steps the notebook ran on ``test_dir`` (hair removal, predicted masks, LAE inputs, the symmetry net's
Grad-CAM++ maps) run on any dataset, so the classifiers that read (image, CAM) score it as the notebook did.

Used by ``lesionkit.papers.saved`` for an SE-LCN run and for a comparison run's ``se_lcn_cam`` entry.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lesionkit.papers.se_lcn.cams import cached_cams
from lesionkit.papers.se_lcn.hair import hair_free
from lesionkit.papers.se_lcn.lae import masked_inputs, predict_masks
from lesionkit.papers.se_lcn.stages import segmenter_variant, symmetry_variant

# (variants, dataset) -> {variant key: [fold learners with the record's weights]}: SavedRun.models
LoadModels = Callable[[list[Any], Any], dict[str, list[Any]]]


@dataclass
class SavedCascade:
    """The record's segmenter and symmetry net under the SE-LCN config ``cfg`` they trained with; ``cams`` holds
    the maps of every image :meth:`inputs` prepared (what the classifiers' loaders read, by image id)."""

    cfg: Any
    seg_learn: Any
    sym_learn: Any
    work: Path
    cams: dict[str, np.ndarray] = field(default_factory=dict)

    def inputs(self, ds: Any) -> Any:
        """``ds`` as the classifiers read it, its maps added to ``cams`` (:func:`cascade_on`, copies under
        ``work``)."""
        out = Path(tempfile.mkdtemp(prefix="set-", dir=self.work))
        cls_in, cams = cascade_on(ds, self.cfg, self.seg_learn, self.sym_learn, out, out / "cams.npz")
        self.cams.update(cams)
        return cls_in


def cascade_on(ds: Any, cfg: Any, seg_learn: Any, sym_learn: Any, out: Path,
               cams_file: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """What SE-LCN's classifiers read for a new set: hair removed (when the run removed it), the segmenter's masks,
    the symmetry net's Grad-CAM++ maps of the ``cam_source`` inputs (cached in ``cams_file``) and the
    ``classifier_input`` images (copies under ``out``): (classifier dataset, {image_id: map})."""
    ds = hair_free(ds, cfg.image_size) if cfg.hair_removal else ds
    masks = predict_masks(seg_learn, ds)
    cam_in = masked_inputs(ds, masks, cfg.cam_source, cfg.image_size, out, cfg.lae_enlarge)
    cams = cached_cams(sym_learn, cam_in, cfg.cam_size, cams_file)
    return masked_inputs(ds, masks, cfg.classifier_input, cfg.image_size, out, cfg.lae_enlarge), cams


def load_cascade(cfg: Any, load_models: LoadModels, sym_classes: list[str], seg_norm: str) -> SavedCascade:
    """The segmenter ("segmenter" stage) and symmetry net ("symmetry" stage) of a record, rebuilt from ``cfg`` (the
    SE-LCN config they ran under, ImageNet weights off) with their saved weights; their loaders are built on a
    two-image stand-in (never read: predictions use test loaders over the evaluated images). ``seg_norm``: the
    segmenter's input normalisation as its model spec records it (a record from before ``seg_norm`` existed trained
    on ImageNet's mean/std, whatever today's default)."""
    cfg = replace(cfg, seg_norm=seg_norm)
    work = Path(tempfile.mkdtemp(prefix="lesionkit-se_lcn-"))
    seg_ds, sym_ds = _stand_in(work, ["background", "lesion"], masks=True), _stand_in(work, sym_classes, masks=False)
    seg = load_models([segmenter_variant(seg_ds, cfg)], seg_ds)
    sym = load_models([symmetry_variant(sym_ds, cfg)], sym_ds)
    missing = [k for k, found in (("segmenter", seg), ("symmetry", sym)) if k not in found]
    if missing:
        raise FileNotFoundError(f"the record has no weights of its {' and '.join(missing)} (checkpoints/<stage>_final"
                                ".pth or model_<stage>.pth): its classifiers cannot get their CAMs; train it again")
    return SavedCascade(cfg, seg["segmenter"][0], sym["symmetry"][0], work)


def _stand_in(work: Path, classes: list[str], masks: bool) -> Any:
    """Two blank images of two lesions (and blank masks): enough for a recipe to build its loaders."""
    from PIL import Image

    from lesionkit.data.table import CANONICAL_COLUMNS, LesionDataset  # lazy

    image, mask = work / "stand_in.png", work / "stand_in_mask.png"
    Image.new("RGB", (32, 32)).save(image)
    Image.new("L", (32, 32)).save(mask)
    df = pd.DataFrame({"image_id": ["a", "b"], "path": [str(image)] * 2, "label": classes[:2],
                       "label_idx": [0, 1], "lesion_id": ["a", "b"], "patient_id": ["a", "b"],
                       "mask_path": [str(mask) if masks else None] * 2})
    return LesionDataset("stand-in", work, df.reindex(columns=list(CANONICAL_COLUMNS)), list(classes), "binary")


__all__ = ["SavedCascade", "cascade_on", "load_cascade"]
