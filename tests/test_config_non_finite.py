"""Bad input, round three (issue 31): NaN and infinities pass no number parameter (every comparison with NaN is
false, so a range check alone lets it through); the message names the parameter and the range."""
from __future__ import annotations

import pytest

from lesionkit.config import ConfigError
from lesionkit.papers.compare.recipe import CompareConfig
from lesionkit.papers.quickstart.recipe import QuickstartConfig


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["lr", "valid_frac", "test_frac"])
def test_non_finite_numbers_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=rf"parameter '{name}' = -?(nan|inf) is not a finite number; give a number "
                                          r"from [\d.e-]+ to [\d.]+"):
        QuickstartConfig.from_params({name: value})


def test_an_unbounded_float_refuses_them_too():
    with pytest.raises(ConfigError, match=r"parameter 'budget_seconds' = inf is not a finite number; give a number "
                                          r">= 0"):
        CompareConfig.from_params({"budget_seconds": "inf"})


@pytest.mark.parametrize("value", ["nan", "inf", float("inf")])
def test_an_integer_parameter_refuses_them_as_non_integers(value):
    with pytest.raises(ConfigError, match=r"parameter 'epochs': expected an integer"):
        QuickstartConfig.from_params({"epochs": value})
