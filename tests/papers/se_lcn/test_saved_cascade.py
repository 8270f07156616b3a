"""A finished SE-LCN record used again: its segmenter and symmetry net come back from their files, and a new set runs
through the same cascade the notebook runs on test_dir (hair removal, masks, LAE inputs, CAMs)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lesionkit.models import create_model
from lesionkit.papers.saved import RunLoadError, load_run
from lesionkit.papers.se_lcn import recipe as se
from lesionkit.papers.se_lcn.reuse import cascade_on


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LESIONKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _record(root: Path, synthetic_dir: Path) -> tuple[Path, se.SELCNConfig, dict[str, torch.nn.Module]]:
    """A completed SE-LCN run folder with untrained networks saved as its models (the layout the notebook writes)."""
    cfg = dataclasses.replace(se.SELCNConfig(data_dir=str(synthetic_dir)), image_size=64, cam_size=16, folds=1,
                              seg_encoder="tu-tf_efficientnet_lite0", classifier_backbone="tf_efficientnet_lite0",
                              pretrained=False)
    run = root / "runs" / "se_lcn" / "r1"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"notebook": "se_lcn", "status": "completed"}))
    cfg.save(run / "config.yaml")
    torch.manual_seed(0)
    classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    nets = {"segmenter": create_model("selcn_segmenter", encoder=cfg.seg_encoder),
            "symmetry": create_model("selcn_symmetry"),
            "classifier_with_cam": create_model("selcn_classifier", backbone=cfg.classifier_backbone,
                                                num_classes=7, with_symmetry_net=False)}
    for name, net in nets.items():
        torch.save(net.state_dict(), run / f"model_{name}.pth")
    (run / "model_symmetry.json").write_text(json.dumps({"classes": ["symmetric", "asymmetric"]}))
    (run / "model_classifier_with_cam.json").write_text(json.dumps({"classes": classes}))
    return run, cfg, nets


def test_a_new_set_gets_the_records_masks_and_maps(tmp_path: Path, synthetic_dir: Path, cache: Path) -> None:
    run, cfg, nets = _record(tmp_path, synthetic_dir)
    saved = load_run(run)
    ds = saved.test_set(synthetic_dir)
    cascade = saved.parts["cascade"]
    for name, learn in (("segmenter", cascade.seg_learn), ("symmetry", cascade.sym_learn)):
        for (key, mine), theirs in zip(learn.model.state_dict().items(), nets[name].state_dict().values()):
            assert torch.equal(mine.cpu(), theirs), f"{name}/{key} is not the record's weight"
    assert all(str(cache / "hair") in p for p in ds.df["path"])  # hair-free copies, as the run's training images
    assert set(ds.df["image_id"]) <= set(cascade.cams)
    # the same maps the notebook's evaluate_external path makes with these two networks
    _, again = cascade_on(saved.test_set(synthetic_dir, model_inputs=False), cfg, cascade.seg_learn,
                          cascade.sym_learn, tmp_path / "again", tmp_path / "again.npz")
    some = list(again)[:5]
    assert all(np.array_equal(again[k], cascade.cams[k]) for k in some)
    ev = saved.evaluation(ds)
    assert [v.key for v in ev.variants][:2] == ["with_cam", "without_cam"]


def test_a_record_without_its_symmetry_net_is_named(tmp_path: Path, synthetic_dir: Path, cache: Path) -> None:
    run, _, _ = _record(tmp_path, synthetic_dir)
    (run / "model_symmetry.json").unlink()
    with pytest.raises(RunLoadError, match="model_symmetry.json"):
        load_run(run).test_set(synthetic_dir)
    (run / "model_symmetry.json").write_text(json.dumps({"classes": ["symmetric", "asymmetric"]}))
    (run / "model_segmenter.pth").unlink()
    with pytest.raises(FileNotFoundError, match="segmenter"):
        load_run(run).test_set(synthetic_dir)


@pytest.mark.parametrize("recorded, mean", [(None, (0.485, 0.456, 0.406)), ("weights", (0.5, 0.5, 0.5))])
def test_the_segmenter_gets_the_normalisation_it_trained_with(tmp_path: Path, synthetic_dir: Path, cache: Path,
                                                              recorded, mean) -> None:
    """A record from before seg_norm existed trained its segmenter on ImageNet-normalised inputs: it keeps them,
    whatever today's default; a newer record says which in model_segmenter.json."""
    run, _, _ = _record(tmp_path, synthetic_dir)
    if recorded:
        (run / "model_segmenter.json").write_text(json.dumps({"kwargs": {"input_norm": recorded}}))
    saved = load_run(run)
    saved.test_set(synthetic_dir)
    seg = saved.parts["cascade"].seg_learn
    assert tuple(seg.model.default_cfg["mean"]) == pytest.approx(mean)
    norm = [t for t in seg.dls.after_batch.fs if type(t).__name__ == "Normalize"][0]
    assert norm.mean.flatten().tolist() == pytest.approx(list(mean))
