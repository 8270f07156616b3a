"""One experiment engine under every paper notebook: one fit, one predict, one split rule, resumable stages.

A paper module declares its variants (:class:`Variant`: model, loaders, loss, optimiser, schedule, selection,
test-time views); :func:`run_folds` trains them on every fold of the run's split and records the results.
"""
from lesionkit.engine.fit import FitResult, fit
from lesionkit.engine.learner import make_learner, param_groups_splitter
from lesionkit.engine.optim import OptimizerSpec, adam, adamw, sgd, torch_optimizer
from lesionkit.engine.predict import VIEWS, predict, predict_learner, to_probs, tta_views
from lesionkit.engine.report import (
    count_params, flat_metrics, fold_means, fold_table, pick_examples, record_evaluation, save_evaluation_figures,
    score,
)
from lesionkit.engine.runner import (
    FoldResults, Variant, recipe_table, run_folds, run_splits, stage_states, test_predictions, train_stage,
    train_variant,
)
from lesionkit.engine.schedules import SCHEDULES, Schedule
from lesionkit.engine.seed import rng_state, seed_everything, set_rng_state, stage_seed
from lesionkit.engine.settings import EngineSettings

__all__ = ["EngineSettings", "FitResult", "FoldResults", "OptimizerSpec", "SCHEDULES", "Schedule", "VIEWS", "Variant", "adam", "adamw",
           "count_params", "fit", "flat_metrics", "fold_means", "fold_table", "make_learner", "param_groups_splitter", "pick_examples",
           "predict", "predict_learner", "recipe_table", "record_evaluation", "rng_state", "run_folds", "run_splits",
           "save_evaluation_figures", "score", "seed_everything", "set_rng_state", "sgd", "stage_seed",
           "stage_states", "test_predictions", "to_probs", "torch_optimizer", "train_stage", "train_variant", "tta_views"]
