"""1st-place metadata encoding: feature order, train-only fitting, explicit missing values, JSON round trip;
Shades-of-Gray colour constancy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lesionkit.data.colour import shades_of_gray
from lesionkit.data.metadata import MetaEncoder


def _df(**over) -> pd.DataFrame:
    d = pd.DataFrame({"sex": ["male", "female", np.nan, "male"], "age": [45.0, np.nan, 90.0, 30.0],
                      "site": ["torso", "head/neck", np.nan, "torso"], "patient_id": ["A", "A", "B", np.nan],
                      "path": ["x", "y", "z", "w"]})
    for k, v in over.items():
        d[k] = v
    return d


def test_first_place_features_in_order():
    enc = MetaEncoder().fit(_df())
    assert enc.feature_names == ["sex", "age", "site_head/neck", "site_torso", "site_nan"]
    f = enc.transform(_df())
    assert f.dtype == np.float32 and np.isfinite(f).all()
    np.testing.assert_allclose(f[:, 0], [1, 0, -1, 1])
    np.testing.assert_allclose(f[:, 1], [0.5, 0, 1, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(f[:, 2:], [[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_optional_leaky_features(tmp_path):
    paths = []
    for i, n in enumerate((10, 100, 1000, 10)):
        p = tmp_path / f"{i}.bin"
        p.write_bytes(b"x" * n)
        paths.append(str(p))
    enc = MetaEncoder(use_n_images=True, use_image_size=True).fit(_df(path=paths))
    assert enc.feature_names[:4] == ["sex", "age", "n_images", "image_size"]
    f = enc.transform(_df(path=paths))
    np.testing.assert_allclose(f[:, 2], np.log1p([2, 2, 1, 1]), rtol=1e-6)       # missing patient counts 1
    np.testing.assert_allclose(f[:, 3], np.log([10, 100, 1000, 10]), rtol=1e-6)


def test_sites_fitted_on_train_only_and_unseen_site_is_zero():
    enc = MetaEncoder().fit(_df().iloc[:2])
    assert enc.sites == ["head/neck", "torso"]
    test = _df(site=["palms/soles", "torso", np.nan, "oral/genital"])
    f = enc.transform(test)
    np.testing.assert_allclose(f[:, 2:], [[0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])


def test_impute_mode_uses_training_statistics():
    enc = MetaEncoder(missing="impute").fit(_df())
    f = enc.transform(_df())
    assert f[1, 1] == pytest.approx(45.0 / 90) and f[2, 0] == 1.0      # median age 45, modal sex male


def test_json_round_trip(tmp_path):
    enc = MetaEncoder(use_n_images=True, missing="impute").fit(_df())
    back = MetaEncoder.load(enc.save(tmp_path / "meta.json"))
    assert back == enc and np.array_equal(back.transform(_df()), enc.transform(_df()))
    with pytest.raises(RuntimeError, match="before fit"):
        MetaEncoder().transform(_df())


def test_shades_of_gray_removes_a_colour_cast():
    rng = np.random.default_rng(0)
    grey = rng.integers(60, 200, (32, 32, 1)).repeat(3, 2).astype(np.float32)
    cast = np.clip(grey * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    out = shades_of_gray(cast, p=6).astype(float)
    ratios = out.reshape(-1, 3).mean(0)
    before = cast.reshape(-1, 3).mean(0)
    assert ratios.max() / ratios.min() < 1.05 and before.max() / before.min() > 1.5
    assert shades_of_gray(np.zeros((4, 4, 3), np.uint8)).sum() == 0
    assert math.isclose(float(shades_of_gray(np.full((4, 4, 3), 128, np.uint8)).mean()), 128, abs_tol=1)


def test_ham_unknown_site_is_missing_not_a_category():
    # HAM10000's localization is 'unknown' where it was not recorded: the same column as an empty cell (spec)
    enc = MetaEncoder().fit(_df(site=["torso", "unknown", np.nan, " Unknown "]))
    assert enc.sites == ["torso"]
    x = enc.transform(_df(site=["torso", "unknown", np.nan, " Unknown "]))
    assert x[:, enc.feature_names.index("site_nan")].tolist() == [0.0, 1.0, 1.0, 1.0]
