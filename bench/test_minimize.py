"""minimize on the Rosenbrock function: a plain Python gradient and a numba-jitted one."""

import pytest

from conftest import cases_of, run_case


@pytest.mark.parametrize("prob, case", cases_of("minimize"))
def test_minimize(benchmark, data, prob, case):
    run_case(benchmark, data, prob, case)
