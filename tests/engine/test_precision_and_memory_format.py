"""The precision / memory-format rule: measured per model, cached, fp32 unless a candidate clearly pays, results
within tolerance of fp32 (a fixed batch, attribution maps, a training run on the synthetic default), kept on
resume, and the thread budget with loader workers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import timm
import torch
from fastai.callback.core import Callback

from lesionkit.attribution import attribute
from lesionkit.data import load_dataset
from lesionkit.data.loaders import image_dls
from lesionkit.data.splits import make_splits
from lesionkit.engine import Schedule, Variant, adam, fit, predict, speed
from lesionkit.engine.runner import stage_states, train_stage
from lesionkit.papers.common import TrainConfig
from lesionkit.metrics import fastai_metrics
from lesionkit.records.runs import start_run
from lesionkit.papers.quickstart.recipe import QuickstartConfig

needs_bf16 = pytest.mark.skipif(not speed.cpu_has_bf16(), reason="this CPU has no bf16 units")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LESIONKIT_RUNS", str(tmp_path / "runs"))


def test_rule_keeps_fp32_unless_a_candidate_is_clearly_faster() -> None:
    assert speed.pick({"off": 1.0, "channels_last": 0.95, "bf16": 0.97}).name == "off", "5 % is within noise"
    assert speed.pick({"off": 1.0, "channels_last": 0.6, "bf16": 0.8, "both": 0.7}).name == "channels_last"
    assert speed.pick({"off": 1.0, "channels_last": 0.9, "bf16": 0.6, "both": 0.45}).name == "both"


def test_candidates_follow_the_switch_and_the_cpu(monkeypatch) -> None:
    assert [s.name for s in speed.candidates("off")] == ["off"]
    assert [s.name for s in speed.candidates("bf16")] == ["bf16"]
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: False)
    assert [s.name for s in speed.candidates("auto")] == ["off", "channels_last"], "no bf16 without bf16 units"
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: True)
    assert [s.name for s in speed.candidates("auto")] == ["off", "channels_last", "bf16", "both"]
    (field,) = [f for f in dataclasses.fields(TrainConfig) if f.name == "speedups"]
    assert field.metadata["choices"] == speed.SPEEDUPS  # the parameter offers exactly these


def test_the_choice_is_measured_once_per_model_and_batch_shape(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(speed, "measure", lambda *a: calls.append(1) or {"off": 1.0, "channels_last": 0.5})
    model, loss = timm.create_model("resnet10t", num_classes=3), torch.nn.CrossEntropyLoss()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4,))
    assert speed.choose(model, [x], [y], loss)[0].name == "channels_last"
    assert speed.choose(model, [x], [y], loss)[0].name == "channels_last" and len(calls) == 1, "cached"
    speed.choose(model, [torch.randn(4, 3, 48, 48)], [y], loss)
    assert len(calls) == 2, "another input size is measured again"
    assert speed.choose(model, [x], [y], loss, mode="off")[0].name == "off" and len(calls) == 2


def test_measuring_leaves_the_model_and_the_random_streams_untouched() -> None:
    model = timm.create_model("resnet10t", num_classes=3, drop_rate=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4,))
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    speed.measure(model, [x], [y], torch.nn.CrossEntropyLoss(), speed.candidates("auto"))
    assert torch.equal(torch.rand(3), expected)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.is_contiguous() for p in model.parameters())


@pytest.mark.parametrize("arch", ["resnet10t", "tf_efficientnet_lite0"])
@pytest.mark.parametrize("name, tol", [("channels_last", 1e-4), ("bf16", 0.1), ("both", 0.1)])
def test_each_setting_stays_within_tolerance_of_fp32_on_a_fixed_batch(arch, name, tol) -> None:
    if "bf16" in name and not speed.cpu_has_bf16():
        pytest.skip("this CPU has no bf16 units")
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=5).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    s = speed.Speed.named(name)
    s.apply(model)
    with torch.no_grad(), s.autocast():
        out = model(x).float()
    scale = ref.abs().max()
    assert float((out - ref).abs().max() / scale) < tol
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.75


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
    from lesionkit.data.synthetic import make_synthetic

    ds = load_dataset(make_synthetic(tmp_path_factory.mktemp("synth"), n_lesions=160, size=64, seed=3))
    return ds, make_splits(ds.df, folds=1, test_frac=0.3, valid_frac=0.2, seed=0)


def _variant(ds, epochs: int = 4) -> Variant:
    return Variant(key="m", label="m", model=lambda: timm.create_model("resnet10t", num_classes=ds.n_classes),
                   dls=lambda tr, va: image_dls(ds, tr, va, size=48, bs=16),
                   optimizer=adam(), schedule=Schedule("one_cycle"), epochs=epochs, lr=3e-3, monitor="bma",
                   metrics=fastai_metrics(ds.task, ds.n_classes))


def _accuracy(learn, ds, rows) -> float:
    from lesionkit.data.loaders import test_dl

    probs, y = predict(learn.model, test_dl(learn.dls, ds, rows, with_labels=True))
    return float((probs.argmax(1) == y).mean())


@needs_bf16
def test_bf16_training_matches_fp32_held_out_accuracy_on_the_synthetic_set(small_synthetic) -> None:
    ds, splits = small_synthetic
    tr, va = splits.folds[0]
    acc = {}
    for mode in ("off", "bf16"):
        run = start_run(f"speed-{mode}", QuickstartConfig, {"speedups": mode}, watch_notebook=False)
        learn = train_stage(run, "m", lambda: _variant(ds).learner(tr, va), 4, 3e-3, "one_cycle", "bma",
                            headless=True, settings=run.cfg.engine_settings())
        assert speed.speed_of(learn.model).name == mode
        assert stage_states(run)["m"]["speedups"] == mode, "the run records the setting it trained in"
        acc[mode] = _accuracy(learn, ds, splits.test)
    n = len(splits.test)
    noise = 2 * np.sqrt(2 * 0.25 / n)  # two standard errors of a difference of two accuracies
    majority = ds.df.label.iloc[splits.test].value_counts(normalize=True).max()
    assert acc["off"] > majority + 0.05, f"the fp32 run must learn the synthetic signal: {acc}, majority {majority}"
    assert abs(acc["bf16"] - acc["off"]) <= noise, f"bf16 {acc['bf16']:.3f} vs fp32 {acc['off']:.3f} (n={n})"


class _Crash(Callback):
    def __init__(self, error: BaseException, epoch: int = 0) -> None:
        self.error, self.at = error, epoch

    def after_pred(self) -> None:
        if self.training and self.epoch == self.at and self.iter == 1:
            raise self.error


@needs_bf16
def test_a_resumed_fit_keeps_the_setting_it_started_with(small_synthetic, monkeypatch, tmp_path) -> None:
    ds, splits = small_synthetic
    tr, va = splits.folds[0]
    run = start_run("speed-resume", QuickstartConfig, {}, watch_notebook=False)  # speedups=auto
    monkeypatch.setattr(speed, "measure", lambda *a: {"off": 1.0, "channels_last": 0.95, "bf16": 0.5, "both": 0.6})
    with pytest.raises(KeyboardInterrupt):
        fit(_variant(ds).learner(tr, va).add_cb(_Crash(KeyboardInterrupt(), epoch=1)), 2, 1e-3, run=run,
            stage="m", headless=True)
    state = torch.load(run.dir / "checkpoints" / "m_last.pth", weights_only=True)
    assert state["speed"] == "bf16"

    def no_measuring(*a):
        raise AssertionError("a resumed fit must not measure again")

    monkeypatch.setattr(speed, "measure", no_measuring)
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / "empty"))  # nor find it in the cache
    learn = _variant(ds).learner(tr, va)
    fit(learn, 2, 1e-3, run=run, stage="m", headless=True)
    assert speed.speed_of(learn.model).name == "bf16"


@needs_bf16
def test_a_failing_batch_leaves_no_autocast_and_restores_threads(small_synthetic) -> None:
    ds, splits = small_synthetic
    before = torch.get_num_threads()
    run = start_run("speed-fail", QuickstartConfig, {"speedups": "bf16"}, watch_notebook=False)
    with pytest.raises(RuntimeError, match="boom"):
        fit(_variant(ds).learner(*splits.folds[0]).add_cb(_Crash(RuntimeError("boom"))), 1, 1e-3, run=run,
            stage="m", headless=True, settings=run.cfg.engine_settings())
    assert not torch.is_autocast_enabled("cpu"), "autocast must not outlive the fit"
    assert torch.get_num_threads() == before


def test_prediction_uses_the_fitted_precision_and_inference_mode(small_synthetic) -> None:
    model = timm.create_model("resnet10t", num_classes=2)
    seen = {}

    def spy(module, inputs, output):
        seen.update(grad=torch.is_inference_mode_enabled(), dtype=output.dtype)

    model.conv1.register_forward_hook(spy)
    dl = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]))]
    predict(model, dl)
    assert seen == {"grad": True, "dtype": torch.float32}
    if speed.cpu_has_bf16():
        model.lesionkit_speed = speed.Speed.named("bf16")
        probs, _ = predict(model, dl)
        assert seen["dtype"] == torch.bfloat16 and probs.dtype == np.float32


def test_attribution_keeps_bf16_only_where_its_maps_stay_faithful(monkeypatch, tmp_path) -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=3).eval()
    x = torch.randn(2, 3, 48, 48)
    off = attribute(model, x, "ig", n_steps=8, speedups="off")
    auto = attribute(model, x, "ig", n_steps=8)
    rel = np.abs(auto.maps - off.maps).sum() / np.abs(off.maps).sum()
    assert rel <= speed.MAP_TOLERANCE * 1.5, f"auto ({auto.info['speedups']}) maps differ by {rel:.3f}"
    assert all(p.is_contiguous() for p in model.parameters()), "the caller's model format is restored"
    real = speed.input_gradient

    def bf16_fastest(model, xs, setting):  # real gradients, timings that make bf16 the clear winner
        grad, _ = real(model, xs, setting)
        return grad, 0.1 if setting.bf16 else 1.0

    monkeypatch.setattr(speed, "input_gradient", bf16_fastest)
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: True)  # bf16 is a candidate on any CPU (emulated without units)
    for cache in ("a", "b"):
        monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / cache))  # measure again
        choice = speed.choose_for_attribution(model, [x])
        if cache == "a":
            assert choice.bf16, "faithful (ResNet: ~4 % from fp32) and fastest: kept"
            monkeypatch.setattr(speed, "relative_error", lambda a, ref: 0.0 if a is ref else 1.0)  # 'unfaithful'
    assert not choice.bf16, "an unfaithful bf16 is never kept, however fast"


def test_loader_workers_leave_the_cores_to_compute_and_the_count_is_restored(monkeypatch) -> None:
    from fastai.data.core import TfmdDL

    data = list(range(8))
    assert speed.loader_workers_of(TfmdDL(data, bs=2, num_workers=0)) == 0, "fastai's own num_workers is always 1"
    assert speed.loader_workers_of(TfmdDL(data, bs=2, num_workers=3)) == 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        speed.threads_for_workers(3)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(4)
        speed.threads_for_workers(1)
        assert torch.get_num_threads() == 3
        speed.threads_for_workers(0)
        assert torch.get_num_threads() == 3, "no workers: the thread count is left as it is"
        torch.set_num_threads(2)
        speed.threads_for_workers(1)
        assert torch.get_num_threads() == 1, "never more threads than the process had, minus the worker"
        monkeypatch.setenv("WORLD_SIZE", "2")
        torch.set_num_threads(4)
        speed.threads_for_workers(1)
        assert torch.get_num_threads() == 1, "two processes share the four cores: 2 each, minus the worker"
    finally:
        torch.set_num_threads(before)


def test_a_loss_holding_per_batch_state_is_measured_on_the_whole_batch() -> None:
    """Patch attention's factor loss carries the batch's diagnosis factors: an 8-image slice would not match."""
    seen = []

    def factor_loss(pred, y):
        if len(pred) != 12:
            raise ValueError(f"12 diagnosis factors for a batch of {len(pred)}")
        seen.append(len(pred))
        return torch.nn.functional.cross_entropy(pred, y)

    model = timm.create_model("resnet10t", num_classes=3)
    seconds = speed.measure(model, [torch.randn(12, 3, 32, 32)], [torch.randint(0, 3, (12,))], factor_loss,
                            speed.candidates("off"))
    assert set(seconds) == {"off"} and seen and set(seen) == {12}


def test_the_engine_takes_its_settings_as_arguments_never_from_the_runs_config(small_synthetic, tmp_path) -> None:
    """A run whose config is not even readable trains: speed rule, compile, SyncBatchNorm and processes come from
    ``settings`` alone, and the stage records the rule it was given."""
    from lesionkit.engine import EngineSettings
    from lesionkit.records.runs import Run

    class Unreadable:
        def __getattr__(self, name):
            raise AssertionError(f"the engine read run.cfg.{name}")

    ds, splits = small_synthetic
    tr, va = splits.folds[0]
    run = Run(tmp_path / "run", "engine-settings", cfg=Unreadable())
    run.dir.mkdir()
    train_stage(run, "m", lambda: _variant(ds, epochs=1).learner(tr, va), 1, 3e-3, "one_cycle", "bma",
                headless=True, settings=EngineSettings(speedups="off"))
    assert stage_states(run)["m"]["speedups"] == "off"
