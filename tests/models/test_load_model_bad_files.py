"""Bad input, round three (issue 31): a saved model whose model.json holds an unknown keyword or a non-integer
num_classes, or whose model.pth holds something other than a state_dict, is refused naming the file, not with a
raw TypeError from deep inside a constructor or load_state_dict."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lesionkit.models import create_model, load_model, model_spec
from lesionkit.records.runs import Run


def saved(tmp_path: Path) -> Path:
    Run(dir=tmp_path, notebook="t").save_model(create_model("arl_resnet18", num_classes=2),
                                               spec=model_spec(create_model("arl_resnet18", num_classes=2)))
    return tmp_path


def edit_spec(run_dir: Path, **kwargs: object) -> None:
    spec = json.loads((run_dir / "model.json").read_text())
    spec["kwargs"].update(kwargs)
    (run_dir / "model.json").write_text(json.dumps(spec))


def test_an_unknown_keyword_in_model_json_names_the_file(tmp_path):
    edit_spec(saved(tmp_path), bogus=1)
    with pytest.raises(ValueError, match=r"model.json'?: its kwargs .*bogus.* do not build arl_resnet18"):
        load_model(tmp_path)


@pytest.mark.parametrize("value", ["2", 2.5, True, 0])
def test_a_num_classes_that_is_no_positive_integer_names_the_file(tmp_path, value):
    edit_spec(saved(tmp_path), num_classes=value)
    with pytest.raises(ValueError, match=rf"model.json'?: num_classes={value!r} must be a positive whole number"):
        load_model(tmp_path)


def test_a_pth_holding_a_list_names_the_file(tmp_path):
    torch.save([torch.zeros(2)], saved(tmp_path) / "model.pth")
    with pytest.raises(ValueError, match=r"model.pth'? holds a list, not a state_dict"):
        load_model(tmp_path)


def test_a_good_file_still_loads(tmp_path):
    assert load_model(saved(tmp_path)).num_classes == 2
