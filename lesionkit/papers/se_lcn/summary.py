"""SE-LCN beside its paper (methods-a §3.6): the headline's three classifiers (the standalone baseline as published,
SE-LCN with its CAM, the zero-CAM control) each beside the paper row it reproduces, and the run's summary."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from lesionkit.engine import fold_means
from lesionkit.papers.common import record_summary
from lesionkit.papers.se_lcn.stages import CLASSIFIERS

if TYPE_CHECKING:
    from lesionkit.papers.se_lcn.recipe import SELCNConfig
    from lesionkit.records.runs import Run

METRICS = ("balanced_accuracy", "accuracy", "f1_macro", "kappa", "auc_macro")  # the paper's four, and AUC


def pick(report: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: report[k] for k in keys if k in report}


# The three rows the headline compares, each beside the paper row it reproduces (the zero-CAM control has none).
HEADLINE_ROWS = {"baseline": "EfficientNet-B4 (standalone)", "with_cam": "SE-LCN ({input})", "without_cam": None}


def headline_table(means: dict[str, dict[str, float]], cfg: SELCNConfig) -> pd.DataFrame:
    """One row per trained classifier in the order baseline (as published), SE-LCN (with CAM), zero-CAM control:
    its fold-mean scores beside the paper's for the row it reproduces (NaN where the paper has none)."""
    from lesionkit.papers.reported import reported  # lazy

    paper = {(r.model, r.metric): r.value for r in reported(cfg.paper)}
    rows = []
    for key, row in HEADLINE_ROWS.items():
        if CLASSIFIERS[key] not in means:
            continue
        name = row.format(input=f"{cfg.classifier_input}_{cfg.cam_source}") if row else None
        ours = means[CLASSIFIERS[key]]
        rows.append({"model": CLASSIFIERS[key], "paper_row": name or "(not in the paper)",
                     **{m: ours.get(m, float("nan")) for m in METRICS[:4]},
                     **{f"{m} (paper)": paper.get((name, m), float("nan")) for m in METRICS[:4]}})
    return pd.DataFrame(rows)


def summarize(seg: dict[str, float], folds: pd.DataFrame, cam_summary: pd.DataFrame, cfg: SELCNConfig,
              cls_ds: Any, seg_ds: Any, run: Run, segmenter_ds: Any = None) -> dict[str, Any]:
    """This run (fold means of the per-fold rows `folds`) beside SE-LCN's numbers (methods-a §3.6), each row labelled
    with the data it was measured on (comparison.csv); the headline's three rows (:func:`headline_table`,
    headline.csv); and the headline numbers the demo prints (the "summary")."""
    means = fold_means(folds)
    ours = {f"seg/{k}": float(seg[k]) for k in ("dice", "jaccard")}
    ours.update({f"{key}/{k}": v for key, label in CLASSIFIERS.items() if label in means
                 for k, v in pick(means[label], METRICS[:4]).items()})  # the reported four
    ours.update({f"symmetry_cam/{c.removesuffix('_mean')}": float(cam_summary[c].iloc[0])
                 for c in ("pointing_game_mean", "iou_mean", "overlap_mean") if c in cam_summary.columns})
    keys = {f"SE-LCN ({cfg.classifier_input}_{cfg.cam_source})": cfg.headline,
            "EfficientNet-B4 (standalone)": "baseline", "DeepLabV3+ segmentation": "seg"}
    sd = seg_ds if segmenter_ds is None else segmenter_ds
    label = (f"classifier: {cls_ds.name} ({len(cls_ds)} images), symmetry: {seg_ds.name} ({len(seg_ds)}), segmenter: "
             f"{sd.name} ({len(sd)}), hair removal {'on' if cfg.hair_removal else 'off'}, {cfg.image_size} px, "
             f"{cfg.classifier_backbone}, {cfg.epochs} epochs, {cfg.folds} fold model(s)")
    summary = {"bacc_cam": ours[f"{cfg.headline}/balanced_accuracy"], "bacc_no_cam": ours["without_cam/balanced_accuracy"],
               "dice": ours["seg/dice"]}
    if "baseline/balanced_accuracy" in ours:
        summary["bacc_baseline"] = ours["baseline/balanced_accuracy"]
    if "symmetry_cam/pointing_game" in ours:
        summary["pointing_game"] = ours["symmetry_cam/pointing_game"]
    headline = headline_table(means, cfg)
    run.save_table(headline, "headline.csv")
    return {**record_summary(run, cfg, summary, ours, label, model_keys=keys), "headline": headline}


__all__ = ["HEADLINE_ROWS", "METRICS", "headline_table", "pick", "summarize"]
