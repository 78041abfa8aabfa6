"""Eight Python threads calling ``fit`` at once give exactly the sequential results.

Each thread fits its own problem (different data, seed, optimizer), so any
state shared by mistake between concurrent calls -- a module-level buffer, a
reduction scratch array, a non-thread-safe parallel layer -- shows up as a
wrong number or an abort.  All threads are released together by a barrier and
every problem is run twice concurrently.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgd

from .conftest import AVAILABLE, run_concurrently

N_THREADS = 8
OPTIMIZERS = ["gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "gd", "momentum"]


def _problem(i, n=3000):
    X, y, _, _ = fastgd.datasets.make_linear(
        n + 17 * i,
        4 + i % 3,
        noise=0.5,
        outliers=0.05,
        seed=100 + i,
        dtype=np.float32 if i % 4 == 3 else np.float64,
    )
    return X, y


SETTINGS = {
    "full-batch": lambda i: dict(
        optimizer=OPTIMIZERS[i],
        loss="huber" if i % 2 else "mse",
        max_iter=40,
        tol=0.0,
        l2=0.01 * i,
        lr="auto" if OPTIMIZERS[i] in ("gd", "momentum", "nesterov") else 0.05,
    ),
    "sgd": lambda i: dict(
        optimizer=OPTIMIZERS[i], batch_size=1, lr=0.001, max_iter=2, tol=0.0, seed=i
    ),
    "minibatch": lambda i: dict(
        optimizer=OPTIMIZERS[i],
        batch_size=32,
        lr=0.005,
        max_iter=4,
        tol=0.0,
        seed=i,
        record="params",
    ),
}


def _assert_identical(got, want):
    assert got.status == want.status and got.n_iter == want.n_iter
    np.testing.assert_array_equal(got.coef, want.coef)
    assert got.intercept == want.intercept
    np.testing.assert_array_equal(got.history.loss, want.history.loss)
    if want.history.params is not None:
        np.testing.assert_array_equal(got.history.params, want.history.params)


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("backend", AVAILABLE)
def test_concurrent_fits_equal_sequential(backend, setting):
    # big enough that compiled calls overlap; the per-sample Python loop of the
    # numpy reference gets fewer rows for SGD
    n = 3000 if (backend == "numpy" and setting == "sgd") else 30000
    problems = [_problem(i, n) for i in range(N_THREADS // 2)]
    kws = [dict(SETTINGS[setting](i), backend=backend) for i in range(N_THREADS // 2)]
    sequential = [fastgd.fit(*problems[i], **kws[i]) for i in range(len(problems))]
    # every problem twice, interleaved, all threads at once
    jobs = [
        (lambda i=i: fastgd.fit(*problems[i], **kws[i])) for i in list(range(len(problems))) * 2
    ]
    assert len(jobs) == N_THREADS
    results = run_concurrently(jobs)
    for k, res in enumerate(results):
        _assert_identical(res, sequential[k % len(problems)])


@pytest.mark.parametrize("backend", AVAILABLE)
def test_concurrent_same_problem_poly(backend):
    x, y, _, _ = fastgd.datasets.make_polynomial(2000 if backend == "numpy" else 20000, 4, seed=1)
    kw = dict(degree=4, backend=backend, max_iter=50, tol=0.0)
    want = fastgd.fit(x, y, **kw)
    want_sgd = fastgd.fit(x, y, batch_size=1, lr=0.01, seed=3, **{**kw, "max_iter": 2})
    jobs = [
        (lambda: fastgd.fit(x, y, **kw))
        if k % 2
        else (lambda: fastgd.fit(x, y, batch_size=1, lr=0.01, seed=3, **{**kw, "max_iter": 2}))
        for k in range(N_THREADS)
    ]
    for k, res in enumerate(run_concurrently(jobs)):
        _assert_identical(res, want if k % 2 else want_sgd)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_concurrent_loss_and_grad(backend):
    problems = [_problem(i) for i in range(N_THREADS)]
    coefs = [np.linspace(-1, 1, X.shape[1]).astype(X.dtype) for X, _ in problems]
    want = [
        fastgd.loss_and_grad(X, y, c, 0.5, loss="huber", backend=backend)
        for (X, y), c in zip(problems, coefs)
    ]
    jobs = [
        (
            lambda i=i: fastgd.loss_and_grad(
                *problems[i], coefs[i], 0.5, loss="huber", backend=backend
            )
        )
        for i in range(N_THREADS)
    ]
    for got, w in zip(run_concurrently(jobs), want):
        assert got[0] == w[0] and got[2] == w[2]
        np.testing.assert_array_equal(got[1], w[1])
