"""Issue 31: the comparison's CAM entry gives its symmetry net a rate it learns at (at 1e-3 SqueezeNet's last ReLU
died on the synthetic set: a constant output, AUC 0.500) and epochs of its own (``sym_epochs``; 0: the cascade's),
which the demo uses so that every model it prints clears its bar."""
from __future__ import annotations

from lesionkit.cli.demo import DEMO_PARAMS
from lesionkit.papers.compare.cascade import SYM_LR, cascade_config
from lesionkit.papers.compare.recipe import CompareConfig


def test_sym_epochs_are_the_symmetry_nets_own_and_default_to_the_cascades():
    own = cascade_config(CompareConfig(epochs=3, cascade_epochs=4, sym_epochs=60))
    assert (own.seg_epochs, own.sym_epochs, own.sym_lr) == (4, 60, SYM_LR) and SYM_LR <= 1e-4
    shared = cascade_config(CompareConfig(epochs=3, cascade_epochs=0, sym_epochs=0))
    assert (shared.seg_epochs, shared.sym_epochs) == (3, 3)


def test_the_demo_trains_the_cascade_longer_than_the_entries():
    params = CompareConfig.from_params(DEMO_PARAMS["compare"])
    assert params.cascade_epochs > params.epochs and params.sym_epochs >= 10 * params.cascade_epochs
