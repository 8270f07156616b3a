"""The callback that reports each epoch's validation value to a sweep's Optuna trial, so its pruner can stop the
run early (the trial's side of a sweep is `lesionkit.parallel.trial`)."""
from __future__ import annotations

from typing import Any

from fastai.callback.core import Callback

from lesionkit.engine.callbacks import epoch_values, is_real_fit, lower_is_better
from lesionkit.parallel.distributed import broadcast
from lesionkit.parallel.trial import current_trial, next_step, trial_env


def trial_reporter(monitor: str, stage: str) -> list[Any]:
    """The callback reporting ``monitor`` after every epoch to the sweep's trial (none outside a sweep)."""
    if trial_env() is None:
        return []

    class TrialReport(Callback):
        """Reports to the pruner the epochs of stages whose monitor points the study's way; steps count epochs
        over the whole run, so step k is the same stage's same epoch in every trial of the notebook. Under DDP the
        main process decides and every process stops together."""

        order = 62  # after BestModel, before EpochCheckpoint saves the epoch

        def after_epoch(self) -> None:
            if not is_real_fit(self.learn):
                return
            prune = False
            trial = current_trial()
            if trial is not None:
                minimize = trial.study.direction.name == "MINIMIZE"
                step = next_step()
                if lower_is_better(monitor) == minimize:
                    trial.report(epoch_values(self.recorder)[monitor], step)
                    prune = trial.should_prune()
            if broadcast(prune):
                import optuna

                raise optuna.TrialPruned(f"stage {stage or 'fit'}: pruned after epoch {self.epoch + 1} by the "
                                         f"study's pruner ({monitor})")

    return [TrialReport()]
