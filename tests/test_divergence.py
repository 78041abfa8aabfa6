"""Divergence (overflow, NaN) is detected on every backend in the epoch it happens.

A diverged fit stops with ``status="diverged"``, ``converged=False``, the
last finite parameters (those at the start of the failing epoch), a
``DivergenceWarning`` suggesting a smaller ``lr`` -- never NaN or inf
coefficients returned as if fine.

The exact cases use one row ``x = 1, y = 0`` without intercept and plain
gradient descent with ``lr = 50.5``: each step multiplies the coefficient by
``1 - 2*lr = -100``, so after ``k`` steps it is ``(-100)**k`` and the
objective ``1e4**k``, which overflows float64 at ``k = 78``.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

import fastgd
from fastgd import DivergenceWarning

from .conftest import AVAILABLE, small_linear, small_poly


def _fit_diverging(backend, **kw):
    with pytest.warns(DivergenceWarning, match=r"diverged in epoch \d+ .*smaller lr"):
        res = fastgd.fit(backend=backend, **kw)
    return res


def _assert_clean_divergence(res):
    assert res.status == "diverged" and not res.converged
    assert np.isfinite(res.coef).all() and math.isfinite(res.intercept)
    assert not math.isnan(res.objective)
    assert np.isfinite(res.history.loss).all()
    if res.history.params is not None:
        assert np.isfinite(res.history.params).all()
        # the last recorded parameters are the ones returned (to rounding of the
        # polynomial basis change, done in float32 for the history)
        eps = np.finfo(res.coef.dtype).eps
        np.testing.assert_allclose(res.history.params[-1, :-1], res.coef, rtol=4 * eps)


def _powers(steps_per_epoch, dtype):
    """(epochs completed, last finite coef) of the x=1, y=0, lr=50.5 walk, in Python floats."""
    big = np.finfo(dtype).max
    theta, epoch = 1.0, 0
    while True:
        t = theta
        for _ in range(steps_per_epoch):
            t = t - 50.5 * (2.0 * t)
        if abs(t) > big or t * t > np.finfo(np.float64).max:  # objective summed in float64
            return epoch, theta
        theta, epoch = t, epoch + 1


@pytest.mark.parametrize("backend", AVAILABLE)
def test_full_batch_overflow_detected_in_its_epoch(backend):
    X, y = np.ones((1, 1)), np.zeros(1)
    res = _fit_diverging(
        backend,
        X=X,
        y=y,
        fit_intercept=False,
        coef_init=[1.0],
        lr=50.5,
        tol=0.0,
        max_iter=500,
        record="params",
    )
    want_epochs, want_coef = _powers(1, np.float64)
    assert want_epochs == 77
    assert res.n_iter == 77
    assert res.coef[0] == pytest.approx(want_coef, rel=1e-12)  # -1e154
    assert res.history.loss[-1] == pytest.approx(want_coef**2, rel=1e-12)
    assert len(res.history.loss) == 78
    _assert_clean_divergence(res)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_sgd_overflow_detected_in_its_epoch(backend):
    """Two rows, batch_size=1: two steps (x -100 each) per epoch; the objective overflows in epoch 39."""
    X, y = np.ones((2, 1)), np.zeros(2)
    res = _fit_diverging(
        backend,
        X=X,
        y=y,
        fit_intercept=False,
        coef_init=[1.0],
        lr=50.5,
        tol=0.0,
        max_iter=500,
        batch_size=1,
        seed=0,
        record="params",
    )
    assert res.n_iter == 38
    assert res.coef[0] == pytest.approx(1e152, rel=1e-12)
    _assert_clean_divergence(res)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_sgd_without_objective_stops_when_parameters_overflow(backend):
    """With ``record=None`` an SGD fit does not evaluate the objective per epoch
    (that is a full pass over X): divergence is then detected from the
    parameters, in the epoch they overflow, and the objective is reported as inf."""
    X, y = np.ones((2, 1)), np.zeros(2)
    res = _fit_diverging(
        backend,
        X=X,
        y=y,
        fit_intercept=False,
        coef_init=[1.0],
        lr=50.5,
        tol=0.0,
        max_iter=500,
        batch_size=1,
        seed=0,
        record=None,
    )
    assert res.n_iter == 77
    assert res.coef[0] == pytest.approx(1e308, rel=1e-12)
    assert res.objective == math.inf
    _assert_clean_divergence(res)


@pytest.mark.parametrize("batch_size", [None, 1])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_float32_divergence(backend, batch_size):
    n = 1 if batch_size is None else 2
    X, y = np.ones((n, 1), dtype=np.float32), np.zeros(n, dtype=np.float32)
    kw = dict(
        X=X,
        y=y,
        fit_intercept=False,
        coef_init=[1.0],
        lr=50.5,
        tol=0.0,
        max_iter=100,
        batch_size=batch_size,
        seed=0,
    )
    res = _fit_diverging(backend, **kw)
    ref = _fit_diverging("numpy", **kw)
    assert res.coef.dtype == np.float32
    assert res.n_iter == ref.n_iter
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-5)
    _assert_clean_divergence(res)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_nan_within_an_epoch_restores_the_epoch_start(backend):
    """Many SGD steps per epoch: the coefficient overflows to inf and then
    becomes NaN (inf - inf) inside the first epoch; the fit returns the start."""
    X, y = np.ones((400, 1)), np.zeros(400)
    res = _fit_diverging(
        backend,
        X=X,
        y=y,
        coef_init=[0.5],
        intercept_init=0.25,
        lr=50.5,
        batch_size=1,
        seed=0,
        max_iter=10,
        record="params",
    )
    assert res.n_iter == 0
    assert res.coef.tolist() == [0.5] and res.intercept == 0.25
    _assert_clean_divergence(res)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_non_finite_objective_at_the_start(backend):
    """A start whose objective already overflows: zero epochs, the start returned."""
    X, y = np.ones((3, 2)), np.zeros(3)
    res = _fit_diverging(backend, X=X, y=y, coef_init=[1e200, 0.0], max_iter=10)
    assert res.n_iter == 0 and res.coef.tolist() == [1e200, 0.0]
    assert res.objective == math.inf
    _assert_clean_divergence(res)


CASES = list(
    itertools.product(
        ["linear", "poly"], ["gd", "momentum", "nesterov"], [None, 1, 7], [np.float64, np.float32]
    )
)


@pytest.mark.parametrize(
    "model,opt,batch,dtype", CASES, ids=lambda v: getattr(v, "__name__", str(v))
)
@pytest.mark.parametrize("backend", AVAILABLE)
def test_every_path_diverges_cleanly_like_the_reference(backend, model, opt, batch, dtype):
    if model == "linear":
        X, y, _, _ = small_linear(dtype=dtype)
        extra = {}
    else:
        X, y, _, _ = small_poly(dtype=dtype)
        extra = {"degree": 3}
    kw = dict(
        X=X,
        y=y,
        optimizer=opt,
        lr=20.0,
        batch_size=batch,
        seed=1,
        max_iter=400,
        tol=0.0,
        l2=0.01,
        record="params",
        **extra,
    )
    res = _fit_diverging(backend, **kw)
    ref = _fit_diverging("numpy", **kw)
    _assert_clean_divergence(res)
    assert res.n_iter == ref.n_iter


@pytest.mark.parametrize("backend", AVAILABLE)
def test_callback_sees_only_finite_epochs(backend):
    X, y = np.ones((1, 1)), np.zeros(1)
    seen = []
    with pytest.warns(DivergenceWarning):
        res = fastgd.fit(
            X,
            y,
            fit_intercept=False,
            coef_init=[1.0],
            lr=50.5,
            tol=0.0,
            max_iter=500,
            backend=backend,
            callback=lambda e, c, b, f: seen.append((e, c[0], f)),
        )
    assert len(seen) == res.n_iter == 77
    assert all(math.isfinite(c) and math.isfinite(f) for _, c, f in seen)
    assert seen[-1][1] == res.coef[0]


@pytest.mark.parametrize("backend", AVAILABLE)
def test_minimize_divergence(backend):
    """minimize: x -> -100 x per step on x**2 with lr=50.5; fun overflows at step 78."""
    with pytest.warns(DivergenceWarning, match=r"minimize diverged in iteration 78.*smaller lr"):
        r = fastgd.minimize(
            lambda x: float(x @ x),
            lambda x: 2.0 * x,
            np.array([1.0]),
            lr=50.5,
            tol=0.0,
            max_iter=500,
            backend=backend,
        )
    assert r.status == "diverged" and not r.converged and r.n_iter == 77
    assert r.x[0] == pytest.approx(-1e154, rel=1e-12)
    assert math.isfinite(r.fun) and np.isfinite(r.history.loss).all()


def test_minimize_divergence_jitted():
    """The compiled minimize loop (numba-jitted fun and grad) detects it too."""
    if "numba" not in AVAILABLE:
        pytest.skip("numba not installed")
    import numba

    @numba.njit
    def fun(x):
        return (x * x).sum()

    @numba.njit
    def grad(x):
        return 2.0 * x

    with pytest.warns(DivergenceWarning):
        r = fastgd.minimize(
            fun, grad, np.array([1.0]), lr=50.5, tol=0.0, max_iter=500, backend="auto"
        )
    assert r.backend == "numba"
    assert r.status == "diverged" and r.n_iter == 77 and np.isfinite(r.x).all()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_safe_fit_gives_no_warning(backend):
    X, y, _, _ = small_linear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fastgd.fit(X, y, backend=backend, max_iter=50)
    assert res.status in ("converged", "max_iter")
