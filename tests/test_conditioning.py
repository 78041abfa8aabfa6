"""Convergence on badly conditioned data: ``precondition`` and a safe ``lr="auto"``.

Data as it comes: columns of scales 1e-3 .. 1e5, offsets far from 0,
correlation 0.999 between columns, a constant column, polynomials of high
degree on x far from 0, Huber with gross outliers.  The reference answers are
numpy's (``np.linalg.lstsq``, ``np.polynomial.Polynomial.fit``); digits are
the LRE ``-log10(max relative coefficient error)``.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg

from .conftest import AVAILABLE, COMPILED

FAST = "cython" if "cython" in COMPILED else (COMPILED[0] if COMPILED else "numpy")


def lre(got, ref):
    err = np.max(np.abs(np.asarray(got, float) - ref) / np.abs(ref))
    return float(-np.log10(err)) if err > 0 else 17.0


def awkward_linear(n=600, seed=0, outliers=0.0):
    """Scales 1e-2 .. 30, a column with mean 5, two columns with correlation ~0.999."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))
    X = np.empty((n, 5))
    X[:, 0] = 1e-2 * z[:, 0]
    X[:, 1] = 30.0 * z[:, 1]
    X[:, 2] = 5.0 + z[:, 2]
    X[:, 3] = z[:, 3]
    X[:, 4] = z[:, 3] + 0.045 * z[:, 4]  # corr(X3, X4) ~ 0.999
    coef = np.array([50.0, 0.05, -1.0, 2.0, 1.0])
    y = X @ coef + 3.0 + 0.3 * rng.normal(size=n)
    if outliers:
        bad = rng.random(n) < outliers
        y[bad] += rng.normal(scale=20.0, size=bad.sum())
    return X, y


def extreme_linear(n=800, seed=1):
    """Scales 1e-3 .. 1e5, offsets 1e3 and -50, correlation 0.999."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))
    X = np.c_[
        1e-3 * z[:, 0],
        1e5 * z[:, 1],
        1e3 + 10 * z[:, 2],
        -50 + z[:, 3],
        -50 + z[:, 3] + 0.045 * z[:, 4],
    ]
    y = X @ np.array([1e3, 1e-5, 0.01, 1.0, -2.0]) + 7.0 + 0.1 * rng.normal(size=n)
    return X, y


def poly_far(n=500, seed=2, lo=3.0, hi=10.0, degree=4, outliers=0.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, n)
    c = np.array([2.0, -1.0, 0.5, 0.3, -0.02, 0.001, 0.0, 0.0, 0.0, 0.0, 0.0])[: degree + 1]
    y = np.polynomial.polynomial.polyval(x, c) + 0.5 * rng.normal(size=n)
    if outliers:
        bad = rng.random(n) < outliers
        y[bad] += rng.normal(scale=50.0, size=bad.sum())
    return x, y


def _rho(r, loss, delta=1.0):
    if loss == "mse":
        return float(np.mean(r * r))
    a = np.abs(r)
    return float(np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _objective(X, y, coef, b, loss, degree=None, delta=1.0):
    if degree:
        r = np.polynomial.polynomial.polyval(X, np.r_[b, coef]) - y
    else:
        r = X @ coef + b - y
    if loss == "mse":
        return float(np.mean(r * r))
    a = np.abs(r)
    return float(np.mean(np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))))


def _optimum(X, y, loss, degree=None):
    """The optimal objective: lstsq for MSE, a long preconditioned full-batch fit for Huber."""
    if loss == "mse":
        if degree:  # in numpy's scaled domain: a monomial Vandermonde loses digits here
            return _rho(np.polynomial.Polynomial.fit(X, y, degree)(X) - y, "mse")
        A = np.c_[np.ones(len(y)), X]
        sol = np.linalg.lstsq(A, y, rcond=None)[0]
        return _objective(X, y, sol[1:], sol[0], "mse", degree)
    res = fastgd.fit(
        X, y, loss="huber", degree=degree, tol=0.0, max_iter=200_000, backend=FAST, record=None
    )
    return res.objective


# ---------------------------------------------------------------- exact digits, full batch


@pytest.mark.parametrize("optimizer", ["gd", "nesterov"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_degree5_on_0_to_20_recovers_every_coefficient(optimizer, backend):
    """The example that plain gradient descent cannot fit: all six coefficients 1."""
    x = np.arange(21.0)
    y = sum(x**k for k in range(6))
    res = fastgd.fit(
        x, y, degree=5, optimizer=optimizer, max_iter=2_000_000, tol=1e-15, backend=backend
    )
    got = np.r_[res.intercept, res.coef]
    ref = np.polynomial.Polynomial.fit(x, y, 5).convert().coef
    assert res.status == "converged" and res.precondition == "auto"
    assert res.n_iter < 1000
    assert lre(got, np.ones(6)) >= max(8.0, lre(ref, np.ones(6)) - 0.5)


@pytest.mark.parametrize(
    "lo,hi,degree", [(-9.0, -3.0, 10), (0.0, 20.0, 10), (0.0, 20.0, 5), (1e3, 1e3 + 7, 3)]
)
def test_high_degree_far_from_zero_as_many_digits_as_numpy(lo, hi, degree):
    x = np.linspace(lo, hi, 200)
    y = np.polynomial.polynomial.polyval(x, np.ones(degree + 1))
    res = fastgd.fit(x, y, degree=degree, max_iter=1_000_000, tol=1e-15, backend=FAST)
    got = np.r_[res.intercept, res.coef]
    pf = np.polynomial.Polynomial.fit(x, y, degree).convert().coef
    ls = np.linalg.lstsq(np.vander(x, degree + 1, increasing=True), y, rcond=None)[0]
    best_numpy = max(lre(pf, np.ones(degree + 1)), lre(ls, np.ones(degree + 1)))
    assert res.status == "converged"
    assert lre(got, np.ones(degree + 1)) >= min(6.0, best_numpy) - 0.3


@pytest.mark.parametrize("make", [awkward_linear, extreme_linear])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_badly_scaled_linear_reaches_lstsq(make, dtype):
    X, y = make()
    X, y = X.astype(dtype), y.astype(dtype)
    A = np.c_[X, np.ones(len(y))].astype(np.float64)  # the least squares of the data as given
    sol = np.linalg.lstsq(A, y.astype(np.float64), rcond=None)[0]
    res = fastgd.fit(
        X, y, max_iter=1_000_000, tol=1e-13 if dtype is np.float64 else 1e-6, backend=FAST
    )
    got = np.r_[res.coef, res.intercept]
    assert res.status == "converged"
    if dtype is np.float64:
        assert lre(got, sol) >= 6.0
    else:
        # float32 arithmetic cannot resolve the collinear pair to lstsq's digits
        # (its condition number times 6e-8); the objective still reaches the optimum
        Xd, yd = X.astype(np.float64), y.astype(np.float64)
        f_opt = _objective(Xd, yd, sol[:-1], sol[-1], "mse")
        assert (
            _objective(Xd, yd, got[:-1].astype(np.float64), float(got[-1]), "mse") <= 1.01 * f_opt
        )


def test_preconditioning_helps_where_plain_gd_stalls():
    X, y = awkward_linear()
    f_opt = _optimum(X, y, "mse")
    auto = fastgd.fit(X, y, max_iter=300, backend=FAST)
    none = fastgd.fit(X, y, max_iter=300, backend=FAST, precondition="none")
    assert auto.objective <= 1.01 * f_opt
    assert none.objective > 1.5 * f_opt
    assert none.precondition == "none" and auto.precondition == "auto"


# ---------------------------------------------------------------- lr="auto" everywhere


DESIGNS = {
    "awkward": lambda loss: (*awkward_linear(outliers=0.1 if loss == "huber" else 0.0), None),
    "extreme": lambda loss: (*extreme_linear(), None),
    "poly4_3_10": lambda loss: (*poly_far(outliers=0.1 if loss == "huber" else 0.0), 4),
    "poly10_0_20": lambda loss: (*poly_far(lo=0.0, hi=20.0, degree=10, seed=4), 10),
}
OPTS = list(reg.OPTIMIZERS)
GRID = list(itertools.product(DESIGNS, ["mse", "huber"], OPTS, [None, 1, 8, 64]))


@pytest.fixture(scope="module")
def optima():
    cache = {}

    def get(design, loss):
        if (design, loss) not in cache:
            X, y, degree = DESIGNS[design](loss)
            cache[design, loss] = _optimum(X, y, loss, degree)
        return cache[design, loss]

    return get


@pytest.mark.skipif(not COMPILED, reason="3000 stochastic epochs need a compiled backend")
@pytest.mark.parametrize("design,loss,optimizer,batch", GRID)
def test_auto_lr_never_diverges_and_gets_within_2x(design, loss, optimizer, batch, optima):
    X, y, degree = DESIGNS[design](loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastgd.DivergenceWarning)
        res = fastgd.fit(
            X,
            y,
            loss=loss,
            degree=degree,
            optimizer=optimizer,
            batch_size=batch,
            max_iter=3000,
            seed=0,
            backend=FAST,
            record=None,
        )
    assert res.status != "diverged"
    f_opt = optima(design, loss)
    f = _objective(X, y, res.coef, res.intercept, loss, degree)
    assert f <= 2.0 * f_opt, (f, f_opt, res.lr, res.status, res.n_iter)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_auto_lr_with_momentum_and_single_samples_is_stable(optimizer):
    """1/max|a_i|^2 used as is diverges with momentum 0.9 (it acts as a step 10x larger)."""
    X, y, _, _ = fastgd.datasets.make_linear(600, 4, noise=0.1, seed=0)
    for precondition in ("auto", "none"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", fastgd.DivergenceWarning)
            res = fastgd.fit(
                X,
                y,
                optimizer=optimizer,
                batch_size=1,
                max_iter=200,
                seed=1,
                backend=FAST,
                precondition=precondition,
            )
        assert res.status != "diverged"
        assert res.objective < 2.0 * 0.01 * 1.2  # noise variance 0.01, MSE


# ---------------------------------------------------------------- the same problem either way


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("degree", [None, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_both_settings_reach_the_same_minimiser(loss, l2, degree, fit_intercept):
    """The penalty stays on the user's coefficients: the answer does not depend on the basis."""
    if degree:
        x, y = poly_far(n=300, lo=-1.5, hi=2.0, degree=3)
        X = x
    else:
        X, y = awkward_linear(n=300)
        X = X[:, [1, 2, 3]]  # moderate conditioning, so that plain gd gets there too
    kw = dict(
        loss=loss,
        l2=l2,
        degree=degree,
        fit_intercept=fit_intercept,
        max_iter=400_000,
        tol=1e-13,
        backend=FAST,
    )
    a = fastgd.fit(X, y, precondition="auto", **kw)
    b = fastgd.fit(X, y, precondition="none", **kw)
    scale = max(1.0, float(np.abs(b.coef).max()))
    # plain gd may stop short of the last digits (it is the slow one)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-5, atol=1e-6 * scale)
    assert a.intercept == pytest.approx(b.intercept, rel=1e-5, abs=1e-6 * scale)
    assert a.objective == pytest.approx(b.objective, rel=1e-9)
    assert a.objective <= b.objective * (1 + 1e-12)
    if not fit_intercept:
        assert a.intercept == 0.0


def test_ridge_closed_form_with_preconditioning():
    X, y = awkward_linear(n=400)
    l2 = 0.5
    n = len(y)
    Xc = X - X.mean(0)
    coef = np.linalg.solve(2 * Xc.T @ Xc / n + l2 * np.eye(5), 2 * Xc.T @ (y - y.mean()) / n)
    b = y.mean() - X.mean(0) @ coef
    res = fastgd.fit(X, y, l2=l2, tol=1e-14, max_iter=1_000_000, backend=FAST)
    np.testing.assert_allclose(res.coef, coef, rtol=1e-7)
    assert res.intercept == pytest.approx(b, rel=1e-7)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_constant_column_does_not_break_it(backend):
    X, y = awkward_linear(n=200)
    X = np.c_[X[:, :3], np.full(200, 4.0)]
    res = fastgd.fit(X, y, max_iter=20_000, tol=1e-12, backend=backend)
    assert res.status == "converged"
    assert np.isfinite(res.coef).all() and abs(res.coef[3]) <= 1e-12  # unidentified: stays ~0
    sol = np.linalg.lstsq(np.c_[X[:, :3], np.ones(200)], y, rcond=None)[0]
    np.testing.assert_allclose(res.coef[:3], sol[:3], rtol=1e-6)
    assert res.intercept == pytest.approx(sol[3], rel=1e-6)


@pytest.mark.parametrize("degree", [None, 3])
def test_history_and_callback_are_in_the_users_basis(degree):
    if degree:
        X, y = poly_far(n=200, degree=3)
    else:
        X, y = awkward_linear(n=200)
    seen = []
    res = fastgd.fit(
        X,
        y,
        degree=degree,
        optimizer="adam",
        max_iter=30,
        tol=0.0,
        record="params",
        backend=FAST,
        callback=lambda e, c, b, f: seen.append((np.r_[c, b], f)),
    )
    P = res.history.params
    assert res.n_iter == 30 and P.shape == (31, (degree or 5) + 1)
    np.testing.assert_allclose(P[-1], np.r_[res.coef, res.intercept], rtol=1e-12)
    for k, (theta, f) in enumerate(seen, start=1):
        np.testing.assert_allclose(theta, P[k], rtol=1e-12)
        obj = _objective(X, y, theta[:-1], theta[-1], "mse", degree)
        assert f == pytest.approx(obj, rel=1e-9)
        assert res.history.loss[k] == pytest.approx(obj, rel=1e-9)


def test_polynomial_on_millions_of_points_matches_polyfit():
    x, y, coef, b = fastgd.datasets.make_polynomial(2_000_000, 3, noise=0.1, seed=0)
    x = 4.0 + 3.0 * x  # off centre
    res = fastgd.fit(x, y, degree=3, tol=1e-14, backend=FAST)
    ref = np.polyfit(x, y, 3)[::-1]
    got = np.r_[res.intercept, res.coef]
    assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) <= 1e-8
    assert res.n_iter <= 10


def test_precondition_is_validated():
    X, y = awkward_linear(n=50)
    with pytest.raises(ValueError, match="precondition"):
        fastgd.fit(X, y, precondition="yes")


def test_small_algebra_runs_on_one_blas_thread():
    """The (p + 1)-sized eigen/least-squares work after a compiled pass uses one
    BLAS thread (a threaded BLAS call there fought the OpenMP team for the cores)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastgd._precondition import small_algebra

    before = [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
    with small_algebra():
        inside = [
            d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"
        ]
    after = [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
    assert inside and all(k == 1 for k in inside)
    assert after == before  # restored
