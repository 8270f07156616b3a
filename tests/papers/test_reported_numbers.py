"""The papers' reported numbers and the comparison table every paper notebook ends with."""
from __future__ import annotations

import math

import pytest

from lesionkit.papers.reported import HEADLINE, REPORTED, TABLE_COLUMNS, comparison_table, reported


def test_every_paper_has_numbers_and_a_headline_row() -> None:
    for paper in ("patch_attention", "arl", "attention_b3", "first_place", "multimodal", "se_lcn"):
        rows = reported(paper)
        assert rows, paper
        assert HEADLINE[paper] in {r.model for r in rows}, paper
        assert all(r.reported_on and r.source for r in rows), paper


def test_anchors_match_the_specs() -> None:
    sge = {r.metric: r.value for r in reported("attention_b3", "SGE-B3")}
    assert sge["auc"] == 0.815 and sge["ap"] == 0.537 and sge["spec_at_sens95"] == 0.146
    arl_code = {r.metric: r.value for r in reported("arl", "ARL-CNN50 (Vipermdl code)")}
    assert arl_code == {"auc": 0.8729, "accuracy": 0.850, "sensitivity": 0.4872, "specificity": 0.9379}
    selcn = {r.metric: (r.value, r.std) for r in reported("se_lcn", "SE-LCN (none_lae)")}
    assert selcn["balanced_accuracy"] == (0.824, 0.005)


def test_unverified_numbers_are_flagged() -> None:
    paper_rows = [r for r in reported("arl", "ARL-CNN50") if r.metric != "params"]
    assert len(paper_rows) == 4 and not any(r.verified for r in paper_rows)  # [paper?] in the spec
    assert all(r.verified for r in reported("arl", "ARL-CNN50 (Vipermdl code)"))


def test_bare_metric_matches_every_row_of_that_metric() -> None:
    t = comparison_table("arl", {"auc": 0.7}, "synthetic 64 px", include_unreported=False)
    assert list(t.columns) == list(TABLE_COLUMNS)
    auc = t[t.metric == "auc"]
    assert len(auc) == 4 and (auc.ours == 0.7).all()
    assert t[t.metric == "sensitivity"].ours.isna().all()
    assert (t.ours_on == "synthetic 64 px").all()


def test_model_prefixed_keys_pick_their_row() -> None:
    ours = {"sge/auc": 0.6, "s2/auc": 0.5}
    t = comparison_table("attention_b3", ours, "x", model_keys={"SGE-B3": "sge", "S2-MLP-B3": "s2"},
                         include_unreported=False)
    got = dict(zip(t[t.metric == "auc"].model, t[t.metric == "auc"].ours))
    assert got["SGE-B3"] == 0.6 and got["S2-MLP-B3"] == 0.5 and math.isnan(got["Spatial-B3"])


def test_unreported_metrics_are_listed_without_a_reported_value() -> None:
    t = comparison_table("patch_attention", {"balanced_accuracy": 0.5, "kappa": 0.3}, "x")
    extra = t[t.metric == "kappa"]
    assert len(extra) == 1 and extra.ours.iloc[0] == 0.3 and math.isnan(extra.reported.iloc[0])
    assert extra.reported_on.iloc[0] == "not reported"


def test_model_filter_and_unknown_names() -> None:
    assert set(comparison_table("arl", {}, "x", model="ResNet-50").model) == {"ResNet-50"}
    with pytest.raises(KeyError, match="choose one of"):
        comparison_table("arll", {}, "x")
    with pytest.raises(KeyError, match="its models are"):
        reported("arl", "ARL-CNN18")


def test_registry_is_not_mutated_by_tables() -> None:
    before = len(REPORTED["arl"])
    comparison_table("arl", {"auc": 1.0, "other": 2.0}, "x")
    assert len(REPORTED["arl"]) == before


def test_patch_attention_lists_only_gessert_et_als_own_numbers() -> None:
    """methods-a §1.6: the abstract's +7 % (patch attention) and +3 % (diagnosis-guided weighting) mean sensitivity;
    the ISIC 2018/2019 challenge entries are other papers and not listed."""
    rows = reported("patch_attention")
    assert {(r.metric, r.value) for r in rows} == {("balanced_accuracy_gain_patch_attention", 0.07),
                                                   ("balanced_accuracy_gain_dx_weighting", 0.03)}
    assert all(r.verified and "abstract" in r.source and "HAM10000" in r.reported_on for r in rows)
