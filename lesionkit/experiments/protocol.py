"""The evaluation protocol the paper notebooks share: grouped cross-validation with a fixed test set, the papers'
learning-rate schedules, prediction with test-time views, and scoring into per-fold tables with mean ± std.

Why: Gessert et al. and SE-LCN report *mean ± std over fold models evaluated on one fixed test set*, ARL and
"Going Smaller" evaluate with multi-view TTA, and each paper uses its own schedule (step decay, warmup + cosine).
The notebooks call these steps; each paper module only decides which model, loss and data pipeline go in.

Stable API (imported by other notebook modules; keep signatures):
  cv_splits(ds, folds, test_frac, valid_frac, seed) -> CVSplits
  cross_validate(cv, fit_eval, model, run, table) -> DataFrame (one row per fold: model, fold, metrics...)
  fold_table(df, by) -> DataFrame of "mean ± std" strings;  flat_metrics(report) -> dict[str, float]
  fit_schedule(learn, epochs, lr, schedule, monitor) with schedules in SCHEDULES
  predict_probs(model, dl, tta) / predict_views(model, view_dl) -> (probs (N, K), y)
  score(y, probs, classes, positive) -> report;  record_evaluation(run, name, ds, idx, probs, y, ...) -> report
  one_vs_rest(ds, positive) -> binary LesionDataset;  model_inputs(ds, idx, size, norm) -> (N, 3, H, W) tensor
  count_params(model) -> int;  opt_func(name, wd) -> fastai optimizer factory
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..train import plain_tensor, predict_probs, to_probs  # noqa: F401  (predict_probs, to_probs: re-exported)

SCHEDULES = ("one_cycle", "flat_cos", "constant", "step", "warmup_cosine")
"""fastai's schedules, plus the papers': "step" (halve the LR at fixed fractions of training: Gessert et al.'s
every 10 of 50 epochs after epoch 10, ARL's at 30/60/90 of 100) and "warmup_cosine" (the ISIC 2020 1st place and
"Going Smaller": one warmup epoch from lr/10 to lr, then cosine annealing to 0)."""


# --- splits ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CVSplits:
    """A fixed test set plus `folds` (train, valid) pairs over the remaining rows, all grouped by lesion/patient."""

    test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.folds)

    def sizes(self) -> pd.DataFrame:
        return pd.DataFrame([{"fold": k, "train": len(tr), "valid": len(va), "test": len(self.test)}
                             for k, (tr, va) in enumerate(self.folds)])


def cv_splits(ds: Any, folds: int = 3, test_frac: float = 0.2, valid_frac: float = 0.2, seed: int = 0) -> CVSplits:
    """Gessert et al.'s protocol: hold out `test_frac` of the lesions once, then `folds` grouped, stratified folds of
    the rest (folds=1: one grouped train/valid split with `valid_frac`). No lesion/patient is on two sides."""
    from ..data.splits import assert_no_group_leak, grouped_holdout, grouped_kfold

    if folds < 1:
        raise ValueError(f"folds={folds}: need at least 1")
    df = ds.df
    groups = [c for c in ("lesion_id", "patient_id") if c in df.columns and df[c].notna().any()] or ["image_id"]
    rest, test = grouped_holdout(df, test_frac=test_frac, group_col=groups, stratify_col="label_idx", seed=seed)
    sub = df.iloc[rest]
    if folds == 1:
        tr, va = grouped_holdout(sub, test_frac=valid_frac, group_col=groups, stratify_col="label_idx", seed=seed + 1)
        pairs = [(rest[tr], rest[va])]
    else:
        pairs = [(rest[tr], rest[va]) for tr, va in
                 grouped_kfold(sub, n_splits=folds, group_col=groups, stratify_col="label_idx", seed=seed + 1)]
    for tr, va in pairs:
        assert_no_group_leak(df, {"train": tr, "valid": va, "test": test}, group_cols=groups)
    return CVSplits(test=np.sort(test), folds=pairs)


# --- per-fold tables ------------------------------------------------------------------------------------------------
def flat_metrics(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalars of a metrics report, nested dicts flattened with "/" (per_class/mel/auc); non-numbers dropped."""
    out: dict[str, float] = {}
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_metrics(value, prefix=f"{name}/"))
        elif isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def cross_validate(cv: CVSplits, fit_eval: Callable[[int, np.ndarray, np.ndarray], dict[str, Any]],
                   model: str = "model", run: Any = None, table: str = "folds.csv",
                   log: Callable[[str], None] | None = print) -> pd.DataFrame:
    """Call ``fit_eval(fold, train_idx, valid_idx) -> metrics`` for every fold; one row per fold.

    The rows are appended to ``run``'s ``table`` CSV after every fold (earlier rows of other models are kept), so a
    run killed mid-way keeps its finished folds. Metrics are flattened with ``flat_metrics``; ``seconds`` is added.
    """
    rows = []
    for k, (tr, va) in enumerate(cv.folds):
        t0 = time.perf_counter()
        metrics = flat_metrics(fit_eval(k, tr, va))
        rows.append({"model": model, "fold": k, **metrics, "seconds": round(time.perf_counter() - t0, 1)})
        if run is not None:
            _append_rows(run, table, model, rows)
        if log is not None:
            shown = ", ".join(f"{m}={v:.3f}" for m, v in list(metrics.items())[:3])
            log(f"{model} fold {k}: {shown} ({rows[-1]['seconds']} s)")
    return pd.DataFrame(rows)


def _append_rows(run: Any, table: str, model: str, rows: list[dict[str, Any]]) -> None:
    path = run.dir / table
    previous = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=["model"])
    df = pd.concat([previous[previous["model"] != model], pd.DataFrame(rows)], ignore_index=True)
    run.save_table(df, table)


def fold_table(df: pd.DataFrame, by: str = "model", metrics: Sequence[str] | None = None,
               digits: int = 3) -> pd.DataFrame:
    """mean ± std over folds (``lesionkit.metrics.fold_summary``, numpy's ddof=0 as the papers) as readable text:
    one row per metric, one column per ``by`` value."""
    from ..metrics import fold_summary

    cols = list(metrics) if metrics is not None else [c for c in df.select_dtypes("number").columns
                                                      if c not in (by, "fold", "seconds")]
    cols = [c for c in cols if df[c].notna().all()]
    summary = fold_summary(df, by=by, metrics=cols).set_index(by)
    text = {name: {m: f"{row[f'{m}_mean']:.{digits}f} ± {row[f'{m}_std']:.{digits}f}" for m in cols}
            for name, row in summary.iterrows()}
    return pd.DataFrame(text).rename_axis("metric").reset_index()


def fold_means(df: pd.DataFrame, by: str = "model") -> dict[str, dict[str, float]]:
    """{model: {metric: mean over folds}} of the numeric columns (for summaries and comparison tables)."""
    num = df.drop(columns=[c for c in ("fold", "seconds") if c in df.columns]).groupby(by).mean(numeric_only=True)
    return {str(m): {k: float(v) for k, v in row.items() if np.isfinite(v)} for m, row in num.iterrows()}


# --- training -------------------------------------------------------------------------------------------------------
def opt_func(name: str = "adam", wd: float = 0.0, mom: float = 0.9) -> Callable[..., Any]:
    """fastai optimizer factory: "adam" (Adam, decoupled wd = AdamW when wd > 0) or "sgd" (momentum, L2 wd as
    torch's SGD does it, the ARL code's choice)."""
    from fastai.optimizer import SGD, Adam

    if name == "adam":
        return partial(Adam, wd=wd, decouple_wd=True)
    if name == "sgd":
        return partial(SGD, mom=mom, wd=wd, decouple_wd=False)
    raise ValueError(f"optimizer {name!r}: choose 'adam' or 'sgd'")


def step_schedule(lr: float, start: float = 0.0, every: float = 0.3, gamma: float = 0.5) -> Callable[[float], float]:
    """LR at training progress ``pos`` in [0, 1]: ``lr * gamma ** floor((pos - start) / every)`` once pos > start
    (milestones as fractions of training, so a short run keeps the paper's shape)."""
    def sched(pos: float) -> float:
        if pos < start + every - 1e-9:
            return lr
        return lr * gamma ** math.floor((pos - start) / every + 1e-9)
    return sched


def warmup_cosine_schedule(lr: float, epochs: int, warmup_epochs: float = 1.0,
                           warmup_factor: float = 10.0) -> Callable[[float], float]:
    """Linear warmup from lr / warmup_factor to lr over ``warmup_epochs``, then cosine to 0 (fastai SchedCos)."""
    warm = min(warmup_epochs / max(epochs, 1), 0.5) if epochs > 1 else 0.0

    def sched(pos: float) -> float:
        if pos < warm:
            return lr / warmup_factor + (lr - lr / warmup_factor) * pos / warm
        p = (pos - warm) / max(1e-9, 1 - warm)
        return lr * (1 + math.cos(math.pi * min(p, 1.0))) / 2
    return sched


def fit_schedule(learn: Any, epochs: int, lr: float, schedule: str = "one_cycle", monitor: str | None = None,
                 step_start: float = 0.0, step_every: float = 0.3, step_gamma: float = 0.5,
                 fname: str = "best") -> Any:
    """Train with one of ``SCHEDULES`` and reload the best epoch by ``monitor`` (``lesionkit.train.fit`` for fastai's
    own schedules, a fastai ParamScheduler for the papers')."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: choose one of {SCHEDULES}")
    from ..train import fit

    if schedule in ("one_cycle", "flat_cos", "constant"):
        return fit(learn, epochs, lr, schedule=schedule, monitor=monitor, fname=fname)
    from fastai.callback.schedule import ParamScheduler
    from fastai.callback.tracker import SaveModelCallback

    sched = (step_schedule(lr, step_start, step_every, step_gamma) if schedule == "step"
             else warmup_cosine_schedule(lr, epochs))
    monitor = monitor or getattr(learn, "lesionkit_monitor", "valid_loss")
    with learn.no_bar():
        learn.fit(epochs, lr, cbs=[ParamScheduler({"lr": sched}),
                                   SaveModelCallback(monitor=monitor, fname=fname, with_opt=False)])
    return learn


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


# --- prediction -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict_views(model: torch.nn.Module, dl: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities averaged over the views of a ``lesionkit.data.views.tta_dl`` loader ((B, V, 3, S, S) batches):
    the ARL 9-view multi-scale crops, the 1st-place 8 flips or an ordered multi-crop grid."""
    model.eval()
    probs, ys = [], []
    for batch in dl:
        x = plain_tensor(batch[0])
        b, v = x.shape[:2]
        p = to_probs(model(x.reshape(b * v, *x.shape[2:])).float())
        probs.append(p.reshape(b, v, -1).mean(1).cpu())
        if len(batch) > 1:
            ys.append(plain_tensor(batch[1]).cpu())
    return torch.cat(probs).numpy(), (torch.cat(ys).numpy().astype(int) if ys else None)


# --- scoring --------------------------------------------------------------------------------------------------------
def score(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], positive: str | None = None) -> dict[str, Any]:
    """The score command's report: binary (two classes, or ``positive`` given: that class vs the rest, scored on
    its probability column) or multiclass."""
    from ..metrics import binary_report, multiclass_report

    classes = list(classes)
    if positive is not None:
        if positive not in classes:
            raise ValueError(f"positive class {positive!r} is not among the classes {classes}")
        k = classes.index(positive)
        return binary_report((np.asarray(y) == k).astype(int), np.asarray(probs)[:, k])
    if len(classes) == 2:
        return binary_report(np.asarray(y).astype(int), np.asarray(probs)[:, 1])
    return multiclass_report(y, probs, classes)


def record_evaluation(run: Any, name: str, ds: Any, idx: np.ndarray, probs: np.ndarray, y: np.ndarray,
                      positive: str | None = None, figures: bool = True, log: bool = True) -> dict[str, Any]:
    """Score, write predictions (+ truth) in the official format as ``predictions/<name>.csv``, log the report
    under ``name`` in metrics.json and save confusion/ROC figures; returns the report."""
    from ..metrics import write_predictions

    report = score(y, probs, ds.classes, positive)
    write_predictions(run.dir / "predictions", ds.df["image_id"].iloc[idx].tolist(), probs, ds.classes,
                      y_true=y, stem=name)
    if log:
        run.log_metrics({name: report})
    if figures:
        save_evaluation_figures(run, name, y, probs, ds.classes)
    return report


def save_evaluation_figures(run: Any, name: str, y: np.ndarray, probs: np.ndarray,
                            classes: Sequence[str]) -> dict[str, Any]:
    """The confusion matrix (ties broken by the first class) and ROC curves, saved as ``<name>_confusion`` and
    ``<name>_roc``; returns {figure name: Figure}."""
    from ..metrics import predict_labels
    from ..viz.plots import plot_confusion_matrix, plot_roc_curves

    figs = {f"{name}_confusion": plot_confusion_matrix(y, predict_labels(probs, ties="first"), classes),
            f"{name}_roc": plot_roc_curves(y, probs, classes)}
    for fig_name, fig in figs.items():
        run.save_figure(fig, fig_name)
    return figs


# --- data helpers ---------------------------------------------------------------------------------------------------
def one_vs_rest(ds: Any, positive: str = "mel", rest: str = "rest") -> Any:
    """A binary copy of a multiclass dataset: ``positive`` vs all other classes (classes [rest, positive], so index
    1 is positive, the LesionDataset convention): ISIC 2017 Part 3's melanoma task from HAM10000-style labels."""
    from ..data.table import LesionDataset

    if positive not in ds.classes:
        raise ValueError(f"class {positive!r} is not in the dataset's classes {ds.classes}")
    df = ds.df.copy()
    df["label"] = np.where(df["label"] == positive, positive, rest)
    df["label_idx"] = (df["label"] == positive).astype(int)
    return LesionDataset(f"{ds.name}:{positive}-vs-{rest}", ds.root, df, [rest, positive], "binary",
                         {**ds.info, "source_classes": list(ds.classes)})


def model_inputs(ds: Any, idx: Sequence[int], size: int | tuple[int, int],
                 norm: tuple[Sequence[float], Sequence[float]] | None) -> torch.Tensor:
    """Whole images of rows ``idx`` as a model input (N, 3, H, W), resized (squish) and normalised (None: [0, 1]):
    what attribution methods take (patch models cut their patches from it themselves)."""
    from PIL import Image

    from ..data.images import load_rgb

    h, w = (size, size) if isinstance(size, int) else size
    arrs = [np.asarray(load_rgb(p, min_side=min(h, w)).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
            for p in ds.df["path"].iloc[list(idx)]]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).contiguous()
    if norm is not None:
        mean, std = (torch.tensor(v, dtype=torch.float32)[None, :, None, None] for v in norm)
        x = (x - mean) / std
    return x


def pick_examples(y: np.ndarray, probs: np.ndarray, n: int = 6, seed: int = 0) -> np.ndarray:
    """Positions of up to ``n`` test images to explain: correct and wrong predictions of several classes."""
    rng = np.random.default_rng(seed)
    pred = probs.argmax(1)
    order = np.concatenate([rng.permutation(np.flatnonzero(pred == y)), rng.permutation(np.flatnonzero(pred != y))])
    picked: list[int] = []
    for cls in rng.permutation(np.unique(y)):
        hit = [i for i in order if y[i] == cls and i not in picked]
        if hit:
            picked.append(int(hit[0]))
    picked += [int(i) for i in order if i not in picked]
    return np.asarray(picked[:n], dtype=int)


__all__ = ["CVSplits", "SCHEDULES", "count_params", "cross_validate", "cv_splits", "fit_schedule", "flat_metrics",
           "fold_means", "fold_table", "model_inputs", "one_vs_rest", "opt_func", "pick_examples", "predict_probs",
           "predict_views", "record_evaluation", "save_evaluation_figures", "score", "step_schedule", "to_probs",
           "warmup_cosine_schedule"]
