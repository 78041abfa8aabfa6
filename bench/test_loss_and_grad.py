"""loss_and_grad on P (mse, huber; float64, float32): every backend, the compiled
kernels alone, and a read-bandwidth probe over the same bytes."""

import pytest

from conftest import cases_of, run_case


@pytest.mark.parametrize("prob, case", cases_of("loss_and_grad"))
def test_loss_and_grad(benchmark, data, prob, case):
    run_case(benchmark, data, prob, case)
