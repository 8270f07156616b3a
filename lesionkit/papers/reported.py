"""The papers' reported numbers, each labelled with the data and scale it was measured on, and the comparison table
every notebook ends with.

Why a module: the anchors are scattered over the specs (methods-a §1.6, §2.6, §3.6; methods-b §A.10, §B.10, §C.7) and
mix verified values (recomputed from the repos' shipped prediction files), code-repo values and values remembered
from the papers. Each entry keeps that provenance (`source`, `verified`) so a table never shows an unverified number
as if it were checked, and so a synthetic 64-px run is never read as a failed reproduction of an ISIC-scale result.

Metric names are lesionkit's report keys (``binary_report`` / ``multiclass_report`` / segmentation and CAM scores), so
a run's ``ours`` dict can be passed straight in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lesionkit.viz.table import FixedTable

TABLE_COLUMNS = ("metric", "ours", "reported", "reported_std", "reported_on", "ours_on", "model", "source",
                 "verified")


@dataclass(frozen=True)
class Reported:
    """One published number: `metric` uses lesionkit's key; `model` names the paper's row (e.g. "SGE-B3")."""

    metric: str
    value: float
    reported_on: str
    source: str
    model: str
    verified: bool = True
    std: float = float("nan")


# --- methods-a §1.6: Gessert et al. (patch attention + diagnosis-guided loss weighting) -----------------------------
# Only the paper's own numbers: the two gains of its abstract. Its per-architecture tables (HAM10000 / derm7pt,
# weighted F1, mean sensitivity, AUC, with/without attention) are not in the spec (§1.6: "take them from the PDF"),
# so they are not listed; the related ISIC 2018/2019 challenge entries (other papers) are not this paper's numbers.
_HAM_ABSTRACT = ("HAM10000 (InceptionV3, 5 patches) / derm7pt (DenseNet121, 9 patches) of 224 px from 450x600, "
                 "ImageNet init; TBME 2019 abstract: gain in mean sensitivity, read as percentage points")
_PATCH = [
    Reported("balanced_accuracy_gain_patch_attention", 0.07, _HAM_ABSTRACT,
             "methods-a §1.6, abstract: patch-based attention \"outperforms previous methods and improves the mean "
             "sensitivity by 7%\"", "patch attention"),
    Reported("balanced_accuracy_gain_dx_weighting", 0.03, _HAM_ABSTRACT,
             "methods-a §1.6, abstract: diagnosis-guided loss weighting improves the mean sensitivity by 3% over "
             "normal loss balancing", "patch attention"),
]

# --- methods-a §2.6: ARL-CNN (ISIC 2017 Part 3, melanoma vs rest) ---------------------------------------------------
_ISIC17 = "ISIC 2017 test (600 images, 117 melanomas), 224 px"
_ISIC17_REPO = "ISIC 2017 test (600 images, 117 melanomas), 224 px, 9-view TTA, threshold 0.5"


def _arl_rows(model: str, vals: tuple[float, float, float, float], on: str, source: str,
              verified: bool) -> list[Reported]:
    return [Reported(k, v, on, source, model, verified) for k, v in
            zip(("auc", "accuracy", "sensitivity", "specificity"), vals)]


_ARL = (
    _arl_rows("ARL-CNN50", (0.875, 0.850, 0.658, 0.896), _ISIC17,
              "methods-a §2.6, paper as quoted by a third-party README [paper?]", False)
    + _arl_rows("ResNet-50", (0.857, 0.838, 0.632, 0.888), _ISIC17,
                "methods-a §2.6, paper baseline as quoted by a third-party README [paper?]", False)
    + _arl_rows("ARL-CNN50 (Vipermdl code)", (0.8729, 0.850, 0.4872, 0.9379), _ISIC17_REPO,
                "methods-a §2.6, Vipermdl/ARL result.txt", True)
    + _arl_rows("ResNet-50 (Vipermdl code)", (0.8657, 0.865, 0.5726, 0.9358), _ISIC17_REPO,
                "methods-a §2.6, Vipermdl/ARL result.txt", True)
    + [Reported("params", 23.5e6, "ResNet-50 layout with a 1-unit head", "methods-a §2.1 (README 2.35e7)",
                "ARL-CNN50")]
)

# --- methods-b §B.10: "Going Smaller" attention EfficientNet-B3 models ----------------------------------------------
_PROVE = "ProveAI (603 lesions, 95 melanomas), 384 px, 20 offline copies x 10 views x folds; trained on ISIC 2019+2020"
_B10 = "methods-b §B.10, recomputed from the shipped prediction CSVs"
_B_ROWS = {  # auc, ap, f1_weighted, accuracy, spec_at_sens95 (point), spec_at_sens95 bootstrap (seed 0)
    "SGE-B3": (0.815, 0.537, 0.837, 0.869, 0.146, 0.211),
    "S2-CBAM-B3": (0.809, 0.536, 0.827, 0.866, 0.148, 0.223),
    "S2-MLP-B3": (0.799, 0.522, 0.821, 0.861, 0.219, 0.204),
    "Spatial-B3": (0.794, 0.498, 0.822, 0.859, 0.116, 0.157),
}
_B_PARAMS = {"SGE-B3": 10_710_161.0, "S2-MLP-B3": 10_710_065.0 + 431_520.0,
             "S2-CBAM-B3": 10_710_065.0 + 493_861.0, "Spatial-B3": 10_710_065.0 + 588.0}
_B_KEYS = ("auc", "ap", "f1_weighted", "accuracy", "spec_at_sens95", "spec_at_sens95_bootstrap")
_ATTN_B3 = [Reported(k, v, _PROVE, _B10, model) for model, vals in _B_ROWS.items() for k, v in zip(_B_KEYS, vals)]
_ATTN_B3 += [Reported("params", n, "tf_efficientnet_b3 + modules, 9-class head",
                      "methods-b §B.2/B.3, computed from the module formulas (assumed External-Attention defaults)",
                      model, verified=model == "SGE-B3") for model, n in _B_PARAMS.items()]

# --- methods-b §A.10: SIIM-ISIC 2020 1st place (the multimodal notebook's anchor; C itself reports nothing, §C.7) ---
_FIRST = [
    Reported("auc", 0.9600, "ISIC 2020+2019, 5-fold patient-grouped CV, 18-model ensemble, 384-896 px",
             "methods-b §A.10, arXiv 2010.05351 abstract", "1st place ensemble (CV)"),
    Reported("auc", 0.9490, "ISIC 2020 private leaderboard, 18-model ensemble, 384-896 px",
             "methods-b §A.10, arXiv 2010.05351 abstract", "1st place ensemble (private LB)"),
] + [Reported(k, v, _PROVE.replace("384 px", "B's preprocessing"), _B10, "1st place ensemble (ProveAI)")
     for k, v in zip(_B_KEYS, (0.844, 0.596, 0.836, 0.869, 0.376, 0.379))]

# The ISIC 2020 winners on ProveAI as "Going Smaller" scored them (its own preprocessing for every winner, §B.10-B.11):
# what the attention_b3 notebook prints beside its models. Point specificity before the bootstrap one (seed 0).
_WINNERS_ON = ("ProveAI (603 lesions, 95 melanomas), B's preprocessing (Resize + ImageNet Normalize) for every "
               "winner's models, their own TTA and rank-mean ensemble")
ISIC2020_WINNERS_PROVEAI = [r for r in _FIRST if r.model == "1st place ensemble (ProveAI)"] + [
    Reported(k, v, _WINNERS_ON, _B10, model)
    for model, vals in {"2nd place ensemble (ProveAI)": (0.787, 0.454, 0.668, 0.617, 0.209, 0.248),
                        "3rd place ensemble (ProveAI)": (0.699, 0.350, 0.641, 0.585, 0.087, 0.184)}.items()
    for k, v in zip(_B_KEYS, vals)]

# --- methods-a §3.6: SE-LCN (HAM10000 test, 1999 images; numbers inflated by lesion leakage, §3.7) ------------------
_SELCN_ON = "HAM10000 image-level test split (1999 images, lesion leakage), 256 px, mean±std over 4 fold models"
_SELCN_SRC = "methods-a §3.6, computed from predictions/test_set/*.csv"
_SELCN = []
for _model, (_bacc, _bstd, _acc, _astd, _f1, _kappa) in {
    "SE-LCN (none_lae)": (0.824, 0.005, 0.844, 0.009, 0.792, 0.716),
    "SE-LCN (none_none)": (0.823, 0.012, 0.845, 0.004, 0.785, 0.716),
    "EfficientNet-B4 (standalone)": (0.815, 0.012, 0.846, 0.005, 0.779, 0.716),
}.items():
    _SELCN += [Reported("balanced_accuracy", _bacc, _SELCN_ON, _SELCN_SRC, _model, std=_bstd),
               Reported("accuracy", _acc, _SELCN_ON, _SELCN_SRC, _model, std=_astd),
               Reported("f1_macro", _f1, _SELCN_ON, _SELCN_SRC, _model),
               Reported("kappa", _kappa, _SELCN_ON, _SELCN_SRC, _model)]
_SELCN += [Reported(k, v, "ISIC/HAM segmentation validation split, 256 px (read off the training-curve figure)",
                    "methods-a §3.6, plots/Segmentation_Deeplab_2", "DeepLabV3+ segmentation", verified=False)
           for k, v in (("jaccard", 0.855), ("dice", 0.90))]

REPORTED: dict[str, list[Reported]] = {
    "patch_attention": _PATCH,
    "arl": _ARL,
    "attention_b3": _ATTN_B3,
    "first_place": _FIRST,
    "multimodal": _FIRST,
    "se_lcn": _SELCN,
}
"""Paper key → its reported numbers. "multimodal" (methods-b §C) publishes none (§C.7), so it is compared with the
1st-place anchors it builds on (§A.10), each labelled as such."""

HEADLINE: dict[str, str] = {
    "patch_attention": "patch attention", "arl": "ARL-CNN50", "attention_b3": "SGE-B3",
    "first_place": "1st place ensemble (CV)", "multimodal": "1st place ensemble (CV)", "se_lcn": "SE-LCN (none_lae)",
}
"""The row each paper calls its main result; `comparison_table(model=None)` shows every row of the paper."""


def reported(paper: str, model: str | None = None) -> list[Reported]:
    """The reported numbers of `paper` (optionally only the row `model`); unknown names raise with the valid ones."""
    if paper not in REPORTED:
        raise KeyError(f"unknown paper {paper!r}; choose one of {sorted(REPORTED)}")
    rows = REPORTED[paper]
    if model is not None:
        models = list(dict.fromkeys(r.model for r in rows))
        if model not in models:
            raise KeyError(f"paper {paper!r} reports no model {model!r}; its models are {models}")
        rows = [r for r in rows if r.model == model]
    return list(rows)


def _scalar(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def comparison_table(paper: str, ours: dict[str, float], data_label: str, model: str | None = None,
                     model_keys: dict[str, str] | None = None, include_unreported: bool = True) -> pd.DataFrame:
    """This run's numbers beside the paper's, one row per reported number.

    ours: metric key → value (our report keys). A key "<model>/<metric>" (e.g. "SGE-B3/auc", or with `model_keys`
      mapping paper model names to our prefixes, "sge_b3/auc") is matched to that paper row first; a bare "<metric>"
      key is matched to every row of that metric, so a single-model run compares against each reported row.
    data_label: what our run was measured on (e.g. "synthetic 64 px, 2 folds"): the `ours_on` column.
    model: restrict to one paper row (see ``REPORTED``); None shows all rows of the paper.
    include_unreported: also list our scalar metrics that the paper does not report (reported = NaN).

    Columns: metric, ours, reported, reported_std, reported_on, ours_on, model, source, verified. Shown with fixed
    decimals (``viz.table.FixedTable``).
    """
    rows = reported(paper, model)
    prefix = model_keys or {}
    out, used = [], set()
    for r in rows:
        keys = [f"{prefix.get(r.model, r.model)}/{r.metric}", r.metric]
        key = next((k for k in keys if k in ours), None)
        if key is not None:
            used.add(key)
        rec = asdict(r)
        out.append({"metric": r.metric, "ours": _scalar(ours[key]) if key is not None else float("nan"),
                    "reported": r.value, "reported_std": r.std, "reported_on": r.reported_on, "ours_on": data_label,
                    "model": r.model, "source": r.source, "verified": rec["verified"]})
    if include_unreported:
        for k, v in ours.items():
            if k not in used and np.isfinite(_scalar(v)):
                name, _, metric = k.rpartition("/")
                out.append({"metric": metric, "ours": _scalar(v), "reported": float("nan"),
                            "reported_std": float("nan"), "reported_on": "not reported", "ours_on": data_label,
                            "model": name, "source": "", "verified": True})
    return FixedTable(out, columns=list(TABLE_COLUMNS))


__all__ = ["HEADLINE", "REPORTED", "Reported", "TABLE_COLUMNS", "comparison_table", "reported"]
