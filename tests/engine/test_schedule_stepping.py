"""`Schedule(stepping="epoch")`: a schedule held at each epoch's first value, as a torch scheduler stepped once per
epoch (the 1st place's warmup_cosine, methods-b §A.7), also when a fit resumes; "batch" (the default) is unchanged."""
from __future__ import annotations

import math

import pytest

from lesionkit.engine.schedules import Schedule, per_epoch, resumed


def test_epoch_stepping_gives_the_first_place_per_epoch_rates() -> None:
    """§A.7 with lr0 = 3e-5, N = 15: 3.0e-5, 3.0e-4, 2.96e-4, …, ≈3.8e-6 at e = 15 (no restart)."""
    n, peak = 15, 3e-4
    lr = Schedule("warmup_cosine", warmup_epochs=1.0, warmup_factor=10.0, stepping="epoch").scheds(peak, n)["lr"]
    code = [peak / 10, peak] + [peak * (1 + math.cos(math.pi * (e - 2) / (n - 1))) / 2 for e in range(3, n + 1)]
    for k, expected in enumerate(code):
        assert lr(k / n) == pytest.approx(expected) and lr((k + 0.99) / n) == pytest.approx(expected)
    assert code[2] == pytest.approx(2.96e-4, rel=1e-2) and code[-1] == pytest.approx(3.8e-6, rel=2e-2)


def test_batch_stepping_is_the_default_and_unchanged() -> None:
    batch = Schedule("warmup_cosine").scheds(1.0, 10)["lr"]
    assert Schedule("warmup_cosine").stepping == "batch"
    assert batch(0.05) == pytest.approx(0.55) and batch(0.999) < 1e-4  # mid-warm-up; reaches ~0
    assert "stepping" not in Schedule("warmup_cosine").describe()
    assert Schedule("warmup_cosine", stepping="epoch").describe()["stepping"] == "epoch"


def test_epoch_stepping_holds_any_schedule_and_survives_a_resume() -> None:
    lr = Schedule("one_cycle", stepping="epoch").scheds(1.0, 4)
    assert lr["lr"](0.3) == lr["lr"](0.26) and lr["mom"](0.3) == lr["mom"](0.26)  # both hyperparameters held
    held = per_epoch(lambda pos: pos, 4)
    after = resumed(held, start=2, epochs=4)  # fastai's pos runs 0 → 1 over the last 2 epochs
    assert [after(p) for p in (0.0, 0.49, 0.5, 0.99)] == pytest.approx([0.5, 0.5, 0.75, 0.75])


def test_an_unknown_stepping_is_refused() -> None:
    with pytest.raises(ValueError, match="stepping='iteration'"):
        Schedule("warmup_cosine", stepping="iteration")
