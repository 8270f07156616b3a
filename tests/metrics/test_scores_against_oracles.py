"""lesionkit.metrics against oracles: isic-challenge-scoring's DataFrame API (hypothesis, ties included), the official
ISIC 2024 pAUC code (copied below, not into the library), the Kaggle closed form, and hand-computed values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics as skm
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lesionkit import metrics as M

isic = pytest.importorskip("isic_challenge_scoring")
# derandomized: the same 60 cases on every run, so CI never goes red on a case nobody has seen before
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def official_p_auc_tpr(v_gt, v_pred, min_tpr=None, sample_weight=None):
    """ISIC-Research/Challenge-2024-Metrics PrimaryMetric-pAUC.py::p_auc_tpr (N. Kurtansky, MSKCC), verbatim logic."""
    if len(np.unique(v_gt)) != 2:
        raise ValueError("Only one class present in y_true. ROC AUC score is not defined in that case.")
    v_gt = abs(np.asarray(v_gt) - 1)
    v_pred = abs(np.asarray(v_pred) - 1)
    max_fpr = abs(1 - min_tpr)
    fpr, tpr, _ = skm.roc_curve(v_gt, v_pred, sample_weight=sample_weight)
    if max_fpr is None or max_fpr == 1:
        return skm.auc(fpr, tpr)
    if max_fpr <= 0 or max_fpr > 1:
        raise ValueError("Expected min_tpr in range [0, 1), got: %r" % min_tpr)
    stop = np.searchsorted(fpr, max_fpr, "right")
    x_interp = [fpr[stop - 1], fpr[stop]]
    y_interp = [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr = np.append(fpr[:stop], max_fpr)
    return skm.auc(fpr, tpr)


def kaggle_pauc(y, s, min_tpr=0.80):
    """The ISIC 2024 Kaggle notebook form: McClish-standardised sklearn pAUC, un-standardised."""
    m = 1 - min_tpr
    scaled = skm.roc_auc_score(np.abs(np.asarray(y) - 1), 1 - np.asarray(s), max_fpr=m)
    return 0.5 * m**2 + (m - 0.5 * m**2) / (1.0 - 0.5) * (scaled - 0.5)


@st.composite
def multiclass_case(draw):
    """Labels with every class present, and scores on a coarse grid (many ties) or continuous."""
    k = draw(st.integers(2, 5))
    n = draw(st.integers(k + 1, 40))
    labels = np.array(list(range(k)) + draw(st.lists(st.integers(0, k - 1), min_size=n - k, max_size=n - k)))
    labels = np.array(draw(st.permutations(labels.tolist())))
    if draw(st.booleans()):
        grid = draw(st.integers(1, 4))
        cells = draw(st.lists(st.integers(0, grid), min_size=n * k, max_size=n * k))
        probs = np.array(cells, dtype=np.float64).reshape(n, k) / grid
    else:
        cells = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=n * k, max_size=n * k))
        probs = np.array(cells, dtype=np.float64).reshape(n, k)
    return labels, probs


def scorer(labels: np.ndarray, probs: np.ndarray):
    cats = [f"C{i}" for i in range(probs.shape[1])]
    ids = [f"ISIC_{i:07d}" for i in range(len(labels))]
    truth = pd.DataFrame(np.eye(len(cats))[labels], index=ids, columns=cats)
    pred = pd.DataFrame(probs, index=ids, columns=cats)
    weights = pd.DataFrame({"score_weight": 1.0, "validation_weight": 1.0}, index=ids)
    return isic.ClassificationScore(truth, pred, weights, isic.ClassificationMetric.BALANCED_ACCURACY)


@SETTINGS
@given(multiclass_case())
def test_bma_auc_ap_equal_official_scorer(case):
    labels, probs = case
    score = scorer(labels, probs)
    assert M.balanced_accuracy(labels, probs) == pytest.approx(score.aggregate["balanced_accuracy"], abs=1e-9)
    aucs, auc_macro = M.auc_ovr(labels, probs)
    aps, ap_macro = M.ap_ovr(labels, probs)
    np.testing.assert_allclose(aucs, score.per_category["auc"].to_numpy(), atol=1e-9)
    np.testing.assert_allclose(aps, score.per_category["ap"].to_numpy(), atol=1e-9)
    assert auc_macro == pytest.approx(score.macro_average["auc"], abs=1e-9)
    assert ap_macro == pytest.approx(score.macro_average["ap"], abs=1e-9)
    for k in range(probs.shape[1]):
        yk = (labels == k).astype(int)
        assert M.binary_auc(yk, probs[:, k]) == pytest.approx(score.per_category["auc"].iloc[k], abs=1e-9)
        assert M.average_precision(yk, probs[:, k]) == pytest.approx(score.per_category["ap"].iloc[k], abs=1e-9)
        assert M.auc_above_sensitivity(yk, probs[:, k]) == pytest.approx(
            score.per_category["auc_sens_80"].iloc[k], abs=1e-9)


@st.composite
def binary_case(draw):
    n_pos = draw(st.integers(1, 25))
    n_neg = draw(st.integers(1, 25))
    y = np.array([1] * n_pos + [0] * n_neg)
    if draw(st.booleans()):
        s = np.array(draw(st.lists(st.integers(0, 6), min_size=len(y), max_size=len(y))), dtype=float) / 6
    else:
        s = np.array(draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=len(y), max_size=len(y))))
    return y, s


@SETTINGS
@given(binary_case(), st.sampled_from([0.8, 0.5, 0.9, 0.3]))
def test_pauc_equals_official_isic2024_formula(case, min_tpr):
    y, s = case
    ours = M.pauc_above_tpr(y, s, min_tpr)
    assert ours == pytest.approx(official_p_auc_tpr(y, s, min_tpr), abs=1e-9)
    assert 0.0 <= ours <= 1 - min_tpr + 1e-12


@SETTINGS
@given(binary_case())
def test_pauc_equals_kaggle_closed_form_and_differs_from_auc_sens_80(case):
    y, s = case
    assert M.pauc_above_tpr(y, s) == pytest.approx(kaggle_pauc(y, s), abs=1e-9)
    # the live scorer's auc_sens_80 includes the rectangle under TPR 0.8, so it is never smaller, for the same
    # ranking: the official pAUC ranks 1 - s, which merges scores closer than float spacing near 1 (0 and 1e-19)
    assume(len(np.unique(s)) == len(np.unique(s - 1.0)))
    assert M.auc_above_sensitivity(y, s, 0.8) >= M.pauc_above_tpr(y, s, 0.8) - 1e-12


def test_pauc_known_values():
    y = np.array([0, 0, 1, 1])
    assert M.pauc_above_tpr(y, [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.2)  # perfect ranking: the whole band
    assert M.pauc_above_tpr(y, [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)  # inverted: nothing above TPR 0.8
    assert M.pauc_above_tpr(y, [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5 * 0.2 * 0.2)  # chance diagonal


def test_ties_count_as_wrong_like_isic():
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])
    y = np.array([0, 1, 2, 0])
    assert M.predict_labels(probs).tolist() == [M.UNDECIDED, 1, 2, M.UNDECIDED]
    assert M.balanced_accuracy(y, probs) == pytest.approx((0 + 1 + 1) / 3)
    assert M.balanced_accuracy(y, probs, ties="first") == pytest.approx(1.0)
    assert M.accuracy(y, probs) == pytest.approx(0.5)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_bma_skips_classes_absent_from_truth_and_equals_sklearn_without_ties():
    rng = np.random.default_rng(0)
    probs = rng.random((50, 4))
    y = rng.integers(0, 3, 50)  # class 3 never true
    expected = skm.balanced_accuracy_score(y, probs.argmax(1))
    assert M.balanced_accuracy(y, probs) == pytest.approx(expected, abs=1e-12)
    assert M.balanced_accuracy_labels(y, probs.argmax(1), 4) == pytest.approx(expected, abs=1e-12)


def test_f1_kappa_confusion_hand_values():
    y = np.array([0, 0, 0, 1, 1, 2])
    yp = np.array([0, 0, 1, 1, 2, 2])
    # per class F1: c0 2*1*(2/3)/(1+2/3)=0.8, c1 0.5, c2 2/3
    assert M.f1(y, yp, average="macro") == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert M.f1(y, yp, average="weighted") == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    # Gessert's swapped call weights by predicted support (2, 2, 2)
    assert M.f1(y, yp, support="predicted") == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert M.cohen_kappa(y, yp) == pytest.approx(skm.cohen_kappa_score(y, yp))
    cm = M.confusion_matrix(y, yp, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    norm = M.confusion_matrix(y, yp, 3, normalize="true")
    assert np.diag(norm).mean() == pytest.approx(M.balanced_accuracy_labels(y, yp, 3))
    sens, spec = M.per_class_sens_spec(y, yp, 3)
    np.testing.assert_allclose(sens, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(spec, [1.0, 3 / 4, 4 / 5])


def test_undecided_rows_stay_in_normalised_confusion_rows():
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    y = np.array([0, 0, 1])
    cm = M.confusion_matrix(y, M.predict_labels(probs), 2, normalize="true")
    assert cm.tolist() == [[0.5, 0.0], [0.0, 1.0]]


def test_sens_spec_at_threshold_inclusive_vs_isic_strict():
    y = np.array([1, 1, 0, 0])
    s = np.array([0.5, 0.9, 0.5, 0.1])
    assert M.sens_spec_at_threshold(y, s, 0.5) == (1.0, 0.5)
    assert M.sens_spec_at_threshold(y, s, 0.5, inclusive=False) == (0.5, 1.0)


def test_operating_point_at_sensitivity_rule():
    y = np.array([1] * 20 + [0] * 10)
    s = np.r_[np.linspace(0.3, 1.0, 20), np.linspace(0.0, 0.6, 10)]
    point = M.operating_point_at_sensitivity(y, s, 0.95)
    fpr, tpr, thr = skm.roc_curve(y, s)
    ok = tpr >= 0.95
    assert point.specificity == pytest.approx((1 - fpr[ok]).max())
    assert point.sensitivity >= 0.95
    pred = s >= point.threshold
    assert (np.mean(pred[y == 1]), np.mean(~pred[y == 0])) == pytest.approx((point.sensitivity, point.specificity))


def test_bootstrap_is_identical_for_the_same_seed_and_differs_across_seeds():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    a = M.bootstrap_operating_point(y, s, n_boot=200, seed=7)
    b = M.bootstrap_operating_point(y, s, n_boot=200, seed=7)
    c = M.bootstrap_operating_point(y, s, n_boot=200, seed=8)
    assert a == b
    assert a["specificity"].mean != c["specificity"].mean
    assert a["sensitivity"].mean >= 0.95 and a["sensitivity"].n_used == 200
    ci = M.bootstrap_metric(M.binary_auc, y, s, n_boot=100, seed=1)
    assert ci == M.bootstrap_metric(M.binary_auc, y, s, n_boot=100, seed=1)
    assert ci.ci_low < M.binary_auc(y, s) < ci.ci_high


def test_calibration_hand_values():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.6, 0.6])
    assert M.brier_score(y, p) == pytest.approx(np.mean([0.01, 0.01, 0.16, 0.36]))
    # 2 bins: [0, .5] holds 0.1 (truth 0): |0 - 0.1|; (.5, 1] holds 0.9, 0.6, 0.6 (truths 1, 1, 0): |2/3 - 0.7|
    assert M.expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.25 * 0.1 + 0.75 * abs(2 / 3 - 0.7))
    probs = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert M.brier_score([0, 0], probs) == pytest.approx(np.mean([0.09 + 0.09, 0.64 + 0.64]))
    curve = M.reliability_curve([0, 0], probs, n_bins=10)  # 0.7 -> (0.6, 0.7], 0.8 -> (0.7, 0.8]
    assert curve["count"].sum() == 2 and curve["accuracy"].dropna().tolist() == [1.0, 0.0]


def test_mean_std_and_fold_summary():
    assert M.mean_std([0.8, 0.82, 0.84]) == pytest.approx((0.82, np.std([0.8, 0.82, 0.84])))
    df = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "bma": [0.7, 0.8, 0.6, 0.6]})
    out = M.fold_summary(df, "model").set_index("model")
    assert out.loc["a", "bma_mean"] == pytest.approx(0.75) and out.loc["a", "bma_std"] == pytest.approx(0.05)
    assert "fold_mean" not in out.columns
    with pytest.raises(ValueError, match="NaN"):
        M.mean_std([0.1, float("nan")])


def test_reports_keys_match_the_contract():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30, int), np.ones(10, int)]
    s = np.clip(rng.random(40) * 0.6 + y * 0.4, 0, 1)
    rep = M.binary_report(y, s)
    assert tuple(rep) == M.BINARY_KEYS
    assert rep["auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert rep["f1_weighted"] == pytest.approx(skm.f1_score(y, s >= 0.5, average="weighted"))
    labels = np.r_[np.arange(4), rng.integers(0, 4, 36)]
    probs = rng.dirichlet(np.ones(4), 40)
    mrep = M.multiclass_report(np.array(["a", "b", "c", "d"])[labels], probs, ["a", "b", "c", "d"])
    assert tuple(mrep) == M.MULTICLASS_KEYS and set(mrep["per_class"]) == {"a", "b", "c", "d"}
    assert mrep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, probs.argmax(1)))
    assert mrep["kappa"] == pytest.approx(skm.cohen_kappa_score(labels, probs.argmax(1)))
    weighted = skm.f1_score(labels, probs.argmax(1), average="weighted")  # Gessert et al.'s F1
    assert mrep["f1_weighted"] == pytest.approx(weighted) and weighted != pytest.approx(mrep["f1_macro"])
    with pytest.raises(ValueError, match="not in classes"):
        M.multiclass_report(["a", "zz"], probs[:2], ["a", "b", "c", "d"])


def test_bad_array_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="both classes"):
        M.binary_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        M.binary_auc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="shape"):
        M.balanced_accuracy([0, 1], np.ones((3, 2)))
    with pytest.raises(ValueError, match="outside 0..1"):
        M.balanced_accuracy([0, 2], np.ones((2, 2)))
