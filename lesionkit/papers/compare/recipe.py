"""compare notebook: every paper's idea trained on the same data, split, folds and budget, with tested differences.

Each paper reports its gain against its own baseline on its own data, split and budget. Here one grouped split
(by lesion and patient) and the same folds feed every entry, one recipe trains them (``papers.compare.entries``), and
every difference from the entry's reference is tested with a paired bootstrap over test lesions (DeLong's test for
the melanoma AUC), corrected for the number of comparisons. The entries' attention maps are then scored against
lesion masks (``papers.compare.maps``).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lesionkit.config import ConfigError, param, param_like
from lesionkit.data.metadata import MetaEncoder
from lesionkit.data.splits import group_codes
from lesionkit.engine import run_folds, stage_states
from lesionkit.engine.evaluation import Evaluation, comparable_report, evaluate_models
from lesionkit.metrics.classification import balanced_accuracy
from lesionkit.metrics.paired import compare_to_reference, macro_auc_present, midrank_auc
from lesionkit.papers import common
from lesionkit.papers.common import TrainConfig, load_data, load_external_like, record_summary, save_models
from lesionkit.papers.compare.cascade import lend, train_cascade, with_inputs
from lesionkit.papers.compare.entries import CHANGES, ENTRIES, EntryContext, parse_entries, variant
from lesionkit.papers.patch_attention.recipe import with_dx_factor
from lesionkit.records.runs import Run

ALL_ENTRIES = ",".join(ENTRIES)
TABLE_METRICS = ("bma", "auc_macro", "mel_auc", "mel_ap", "mel_sensitivity", "mel_specificity", "mel_spec_at_sens95")


@dataclass(frozen=True)
class CompareConfig(TrainConfig):
    notebook: ClassVar[str] = "compare"

    smoke: bool = param_like(TrainConfig, "smoke", "tiny run (48 px, 1 epoch, ~140 images, 4 entries) to check the "
                                                   "pipeline")
    entries: str = param(ALL_ENTRIES, "comma-separated entries to train (each one's reference is added when "
                                      "missing): " + ", ".join(ENTRIES))
    backbone: str = param("tf_efficientnet_lite0", "timm EfficientNet every entry but ARL builds on (Lite0's "
                                                   "ImageNet weights ship offline)")
    resnet_depth: int = param(18, "depth of ARL and of its plain ResNet reference", choices=(18, 34, 50))
    pretrained: bool | str = param_like(TrainConfig, "pretrained", "ImageNet init of the EfficientNet entries: true, "
                                                                   "false, or a weight file")
    arl_pretrained: bool | str = param(False, "ImageNet init of ARL and its ResNet reference (both alike; timm's "
                                              "ResNet weights are not installed offline)")
    split: str = param("grouped", "split rule: grouped (by lesion and patient, from seed; the same for every "
                                  "entry) or official (the dataset's own parts)", choices=("official", "grouped"))
    folds: int = param(1, "folds of the non-test rows; every entry trains on each, all tested on the same test set",
                       ge=1, le=20)
    budget: str = param("epochs", "training budget, the same for every entry: epochs, images (images seen, turned "
                                  "into whole epochs) or seconds (wall time per fold, at most `epochs`)",
                        choices=("epochs", "images", "seconds"))
    budget_images: int = param(0, "images seen per entry and fold when budget is images", ge=0)
    budget_seconds: float = param(0.0, "training seconds per entry and fold when budget is seconds", ge=0)
    image_size: int = param(128, "training resolution; patch attention's patches have this size (a multiple of 16 "
                                 "for SE-LCN's segmenter)", ge=32, le=1024)
    epochs: int = param(5, "epochs per entry and fold (the maximum with budget seconds)", ge=1, le=10_000)
    lr: float = param(2e-3, "peak learning rate of the shared AdamW recipe's schedule", ge=1e-7, le=10.0)
    schedule: str = param("one_cycle", "shared learning-rate schedule: one_cycle, flat_cos or constant",
                          choices=("one_cycle", "flat_cos", "constant"))
    balance: str = param("loss", "class imbalance, for every entry: loss (balanced class weights), sampler or none",
                         choices=("loss", "sampler", "none"))
    augment: str = param("fastai", "shared training augmentation preset: fastai, dihedral or none",
                         choices=("fastai", "dihedral", "none"))
    tta: bool = param(True, "average test predictions over flips (not for the CAM entry, whose map would not flip)")
    positive: str = param("auto", "class whose AUC, AP and operating points the table reports: auto (mel or "
                                  "melanoma, else a binary task's positive class) or a class name")
    n_boot: int = param(2000, "bootstrap resamples of the test lesions per comparison (with a correction over m "
                              "comparisons at least 40 m, else the smallest possible p is not significant)", ge=100,
                        le=100_000)
    correction: str = param("holm", "multiple-comparison correction over all comparisons: holm, bonferroni, "
                                    "fdr_bh or none", choices=("holm", "bonferroni", "fdr_bh", "none"))
    map_dir: str = param("", "dataset with lesion masks to score the maps on (e.g. PH2, classes mapped to "
                             "data_dir's); empty: data_dir's test rows when it has masks")
    attribution_methods: str = param("native,gradcam,gradcam++,integrated_gradients",
                                     "maps scored per entry (native only where a model has attention maps)")
    n_maps: int = param(16, "images whose maps are scored per entry (0: no map scores)", ge=0, le=1000)
    map_steps: int = param(10, "deletion / insertion curve steps", ge=2, le=100)
    sym_data_dir: str = param("", "dataset with masks and symmetry labels for the CAM entry's symmetry net (and "
                                  "segmenter); empty: data_dir, which then needs them (e.g. PH2)")
    seg_data_dir: str = param("", "dataset with masks for the CAM entry's segmenter; empty: the symmetry dataset")
    seg_encoder: str = param("tu-tf_efficientnet_lite0", "the CAM entry's DeepLabV3+ encoder")
    cascade_epochs: int = param(0, "epochs of the CAM entry's segmenter and symmetry net (0: epochs)", ge=0)
    sym_epochs: int = param(0, "epochs of the CAM entry's symmetry net (0: cascade_epochs); a SqueezeNet epoch costs "
                               "a fraction of a segmenter epoch, and at its gentle rate it needs more of them", ge=0)
    max_images: int = param(0, "use a class-stratified subset of about this many images (0: all)", ge=0)

    def validate(self) -> None:
        super().validate()
        try:
            keys = parse_entries(self.entries)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if "se_lcn_cam" in keys and self.image_size % 16:
            raise ConfigError(f"image_size={self.image_size}: the se_lcn_cam entry's segmenter needs a multiple of 16")
        if self.budget == "images" and not self.budget_images:
            raise ConfigError("budget=images needs budget_images > 0 (images seen per entry and fold)")
        if self.budget == "seconds" and not self.budget_seconds:
            raise ConfigError("budget=seconds needs budget_seconds > 0 (training seconds per entry and fold)")

    def weights_needed(self) -> dict[str, tuple[str, str]]:
        """The EfficientNet entries' backbone (`pretrained`) and ARL's ResNet (`arl_pretrained`)."""
        needed = super().weights_needed()
        if self.arl_pretrained is True:
            needed[f"resnet{self.resnet_depth}"] = ("arl_pretrained", "resnet_depth")
        return needed

    def effective(self, **overrides: Any) -> "CompareConfig":
        if not self.smoke:
            return self
        small = {"image_size": 48, "epochs": 1, "max_images": self.max_images or 140, "pretrained": False,
                 "entries": "baseline,sge,dx_weighting,metadata", "n_maps": min(self.n_maps, 4), "n_boot": 200,
                 "attribution_methods": "native,gradcam", "map_steps": 4}
        return super().effective(**{**small, **overrides})  # type: ignore[return-value]

    @property
    def entry_keys(self) -> list[str]:
        return parse_entries(self.entries)


def load(cfg: CompareConfig) -> Any:
    """The dataset, with the diagnosis factor column when an entry weights by it; checks that the dataset has what
    every chosen entry needs (dx_type, metadata, masks or a symmetry dataset) before anything trains."""
    ds = load_data(cfg)
    keys, df = cfg.entry_keys, ds.df
    if "dx_weighting" in keys and ("dx_type" not in df or df["dx_type"].isna().all()):
        raise ConfigError(f"entry dx_weighting: {ds.root} has no dx_type column (HAM10000's histo / follow_up / "
                          "consensus / confocal); drop the entry or use a dataset that records it")
    if "metadata" in keys and all(c not in df or df[c].isna().all() for c in ("age", "sex", "site")):
        raise ConfigError(f"entry metadata: {ds.root} records no age, sex or site; drop the entry")
    if "se_lcn_cam" in keys and not cfg.sym_data_dir and not ds.has_masks:
        raise ConfigError(f"entry se_lcn_cam: {ds.root} has no lesion masks for the segmenter and symmetry net; set "
                          "sym_data_dir (e.g. PH2) or drop the entry")
    positive_class(ds, cfg)
    return with_dx_factor(ds) if {"dx_weighting", "patch_attention"} & set(keys) else ds


def positive_class(ds: Any, cfg: CompareConfig) -> str:
    """``cfg.positive`` resolved: "auto" is mel or melanoma, else the second class of a binary task."""
    classes = list(ds.classes)
    if cfg.positive != "auto":
        if cfg.positive not in classes:
            raise ConfigError(f"positive={cfg.positive!r} is not a class of {ds.root}: {classes}")
        return cfg.positive
    found = [c for c in ("mel", "melanoma", "MEL") if c in classes] or (classes[1:] if len(classes) == 2 else [])
    if not found:
        raise ConfigError(f"positive=auto: {ds.root} has no mel / melanoma class ({classes}); name the class")
    return found[0]


def split(ds: Any, cfg: CompareConfig, run: Run) -> Any:
    """One split for every entry (splits.csv): the fixed test lesions and ``folds`` train/valid folds."""
    return common.split(ds, cfg, run, folds=cfg.folds)


def split_table(ds: Any, splits: Any) -> pd.DataFrame:
    """Images, lesions and images of each class per part and fold."""
    rows = []
    for k in range(len(splits)):
        for part, idx in splits.parts(k).items():
            df = ds.df.iloc[idx]
            rows.append({"fold": k, "part": part, "images": len(idx), "lesions": df["lesion_id"].nunique(),
                         **df["label"].value_counts().reindex(ds.classes, fill_value=0).to_dict()})
    return pd.DataFrame(rows)


def budget_epochs(cfg: CompareConfig, splits: Any) -> int:
    """Epochs per entry and fold: ``epochs``, or ``budget_images`` over the training rows (every entry visits each
    training image once per epoch, so images seen and epochs are the same budget here)."""
    if cfg.budget != "images":
        return cfg.epochs
    n_train = min(len(tr) for tr, _ in splits.folds)
    return max(1, int(round(cfg.budget_images / n_train)))


def prepare(ds: Any, splits: Any, cfg: CompareConfig, run: Run) -> EntryContext:
    """The inputs some entries need, built once on the training rows: the metadata encoder (fitted on rows the
    folds train on) and, for se_lcn_cam, the SE-LCN cascade trained on fold 0 of this split, then its CAMs."""
    ctx = EntryContext(ds=ds, splits=splits, cfg=cfg, run=run)
    keys = cfg.entry_keys
    if "metadata" in keys:
        ctx.encoder = MetaEncoder().fit(ds.df.iloc[ctx.train_rows])
    if "se_lcn_cam" in keys:
        ctx.cascade = train_cascade(ctx)
    return ctx


def variants(ctx: EntryContext) -> list[Any]:
    """Every chosen entry as an engine Variant under the shared recipe and budget."""
    epochs = budget_epochs(ctx.cfg, ctx.splits)
    return [variant(key, ctx, epochs) for key in ctx.cfg.entry_keys]


def entry_table(cfg: CompareConfig) -> pd.DataFrame:
    """The chosen entries: what each one changes and the entry it is compared with."""
    return pd.DataFrame([{"entry": k, "label": ENTRIES[k].label, "changes": CHANGES.get(k, "nothing (a reference)"),
                          "reference": ENTRIES[k].reference or ""} for k in cfg.entry_keys])


def same_rows(run: Run) -> pd.DataFrame:
    """entry_splits.csv as one column per entry (fold, part → image-id digest), after checking that every entry's
    loaders held the very same images; a mismatch raises naming the entry."""
    log = pd.read_csv(run.dir / "entry_splits.csv", dtype={"digest": str})
    wide = log.drop_duplicates(["entry", "fold", "part"], keep="last").pivot(index=["fold", "part"], columns="entry",
                                                                             values="digest")
    for entry in wide.columns:
        bad = wide.index[wide[entry] != wide.iloc[:, 0]].tolist()
        if bad:
            raise AssertionError(f"entry {entry} trained or was tested on other rows than {wide.columns[0]}: {bad}")
    return wide


def _digest(ids: Any) -> str:
    return hashlib.sha1(",".join(sorted(map(str, ids))).encode()).hexdigest()[:16]


def recording(v: Any, ctx: EntryContext, log: list[dict[str, Any]]) -> Any:
    """``v`` whose loaders, when built, log a digest of the image ids they actually hold per part (the proof that
    every entry saw identical rows: entry_splits.csv)."""
    test = _digest(ctx.ds.df["image_id"].iloc[ctx.splits.test])

    def dls(tr: np.ndarray, va: np.ndarray) -> Any:
        out = v.dls(tr, va)
        fold = next(k for k, (a, _) in enumerate(ctx.splits.folds) if np.array_equal(a, tr))
        for part, sub in (("train", out.train_ds), ("valid", out.valid_ds)):
            items = sub.items
            log.append({"entry": v.key, "fold": fold, "part": part, "images": len(items),
                        "digest": _digest(items["image_id"])})
        log.append({"entry": v.key, "fold": fold, "part": "test", "images": len(ctx.splits.test), "digest": test})
        ctx.run.save_table(pd.DataFrame(log), "entry_splits.csv")
        return out

    return replace(v, dls=dls)


def report(y: np.ndarray, probs: np.ndarray, classes: list[str], positive: str) -> dict[str, Any]:
    """The table's metrics (``engine.evaluation.comparable_report``): balanced accuracy and macro AUC over all
    classes; AUC, AP and the papers' operating points (sensitivity / specificity at P >= 0.5 as ARL, specificity
    at 95 % sensitivity as Going Smaller) of ``positive`` vs the rest."""
    out = comparable_report(y, probs, classes, positive)
    out.pop("classes_present")
    return out


def train(ctx: EntryContext, entries: list[Any]) -> Any:
    """Every entry on every fold (``engine.run_folds``: resumable, each fold model scored on the same test rows,
    folds.csv), the ids each entry's loaders held logged in entry_splits.csv; fold-0 models saved."""
    log: list[dict[str, Any]] = []
    cfg, ds = ctx.cfg, ctx.ds
    positive = positive_class(ds, cfg)
    res = run_folds(ctx.run, ds, ctx.splits, [recording(v, ctx, log) for v in entries], seed=cfg.seed,
                    report=lambda y, p: report(y, p, list(ds.classes), positive), figures=False, settings=cfg.engine_settings())
    res.variants = {v.key: v for v in entries}
    save_models(ctx.run, res.learners, spec=lambda key: {  # fold-0 weights as model_<entry>.pth, the encoder beside
        "classes": list(ctx.ds.classes), "entry": key,
        **({"meta_features": ctx.encoder.feature_names} if key == "metadata" else {})})
    if ctx.encoder is not None:
        ctx.encoder.save(ctx.run.dir / "meta_encoder.json")
    return res


def fold_mean_probs(res: Any) -> dict[str, np.ndarray]:
    """Each entry's test probabilities: its one fold model's, or the mean over its fold models."""
    return {key: np.mean(p, axis=0) for key, p in res.probs.items()}


def results_table(res: Any, ctx: EntryContext) -> pd.DataFrame:
    """One row per entry: each metric's mean ± std over folds (ddof 0), parameters, training seconds (all folds),
    the reference it is compared with."""
    df = res.table[pd.to_numeric(res.table["fold"], errors="coerce").notna()]
    stages = stage_states(ctx.run)
    rows = []
    for key, v in res.variants.items():
        part = df[df["model"] == v.label]
        row: dict[str, Any] = {"entry": key, "label": v.label, "reference": ENTRIES[key].reference or "",
                               "folds": len(part)}
        for m in TABLE_METRICS:
            row[m], row[f"{m}_std"] = part[m].mean(), part[m].std(ddof=0)
        row["params"] = int(part["params"].iloc[0])
        row["train_seconds"] = round(sum(stages.get(f"{key}_fold{k}", {}).get("seconds", 0.0)
                                         for k in range(len(ctx.splits.folds))), 1)
        rows.append(row)
    table = pd.DataFrame(rows)
    ctx.run.save_table(table, "comparison.csv")
    return table


def differences(res: Any, ctx: EntryContext) -> pd.DataFrame:
    """Each entry minus its reference on the test rows: BMA, macro AUC and melanoma AUC, paired bootstrap over test
    lesions (DeLong for the melanoma AUC), intervals and p-values corrected over all comparisons (differences.csv)."""
    ds, cfg, test = ctx.ds, ctx.cfg, ctx.splits.test
    y, k = ds.df["label_idx"].to_numpy()[test], list(ds.classes).index(positive_class(ds, cfg))
    metrics = {"bma": partial(balanced_accuracy, ties="first"), "auc_macro": macro_auc_present,
               "mel_auc": lambda yy, pp: midrank_auc(yy == k, pp[:, k])}
    refs = {key: ENTRIES[key].reference for key in res.variants if ENTRIES[key].reference in res.variants}
    groups = group_codes(ds.df.iloc[test])  # lesions and patients: their images resample together
    table = compare_to_reference(y, fold_mean_probs(res), refs, metrics, groups=groups,
                                 n_boot=cfg.n_boot, seed=cfg.seed, correction=cfg.correction,
                                 auc_scores=lambda p: p[:, k], auc_y=(y == k).astype(int), auc_metric="mel_auc")
    if cfg.correction != "none" and cfg.n_boot < 40 * len(table):
        warnings.warn(f"n_boot={cfg.n_boot} is too few for {len(table)} corrected comparisons: a bootstrap p cannot "
                      f"fall below 2/(n_boot+1), so after the correction few or no differences can be significant "
                      f"and the simultaneous intervals' ends rest on single resamples; set n_boot >= "
                      f"{40 * len(table)}", stacklevel=2)
    ctx.run.save_table(table, "differences.csv")
    ctx.run.log_metrics({"differences": table.to_dict(orient="records")})
    return table


def evaluation(entries: Any, ds: Any, cfg: CompareConfig) -> Evaluation:
    """How the entries are scored (``lesionkit.engine.evaluation``): fold 0, the table's metrics (:func:`report`)
    with ``ds``'s classes and positive class."""
    positive = positive_class(ds, cfg)
    return Evaluation(list(entries), report=lambda y, p: report(y, p, list(ds.classes), positive))


def evaluate_external(res: Any, ctx: EntryContext) -> pd.DataFrame | None:
    """Every entry's fold-0 model on ``test_dir`` (classes mapped to data_dir's), beside its in-distribution test
    scores: one row per entry, columns ``<metric> (test)`` and ``<metric> (external)``. None without test_dir."""
    ds, cfg = ctx.ds, ctx.cfg
    ext = load_external_like(cfg, ds)
    if ext is None:
        return None
    ext = with_inputs(ext, ctx, name="external")
    with lend(ctx, "external"):
        scores = evaluate_models(ctx.run, evaluation(res.variants.values(), ds, cfg),
                                 {k: [learn] for k, learn in res.learners.items()}, ext)
    inside = fold0_scores(res)
    table = pd.DataFrame([{"entry": key, **{f"{m} (test)": inside[key][m] for m in ("bma", "auc_macro", "mel_auc")},
                           **{f"{m} (external)": scores.reports[f"external_{key}"][m]
                              for m in ("bma", "auc_macro", "mel_auc")}} for key in res.variants])
    ctx.run.save_table(table, "external.csv")
    return table


def fold0_scores(res: Any) -> dict[str, dict[str, float]]:
    """{entry: its fold-0 model's test metrics} (what the external column is set beside)."""
    df = res.table[res.table["fold"].astype(str) == "0"].set_index("model")
    return {key: df.loc[v.label].to_dict() for key, v in res.variants.items()}


def summarize(table: pd.DataFrame, diffs: pd.DataFrame, maps: pd.DataFrame | None, run: Run) -> dict[str, Any]:
    """The headline (metrics.json "summary"): best entry by BMA, the number of significant differences."""
    best = table.sort_values("bma", ascending=False).iloc[0]
    summary = {"entries": len(table), "best_bma_entry": best["entry"], "best_bma": float(best["bma"]),
               "comparisons": len(diffs), "significant": int(diffs["significant"].sum()) if len(diffs) else 0}
    if maps is not None and len(maps):
        top = maps.sort_values("mass_inside_mean", ascending=False).iloc[0]
        summary["best_map"] = f"{top['entry']} / {top['method']}"
    return record_summary(run, run.cfg, summary, comparison=table.to_dict(orient="records"))["summary"]


__all__ = ["budget_epochs", "CompareConfig", "differences", "entry_table", "evaluate_external", "evaluation",
           "fold0_scores", "fold_mean_probs", "load", "positive_class", "prepare", "recording", "report",
           "results_table", "same_rows", "split", "split_table", "summarize", "TABLE_METRICS",
           "train", "variants"]
