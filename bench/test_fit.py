"""Fits: full-batch gd, one shuffled SGD epoch (vs scikit-learn's SGDRegressor),
mini-batch Adam, degree-3 polynomial to np.polyfit accuracy, the 11-point fit."""

import pytest

from conftest import cases_of, run_case


@pytest.mark.parametrize("prob, case", cases_of("fit"))
def test_fit(benchmark, data, prob, case):
    run_case(benchmark, data, prob, case)
