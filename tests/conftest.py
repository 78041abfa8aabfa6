"""Shared fixtures: the backends under test and small reference problems."""

import threading

import numpy as np
import pytest

import fastgd
from fastgd.backends import backend_names

AVAILABLE = fastgd.available_backends()
COMPILED = [b for b in ("numba", "cython") if b in AVAILABLE]


def pytest_report_header(config):
    return f"fastgd backends available: {AVAILABLE}"


@pytest.fixture(params=AVAILABLE)
def backend(request):
    return request.param


@pytest.fixture(
    params=COMPILED or [pytest.param("none", marks=pytest.mark.skip("no compiled backend"))]
)
def compiled(request):
    return request.param


def small_linear(n=60, p=3, dtype=np.float64, seed=0, outliers=0.0):
    X, y, coef, b = fastgd.datasets.make_linear(
        n, p, noise=0.3, outliers=outliers, seed=seed, dtype=dtype
    )
    return X, y, coef, b


def small_poly(n=60, degree=3, dtype=np.float64, seed=0):
    x, y, coef, b = fastgd.datasets.make_polynomial(n, degree, noise=0.1, seed=seed, dtype=dtype)
    # stretch x beyond [-1, 1] so the internal rescaling is exercised
    return (x * 2.5).astype(dtype), y, coef, b


def run_concurrently(jobs):
    """Run ``jobs`` (callables) in threads started together; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    out = [None] * len(jobs)
    errors = []

    def worker(k):
        try:
            barrier.wait()
            out[k] = jobs[k]()
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


__all__ = [
    "AVAILABLE",
    "COMPILED",
    "backend_names",
    "small_linear",
    "small_poly",
    "run_concurrently",
]
