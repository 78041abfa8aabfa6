"""sample_weight: validation, the weighted objective, repeated/dropped rows, every backend.

The objective is ``sum_i w_i rho(r_i) / sum_i w_i + penalty``: integer
weights fit as repeated rows, weight 0 as a dropped row, a common factor
changes nothing; the compiled kernels walk the reference's weighted
trajectory.
"""

import itertools

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg
from fastgd.backends import resolve

from .conftest import AVAILABLE, COMPILED, small_linear, small_poly

RTOL = {np.float64: 1e-9, np.float32: 1e-4}


def _weights(n, seed=1, low=0, high=4):
    return np.random.default_rng(seed).integers(low, high, n).astype(float)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "w,match",
    [
        (np.ones(59), r"sample_weight must have shape \(60,\)"),
        (np.ones((60, 1)), r"sample_weight must have shape \(60,\)"),
        (np.r_[np.ones(59), -1.0], r"sample_weight must be >= 0, got -1.0 at position 59"),
        (np.r_[np.ones(59), np.nan], r"sample_weight contains nan at position 59"),
        (np.r_[np.ones(59), np.inf], r"sample_weight contains inf at position 59"),
        (np.zeros(60), r"sample_weight must have a positive sum"),
    ],
)
@pytest.mark.parametrize("func", ["fit", "loss_and_grad"])
def test_bad_weights_are_named_errors(w, match, func):
    X, y, _, _ = small_linear()
    with pytest.raises(ValueError, match=match):
        if func == "fit":
            fastgd.fit(X, y, sample_weight=w)
        else:
            fastgd.loss_and_grad(X, y, np.zeros(3), sample_weight=w)


def test_non_numeric_weights_are_a_type_error():
    X, y, _, _ = small_linear()
    with pytest.raises(TypeError, match="sample_weight must be numeric"):
        fastgd.fit(X, y, sample_weight=np.array(["a"] * 60))


def test_user_weights_are_not_modified():
    X, y, _, _ = small_linear()
    w = _weights(60, low=1)
    w_copy = w.copy()
    fastgd.fit(X, y, sample_weight=w, max_iter=5)
    np.testing.assert_array_equal(w, w_copy)


# ---------------------------------------------------------------- the objective


@pytest.mark.parametrize("loss", list(reg.LOSSES))
@pytest.mark.parametrize("model", ["linear", "poly"])
def test_loss_and_grad_is_the_weighted_mean(backend, loss, model):
    X, y, _, _ = small_linear() if model == "linear" else small_poly()
    kw = {} if model == "linear" else {"degree": 3}
    coef = np.array([0.3, -0.2, 0.5])
    w = _weights(60, low=0, high=5)
    v, gc, gb = fastgd.loss_and_grad(
        X, y, coef, 0.1, loss=loss, delta=0.5, l2=0.2, sample_weight=w, backend=backend, **kw
    )
    pred = (
        X @ coef if model == "linear" else np.polynomial.polynomial.polyval(X, np.r_[0.0, coef])
    ) + 0.1
    r = pred - y
    if loss == "mse":
        rho, psi = r**2, 2 * r
    else:
        a = np.abs(r)
        rho = np.where(a <= 0.5, 0.5 * r**2, 0.5 * (a - 0.25))
        psi = np.clip(r, -0.5, 0.5)
    A = X if model == "linear" else np.stack([X**k for k in (1, 2, 3)], axis=1)
    W = w.sum()
    np.testing.assert_allclose(v, (w @ rho) / W + 0.1 * coef @ coef, rtol=1e-12)
    np.testing.assert_allclose(gc, A.T @ (w * psi) / W + 0.2 * coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb, (w @ psi) / W, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model", ["linear", "poly"])
def test_integer_weights_are_repeated_rows_in_every_kernel(backend, model):
    X, y, _, _ = small_linear() if model == "linear" else small_poly()
    mcode = 0 if model == "linear" else 1
    X = X.reshape(60, -1)  # the kernels take the polynomial's x as (n, 1)
    w = _weights(60)
    rep = np.repeat(np.arange(60), w.astype(int))
    keep = w > 0
    _, be = resolve(backend)
    basis = np.array([0.4, 0.7])
    theta = np.array([0.3, -0.2, 0.5, 0.1])
    wn = w / w.mean()
    for loss in (0, 1):
        g1, g2 = np.zeros(4), np.zeros(4)
        f1 = be.objective_grad(mcode, loss, X, y, theta, basis, 0.5, np.zeros(4), 1, g1, w=wn)
        f2 = be.objective_grad(mcode, loss, X[rep], y[rep], theta, basis, 0.5, np.zeros(4), 1, g2)
        np.testing.assert_allclose(f1, f2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
        f3 = be.objective(mcode, loss, X, y, theta, basis, 0.5, np.zeros(4), w=wn)
        np.testing.assert_allclose(f3, f2, rtol=1e-13)
    G1, c1, S1 = be.lsq_stats(mcode, X, y, basis, 3, w=w)
    G2, c2, S2 = be.lsq_stats(mcode, X[rep], y[rep], basis, 3)
    np.testing.assert_allclose(G1, G2, rtol=1e-12)
    np.testing.assert_allclose(c1, c2, rtol=1e-12)
    np.testing.assert_allclose(S1, S2, rtol=1e-12)
    G3, _, _ = be.lsq_stats(mcode, X[keep], y[keep], basis, 3, w=w[keep])
    np.testing.assert_allclose(G1, G3, rtol=1e-12)


# ---------------------------------------------------------------- fits


@pytest.mark.parametrize("model", ["linear", "poly"])
@pytest.mark.parametrize("loss", list(reg.LOSSES))
@pytest.mark.parametrize("precondition", ["auto", "none"])
def test_weights_fit_like_repeated_and_dropped_rows(backend, model, loss, precondition):
    X, y, _, _ = small_linear() if model == "linear" else small_poly()
    kw = dict(
        loss=loss,
        delta=0.5,
        backend=backend,
        tol=1e-13,
        max_iter=200_000,
        precondition=precondition,
        l2=0.01,
    )
    if model == "poly":
        kw["degree"] = 3
    w = _weights(60)
    rep = np.repeat(np.arange(60), w.astype(int))
    keep = w > 0
    got = fastgd.fit(X, y, sample_weight=w, **kw)
    repeated = fastgd.fit(X[rep], y[rep], **kw)
    dropped = fastgd.fit(X[keep], y[keep], sample_weight=w[keep], **kw)
    assert got.status == repeated.status == dropped.status == "converged"
    for other in (repeated, dropped):
        np.testing.assert_allclose(got.coef, other.coef, rtol=1e-6, atol=1e-6)
        assert got.intercept == pytest.approx(other.intercept, rel=1e-6, abs=1e-6)
        assert got.objective == pytest.approx(other.objective, rel=1e-9)


def test_weighted_least_squares_closed_form():
    X, y, _, _ = small_linear()
    w = _weights(60, low=1, high=9)
    res = fastgd.fit(X, y, sample_weight=w, tol=1e-14, max_iter=100_000)
    A = np.c_[X, np.ones(60)]
    sw = np.sqrt(w)
    sol = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(np.r_[res.coef, res.intercept], sol, rtol=1e-9, atol=1e-10)


def test_scaling_or_equal_weights_change_nothing(backend):
    X, y, _, _ = small_linear()
    w = _weights(60, low=1)
    kw = dict(backend=backend, max_iter=30, tol=0.0)
    a = fastgd.fit(X, y, sample_weight=w, **kw)
    b = fastgd.fit(X, y, sample_weight=4.0 * w, **kw)
    np.testing.assert_array_equal(a.coef, b.coef)  # w / mean(w): the same normalised weights
    c = fastgd.fit(X, y, sample_weight=np.full(60, 3.0), **kw)
    d = fastgd.fit(X, y, **kw)
    np.testing.assert_array_equal(c.coef, d.coef)


def test_minibatch_weights_estimate_the_weighted_gradient():
    """Each mini-batch gradient is sum_B w_i g_i / (B mean(w)): its average over
    an epoch's disjoint batches of equal size is the full weighted gradient."""
    X, y, _, _ = small_linear()
    w = _weights(60, low=0, high=5)
    wn = w / w.mean()
    _, be = resolve("numpy")
    theta = np.array([0.3, -0.2, 0.5, 0.1])
    idx = np.random.default_rng(0).permutation(60)
    grads = []
    for start in range(0, 60, 10):
        g = np.zeros(4)
        be.batch_grad(
            0,
            0,
            X,
            y,
            theta,
            np.array([0.0, 1.0]),
            1.0,
            np.zeros(4),
            1,
            idx,
            start,
            start + 10,
            g,
            w=wn,
        )
        grads.append(g)
    full = np.zeros(4)
    be.objective_grad(0, 0, X, y, theta, np.array([0.0, 1.0]), 1.0, np.zeros(4), 1, full, w=wn)
    np.testing.assert_allclose(np.mean(grads, axis=0), full, rtol=1e-12)


def test_stochastic_weighted_fit_reaches_the_weighted_optimum():
    X, y, _, _ = small_linear(n=400)
    w = _weights(400, low=0, high=5)
    ref = fastgd.fit(X, y, sample_weight=w, tol=1e-12, max_iter=50_000)
    for opt, batch in [("gd", 1), ("adam", 16), ("momentum", 8)]:
        res = fastgd.fit(
            X,
            y,
            sample_weight=w,
            optimizer=opt,
            batch_size=batch,
            seed=0,
            max_iter=300,
            schedule="invscaling",
            power_t=0.5,
        )
        assert res.objective <= ref.objective * 1.05, (opt, batch)


# ---------------------------------------------------------------- every compiled backend

CASES = list(
    itertools.product(
        COMPILED,
        ["linear", "poly"],
        list(reg.LOSSES),
        list(reg.OPTIMIZERS),
        [None, 1, 7],
        [np.float64, np.float32],
    )
)
LRS = {
    "gd": 0.05,
    "momentum": 0.02,
    "nesterov": 0.02,
    "adagrad": 0.1,
    "rmsprop": 0.01,
    "adam": 0.05,
}


def _weighted_fit(backend, model, loss, opt, batch, dtype):
    X, y, _, _ = small_linear(dtype=dtype) if model == "linear" else small_poly(dtype=dtype)
    extra = {} if model == "linear" else {"degree": 3}
    sched = {"gd": "invscaling", "momentum": "exponential"}.get(opt, "constant")
    return fastgd.fit(
        X,
        y,
        loss=loss,
        delta=0.5,
        optimizer=opt,
        lr=LRS[opt] * (0.2 if batch == 1 else 1),
        schedule=sched,
        batch_size=batch,
        max_iter=20,
        tol=0.0,
        seed=3,
        l2=0.01,
        backend=backend,
        record="params",
        intercept_init=0.3,
        sample_weight=_weights(60, low=0, high=4),
        **extra,
    )


@pytest.mark.parametrize(
    "backend,model,loss,opt,batch,dtype", CASES, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_weighted_trajectory_as_reference(backend, model, loss, opt, batch, dtype):
    ref = _weighted_fit("numpy", model, loss, opt, batch, dtype)
    got = _weighted_fit(backend, model, loss, opt, batch, dtype)
    rtol = RTOL[dtype]
    assert got.n_iter == ref.n_iter == 20
    np.testing.assert_allclose(got.history.loss, ref.history.loss, rtol=rtol)
    scale = np.abs(ref.history.params).max()
    np.testing.assert_allclose(got.history.params, ref.history.params, rtol=rtol, atol=rtol * scale)


@pytest.mark.skipif("numpy" not in AVAILABLE, reason="reference always available")
def test_weighted_poly_least_squares_shortcut_matches_reference():
    """Full-batch polynomial MSE runs on (weighted) moments in the compiled backends."""
    x, y, _, _ = small_poly()
    w = _weights(60, low=0, high=4)
    kw = dict(degree=3, sample_weight=w, max_iter=50, tol=0.0, record="loss")
    ref = fastgd.fit(x, y, backend="numpy", **kw)
    for b in COMPILED:
        got = fastgd.fit(x, y, backend=b, **kw)
        # preconditioned, full-batch MSE is at its optimum in a few epochs; a
        # step of exactly 0 (tol=0) may then come an epoch apart
        k = min(len(got.history.loss), len(ref.history.loss))
        np.testing.assert_allclose(got.history.loss[:k], ref.history.loss[:k], rtol=1e-9)
        np.testing.assert_allclose(got.coef, ref.coef, rtol=1e-8)


@pytest.mark.parametrize("opt", ["gd", "nesterov", "adam"])
@pytest.mark.parametrize("model", ["linear", "poly"])
def test_preconditioner_and_auto_lr_use_the_weights(opt, model):
    """Full batch: the statistics pass and lr="auto" see the weighted rows as repeated rows."""
    X, y, _, _ = small_linear() if model == "linear" else small_poly()
    kw = {"optimizer": opt, "max_iter": 1, "backend": "numpy"}
    if model == "poly":
        kw["degree"] = 3
    w = _weights(60)
    if model == "poly":  # x's range sets the basis: keep its ends in the repeated rows
        w[[np.argmin(X), np.argmax(X)]] = 2.0
    rep = np.repeat(np.arange(60), w.astype(int))
    a = fastgd.fit(X, y, sample_weight=w, **kw)
    b = fastgd.fit(X[rep], y[rep], **kw)
    assert a.lr == pytest.approx(b.lr, rel=1e-10)
    np.testing.assert_allclose(a.state.coords.pre, b.state.coords.pre, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)
