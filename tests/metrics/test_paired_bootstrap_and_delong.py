"""lesionkit.metrics.paired: paired/clustered bootstrap, DeLong, p-value adjustment and the comparison table."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from lesionkit.metrics import balanced_accuracy, binary_auc
from lesionkit.metrics.paired import (
    COLUMNS,
    adjust_pvalues,
    compare_to_reference,
    delong_test,
    midrank_auc,
    paired_bootstrap,
)


def _pushed(y: np.ndarray, a: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """B = A with a fraction of the positives' scores pushed below every negative; returns (B, pushed mask)."""
    pos = np.flatnonzero(y == 1)
    pushed = np.zeros(len(y), dtype=bool)
    pushed[rng.choice(pos, size=int(round(frac * len(pos))), replace=False)] = True
    b = a.copy()
    b[pushed] = a.min() - 1.0 - rng.random(pushed.sum())
    return b, pushed


def test_interval_covers_an_exactly_known_difference_and_excludes_zero():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200, int), np.zeros(300, int)]
    a = np.where(y == 1, 1.0, 0.0) + rng.random(500) * 0.5  # perfect ranking: AUC 1
    b, _ = _pushed(y, a, 0.2, rng)  # 20 % of positives below all negatives: AUC exactly 0.8
    assert roc_auc_score(y, b) == pytest.approx(0.8)
    r = paired_bootstrap(midrank_auc, y, a, b, n_boot=500, seed=1)
    assert r.estimate == pytest.approx(0.2)
    assert r.ci_low <= 0.2 <= r.ci_high
    assert r.ci_low > 0 and r.p_value < 0.01 and r.n_used == 500 and r.level == 0.95


def test_interval_covers_the_difference_with_noisy_scores():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 600)
    a = y + rng.normal(size=600)
    b, pushed = _pushed(y, a, 0.15, rng)
    neg = a[y == 0]  # each pushed positive loses exactly the negatives it used to outrank
    lost = sum(np.sum(neg < a[i]) + 0.5 * np.sum(neg == a[i]) for i in np.flatnonzero(pushed))
    exact = lost / ((y == 1).sum() * (y == 0).sum())
    r = paired_bootstrap(binary_auc, y, a, b, n_boot=300, seed=0)
    assert r.estimate == pytest.approx(exact)
    assert r.ci_low <= exact <= r.ci_high and r.ci_low > 0


def test_identical_models_give_zero_difference_and_p_one():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    a = y + rng.normal(size=200)
    r = paired_bootstrap(binary_auc, y, a, a.copy(), n_boot=200)
    assert r.estimate == 0 and r.ci_low <= 0 <= r.ci_high and r.p_value == 1.0
    assert r.to_dict()["p_value"] == 1.0


def test_deterministic_for_a_seed_and_level_widens_the_interval():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    a, b = y + rng.normal(size=300), y + 1.5 * rng.normal(size=300)
    r1, r2 = (paired_bootstrap(midrank_auc, y, a, b, n_boot=300, seed=7) for _ in range(2))
    assert r1 == r2
    assert paired_bootstrap(midrank_auc, y, a, b, n_boot=300, seed=8) != r1
    wide = paired_bootstrap(midrank_auc, y, a, b, n_boot=300, seed=7, level=0.99)
    assert wide.ci_low <= r1.ci_low and wide.ci_high >= r1.ci_high


def test_groups_are_resampled_whole_and_paired():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 5, 40)
    groups = np.repeat([f"L{i}" for i in range(40)], sizes)
    rng.shuffle(groups)  # rows of a lesion are not adjacent
    n = len(groups)
    seen: list[np.ndarray] = []

    def record(y, p):
        seen.append(np.asarray(p, dtype=int))
        return float(len(p))

    rows = np.arange(n)
    r = paired_bootstrap(record, np.zeros(n), rows, rows, groups=groups, n_boot=50, seed=0)
    assert r.n_used == 50 and len(seen) == 2 + 2 * 50
    members = {g: set(np.flatnonzero(groups == g)) for g in set(groups)}
    for a_rows, b_rows in zip(seen[2::2], seen[3::2]):
        assert np.array_equal(a_rows, b_rows)  # paired: both models see the same rows
        drawn = 0
        for g, rows_g in members.items():
            hits = a_rows[np.isin(a_rows, list(rows_g))]
            k, rem = divmod(len(hits), len(rows_g))
            assert rem == 0 and all(np.sum(hits == i) == k for i in rows_g)  # whole lesions, k copies each
            drawn += k
        assert drawn == 40  # as many lesions drawn as there are


def test_undefined_resamples_are_skipped_and_counted():
    y = np.r_[1, np.zeros(9, int)]
    s = np.linspace(1, 0, 10)
    r = paired_bootstrap(binary_auc, y, s, s[::-1].copy(), n_boot=400, seed=0)
    rng = np.random.default_rng(0)
    expected = sum(y[rng.integers(0, 10, 10)].any() for _ in range(400))
    assert 0 < r.n_used == expected < 400
    never = paired_bootstrap(lambda y, p: float("nan"), y, s, s, n_boot=20)
    assert never.n_used == 0 and np.isnan(never.ci_low) and np.isnan(never.p_value)


def test_row_count_mismatch_raises():
    with pytest.raises(ValueError, match="probs_b has 3 rows"):
        paired_bootstrap(binary_auc, np.array([0, 1, 0, 1]), np.zeros(4), np.zeros(3))


def test_bootstrap_of_a_1000_row_auc_is_fast():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 1000)
    a, b = y + rng.normal(size=1000), y + rng.normal(size=1000)
    start = time.perf_counter()
    paired_bootstrap(midrank_auc, y, a, b, groups=rng.integers(0, 400, 1000), n_boot=1000)
    assert time.perf_counter() - start < 5.0


def _delong_brute(y, a, b):
    """O(N^2) structural components (DeLong 1988): psi = 1, 1/2, 0 for x > z, x == z, x < z."""
    out = []
    for s in (a, b):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        out.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
    (auc_a, v10a, v01a), (auc_b, v10b, v01b) = out
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    cov = s10 / len(v10a) + s01 / len(v01a)
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return auc_a, auc_b, se


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_the_brute_force_structural_components_with_ties(seed):
    from scipy import stats

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    a = np.round(y * 0.8 + rng.normal(size=150), 1)  # rounding makes many ties
    b = np.round(y * 0.5 + rng.normal(size=150), 1)
    r = delong_test(y, a, b)
    auc_a, auc_b, se = _delong_brute(y, a, b)
    z = (auc_a - auc_b) / se
    assert r.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert abs(r.auc_a - auc_a) < 1e-12 and abs(r.auc_b - auc_b) < 1e-12
    assert abs(r.se - se) < 1e-8 and abs(r.z - z) < 1e-8
    assert abs(r.p_value - 2 * stats.norm.sf(abs(z))) < 1e-8
    assert r.ci_low < r.diff < r.ci_high
    assert r.ci_high - r.diff == pytest.approx(stats.norm.ppf(0.975) * se)


def test_delong_identical_scores_and_missing_class():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.8])
    r = delong_test(y, s, s)
    assert r.se == 0 and r.z == 0 and r.p_value == 1.0 and r.diff == 0
    with pytest.raises(ValueError, match="both classes"):
        delong_test(np.ones(5, int), s, s[::-1])
    with pytest.raises(ValueError, match="binary"):
        delong_test(np.array([0, 1, 2, 1, 0]), s, s)


def test_midrank_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)
    assert midrank_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(ValueError):
        midrank_auc(np.zeros(4), s[:4])


def test_adjust_pvalues_known_values_and_nan_passthrough():
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04, 0.03], "bonferroni"), [0.03, 0.12, 0.09])
    bh = adjust_pvalues([0.005, 0.011, 0.02, 0.04, 0.13], "fdr_bh")
    np.testing.assert_allclose(bh, [0.025, 0.0275, 0.02 * 5 / 3, 0.05, 0.13])
    np.testing.assert_allclose(adjust_pvalues([0.04, 0.01, 0.02, 0.03], "fdr_bh"), [0.04, 0.04, 0.04, 0.04])
    np.testing.assert_allclose(adjust_pvalues([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues([0.5, 0.9], "holm"), [1.0, 1.0])
    np.testing.assert_allclose(adjust_pvalues([0.2, np.nan], "none"), [0.2, np.nan])
    assert adjust_pvalues([np.nan, np.nan]).shape == (2,)
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_pvalues([0.1], "sidak_typo")


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_adjust_pvalues_matches_statsmodels(method):
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(0).random(30) ** 3
    np.testing.assert_allclose(adjust_pvalues(p, method), multipletests(p, method=method)[1], atol=1e-12)


MEL = 1


@pytest.fixture(scope="module")
def three_models():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 240)
    groups = np.arange(240) // 2  # two images per lesion

    def model(strength):
        logits = rng.normal(size=(240, 3)) + strength * np.eye(3)[y]
        return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)

    return y, groups, {"ref": model(1.0), "a": model(2.5), "b": model(1.0)}


METRICS = {"bma": balanced_accuracy, "mel_auc": lambda y, p: binary_auc((y == MEL).astype(int), p[:, MEL])}


def test_compare_to_reference_table(three_models):
    y, groups, probs = three_models
    auc = dict(auc_scores=lambda p: p[:, MEL], auc_metric="mel_auc", auc_y=(y == MEL).astype(int))
    clustered = compare_to_reference(y, probs, "ref", METRICS, groups=groups, n_boot=200, seed=3, **auc)
    assert (clustered["test"] == "paired bootstrap").all()  # several rows per group: DeLong's independence fails
    groups = None
    t = compare_to_reference(y, probs, "ref", METRICS, groups=groups, n_boot=200, seed=3, **auc)
    assert list(t.columns) == COLUMNS and len(t) == (3 - 1) * 2
    assert set(t["entry"]) == {"a", "b"} and set(t["reference"]) == {"ref"}
    # Bonferroni-simultaneous: each interval is at the HIGHER level 1 - 0.05 / m (wider), not below 0.95
    assert np.allclose(t["ci_level"], 1 - 0.05 / 4) and (t["ci_level"] > 0.95).all()
    auc_rows = t[t["metric"] == "mel_auc"]
    assert (auc_rows["test"] == "DeLong").all() and (t[t["metric"] == "bma"]["test"] == "paired bootstrap").all()
    row = auc_rows.set_index("entry").loc["a"]
    direct = delong_test((y == MEL).astype(int), probs["a"][:, MEL], probs["ref"][:, MEL])
    assert row["p_value"] == pytest.approx(direct.p_value) and row["diff"] == pytest.approx(direct.diff)
    boot = paired_bootstrap(METRICS["mel_auc"], y, probs["a"], probs["ref"], groups, 200, 3, 1 - 0.05 / 4)
    assert (row["ci_low"], row["ci_high"]) == (boot.ci_low, boot.ci_high)  # same seed, simultaneous level
    np.testing.assert_allclose(t["p_adjusted"], adjust_pvalues(t["p_value"], "holm"))
    assert (t["significant"] == (t["p_adjusted"] < 0.05)).all()
    strong = t.set_index(["entry", "metric"]).loc[("a", "bma")]
    assert strong["diff"] > 0 and strong["significant"] and strong["value"] > strong["reference_value"]


def test_compare_to_reference_dict_reference_and_no_correction(three_models):
    y, _, probs = three_models
    t = compare_to_reference(y, probs, {"a": "ref", "b": "a", "ref": "ref"}, {"bma": balanced_accuracy},
                             n_boot=100, correction="none")
    assert list(zip(t["entry"], t["reference"])) == [("a", "ref"), ("b", "a")]
    assert (t["ci_level"] == 0.95).all() and (t["p_adjusted"] == t["p_value"]).all()
    empty = compare_to_reference(y, probs, {"ref": "ref"}, {"bma": balanced_accuracy}, n_boot=10)
    assert empty.empty and list(empty.columns) == COLUMNS


def test_compare_to_reference_rejects_bad_inputs(three_models):
    y, _, probs = three_models
    with pytest.raises(ValueError, match="'short'"):
        compare_to_reference(y, {**probs, "short": probs["a"][:-5]}, "ref", {"bma": balanced_accuracy})
    with pytest.raises(ValueError, match="missing"):
        compare_to_reference(y, probs, "missing", {"bma": balanced_accuracy})
    with pytest.raises(ValueError, match="auc_metric"):
        compare_to_reference(y, probs, "ref", {"bma": balanced_accuracy}, auc_scores=lambda p: p[:, 1])
    assert isinstance(compare_to_reference(y, probs, "ref", {"bma": balanced_accuracy}, n_boot=5), pd.DataFrame)
