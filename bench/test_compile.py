"""The cold start of the numba backend: the first fit of a job in a fresh
process with an empty kernel cache (full scale only; seconds per job)."""

import pytest

from conftest import cases_of, run_case


@pytest.mark.parametrize("prob, case", cases_of("compile"))
def test_compile(benchmark, data, prob, case):
    run_case(benchmark, data, prob, case)
