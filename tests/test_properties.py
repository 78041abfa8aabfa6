"""Property-based tests: random shapes, dtypes, magnitudes and hyperparameters.

* Nothing crashes on any backend: a fit either returns finite parameters with
  a known status (a diverged one with a ``DivergenceWarning``), or the input is
  refused with a ValueError/TypeError naming a parameter.
* The compiled backends agree with the numpy reference wherever the reference
  gives a finite answer: ``loss_and_grad`` to within the rounding of its sums
  (on values from 1e-300 to 1e150), ``fit`` to a relative tolerance on
  moderate data.

Runs are derandomized (the same examples every run) so that CI is
reproducible; ``max_examples`` keeps the module under a minute.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fastgd
from fastgd import DivergenceWarning

from .conftest import AVAILABLE, COMPILED

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STATUSES = {"converged", "max_iter", "diverged"}


def _magnitudes(dtype, lo_exp, hi_exp):
    """Floats of every magnitude between 10**lo_exp and 10**hi_exp, both signs, and zero."""
    mant = st.floats(1.0, 9.99)
    expo = st.integers(lo_exp, hi_exp)
    sign = st.sampled_from([-1.0, 1.0])
    val = st.builds(lambda m, e, s: s * m * 10.0**e, mant, expo, sign)
    return st.one_of(st.just(0.0), val).map(lambda v: float(np.asarray(v, dtype=dtype)))


@st.composite
def problems(draw, extreme=True):
    """(X, y, degree) with random shape, dtype and magnitudes."""
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    n = draw(st.integers(1, 25))
    poly = draw(st.booleans())
    p = draw(st.integers(1, 4)) if poly else draw(st.integers(0, 4))
    if dtype is np.int64:
        elems = st.integers(-1000, 1000)
    elif extreme:
        lo, hi = (-300, 150) if dtype is np.float64 else (-37, 18)
        elems = _magnitudes(dtype, lo, hi)
    else:
        elems = _magnitudes(dtype, -3, 2)
    X = draw(hnp.arrays(dtype, (n,) if poly else (n, p), elements=elems))
    y = draw(hnp.arrays(dtype, (n,), elements=elems))
    return X, y, (p if poly else None)


@st.composite
def hyper(draw, n):
    opt = draw(st.sampled_from(["gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]))
    kw = dict(
        loss=draw(st.sampled_from(["mse", "huber"])),
        delta=draw(st.floats(1e-3, 1e3)),
        l2=draw(st.one_of(st.just(0.0), st.floats(1e-6, 10.0))),
        optimizer=opt,
        lr=draw(st.one_of(st.just("auto"), st.floats(1e-6, 10.0))),
        schedule=draw(st.sampled_from(["constant", "invscaling", "exponential"])),
        batch_size=draw(st.one_of(st.none(), st.integers(1, n + 3))),
        max_iter=draw(st.integers(1, 15)),
        fit_intercept=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32)),
    )
    if opt in ("momentum", "nesterov"):
        kw["momentum"] = draw(st.floats(0.0, 0.99))
    if opt == "adam":
        kw["beta1"] = draw(st.floats(0.0, 0.99))
        kw["beta2"] = draw(st.floats(0.0, 0.9999))
    if opt in ("adam", "rmsprop", "adagrad"):
        kw["eps"] = draw(st.floats(1e-12, 1e-2))
    return kw


def _check_result(res, degree, n_coef):
    assert res.status in STATUSES
    assert res.coef.shape == (n_coef,)
    assert np.isfinite(res.coef).all() and math.isfinite(res.intercept)
    assert not math.isnan(res.objective)
    assert np.isfinite(res.history.loss).all()
    assert res.n_iter >= 0


@SETTINGS
@given(data=st.data())
def test_fit_never_crashes(data):
    X, y, degree = data.draw(problems(extreme=True))
    kw = data.draw(hyper(X.shape[0]))
    kw["tol"] = data.draw(st.sampled_from([0.0, 1e-6, 1e-2]))
    n_coef = degree if degree is not None else X.shape[1]
    for backend in AVAILABLE:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fastgd.fit(X, y, degree=degree, backend=backend, **kw)
        _check_result(res, degree, n_coef)
        diverged = [w for w in caught if issubclass(w.category, DivergenceWarning)]
        assert bool(diverged) == (res.status == "diverged"), (backend, res.status)


@SETTINGS
@given(data=st.data())
def test_loss_and_grad_agrees_with_reference(data):
    X, y, degree = data.draw(problems(extreme=True))
    n_coef = degree if degree is not None else X.shape[1]
    dt = np.float32 if X.dtype == np.float32 else np.float64
    coef = data.draw(hnp.arrays(dt, (n_coef,), elements=_magnitudes(dt, -3, 2)))
    intercept = data.draw(_magnitudes(np.float64, -3, 2))
    loss = data.draw(st.sampled_from(["mse", "huber"]))
    delta = data.draw(st.floats(1e-3, 1e3))
    l2 = data.draw(st.sampled_from([0.0, 0.5]))
    kw = dict(degree=degree, loss=loss, delta=delta, l2=l2)
    with np.errstate(all="ignore"):
        ref = fastgd.loss_and_grad(X, y, coef, intercept, backend="numpy", **kw)
    assume(math.isfinite(ref[0]) and np.isfinite(ref[1]).all() and math.isfinite(ref[2]))
    # rounding bound of the row sums: n * eps * (sum of |terms|), from the data
    eps = np.finfo(dt).eps
    Xf = np.abs(X.astype(np.float64)).reshape(X.shape[0], -1)
    if degree is not None:
        Xf = np.abs(Xf[:, 0:1]) ** np.arange(1, degree + 1)
    with np.errstate(all="ignore"):
        r = np.abs(y.astype(np.float64)) + Xf @ np.abs(coef.astype(np.float64)) + abs(intercept)
        psi = 2 * r if loss == "mse" else np.minimum(r, delta)
        rho = r * r if loss == "mse" else r * delta
        n = X.shape[0]
        tol_f = (
            64
            * n
            * eps
            * (float(rho.sum()) / n + l2 * float((coef.astype(np.float64) ** 2).sum()) + 1e-300)
        )
        tol_g = 64 * n * eps * ((psi[:, None] * Xf).sum(axis=0) / n + l2 * np.abs(coef) + 1e-300)
        tol_b = 64 * n * eps * (float(psi.sum()) / n + 1e-300)
    assume(np.isfinite(tol_f) and np.isfinite(tol_g).all() and np.isfinite(tol_b))
    for backend in COMPILED:
        got = fastgd.loss_and_grad(X, y, coef, intercept, backend=backend, **kw)
        assert abs(got[0] - ref[0]) <= tol_f, (backend, got[0], ref[0])
        assert (np.abs(got[1].astype(np.float64) - ref[1]) <= tol_g).all(), (
            backend,
            got[1],
            ref[1],
        )
        assert abs(got[2] - ref[2]) <= tol_b, (backend, got[2], ref[2])


@SETTINGS
@given(data=st.data())
def test_fit_agrees_with_reference(data):
    X, y, degree = data.draw(problems(extreme=False))
    kw = data.draw(hyper(X.shape[0]))
    # intercept_init: not the preconditioned default (the mean of y), where the
    # intercept's gradient is rounding noise that adaptive rules act on
    kw.update(tol=0.0, record="params", max_iter=data.draw(st.integers(1, 6)), intercept_init=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergenceWarning)
        ref = fastgd.fit(X, y, degree=degree, backend="numpy", **kw)
    assume(ref.status != "diverged")
    dt = ref.coef.dtype.type
    # 1e-5: a dense preconditioner on a singular design (more coefficients than
    # distinct x) with a large fixed lr grows the path ~10x per epoch, and the
    # backends' summation orders then part at ~1e-6
    rtol = 1e-5 if dt is np.float64 else 2e-2
    scale = max(1.0, float(np.abs(ref.history.params).max()))
    singular = degree is not None and (
        np.unique(X).size < degree + int(kw.get("fit_intercept", True))
    )
    for backend in COMPILED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            got = fastgd.fit(X, y, degree=degree, backend=backend, **kw)
        k = min(got.n_iter, ref.n_iter) + 1
        rising = np.flatnonzero(np.diff(ref.history.loss) > 1e-2 * np.abs(ref.history.loss[:-1]))
        if rising.size:
            # an unstable fixed step (the objective grows): from there on each
            # epoch multiplies the backends' rounding differences
            k = min(k, int(rising[0]) + 2)
        if (got.status, got.n_iter) != (ref.status, ref.n_iter):
            # an exact fit at the rounding floor: with tol=0 one summation order
            # lands on a fixed point (a zero step: "converged") before the other
            assert "converged" in (got.status, ref.status), (backend, got.status, ref.status)
            P = (got if got.status == "converged" else ref).history.params
            np.testing.assert_allclose(P[-1], P[-2], rtol=rtol, atol=rtol * scale)
        if singular:
            # more coefficients than distinct x: the parameters along the
            # directions the data do not see move by the backends' rounding
            # (scaled up by the preconditioner's floor); the objective does not
            np.testing.assert_allclose(
                got.history.loss[:k],
                ref.history.loss[:k],
                rtol=rtol,
                atol=rtol * float(np.abs(ref.history.loss).max()),
                err_msg=backend,
            )
            continue
        np.testing.assert_allclose(
            got.history.params[:k],
            ref.history.params[:k],
            rtol=rtol,
            atol=rtol * scale,
            err_msg=backend,
        )


@pytest.mark.parametrize("backend", AVAILABLE)
@SETTINGS
@given(data=st.data())
def test_bad_or_good_never_anything_else(backend, data):
    """Any combination of (possibly invalid) hyperparameters: a result or a named error."""
    X, y, degree = data.draw(problems(extreme=False))
    kw = dict(
        lr=data.draw(st.one_of(st.floats(allow_nan=True), st.just("auto"), st.text(max_size=3))),
        l2=data.draw(st.floats(-1.0, 1.0)),
        batch_size=data.draw(st.one_of(st.none(), st.integers(-2, 40))),
        max_iter=data.draw(st.integers(-1, 5)),
        tol=data.draw(st.floats(-1.0, 1.0)),
        delta=data.draw(st.floats(-1.0, 2.0)),
    )
    names = {"lr", "l2", "batch_size", "max_iter", "tol", "delta"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fastgd.fit(X, y, degree=degree, backend=backend, **kw)
    except (ValueError, TypeError) as exc:
        assert str(exc).split(" ")[0] in names, str(exc)
        return
    _check_result(res, degree, degree if degree is not None else X.shape[1])
