"""The Cython backend's fused one-sample gd path with the centre-and-scale preconditioner.

``run`` with ``pre`` of kind 1, plain gd, ``batch_size=1``, the linear model
and a diagonal ``l2w`` (``fit()``'s default SGD since ``precondition="auto"``)
takes ``_sgd_gd_linear_pre``: each step fused with the next sample's
prediction, one sweep over the row.  It must walk the general path's
trajectory bit for bit.  The general path is spelled out here sample by
sample -- the extension's own ``batch_grad`` (the function the general path
calls) and then the reference's ``step``, whose float64/float32 arithmetic is
the extension's ``_step`` operation for operation -- and compared exactly
(without ``pre`` too: the kind-0 fused path, ``_sgd_gd_linear``).  The numpy
reference, whose dot products sum in another order, is then matched to
rounding, divergence included.  With sample weights ``w`` (each sample's psi
times w_i) both fused paths have weighted versions, held to the same tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastgd.backends import _numpy as ref

cy = pytest.importorskip("fastgd.backends._cython", reason="the Cython extension is not built")

HP = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
SHP = np.zeros(2)
DELTA = 0.7  # Huber's kink


def _problem(p, dtype, n, seed=0):
    """Uncentred, unevenly scaled features and their centre-and-scale ``pre``."""
    rng = np.random.default_rng(seed + 11 * p)
    X = rng.normal(size=(n, p)) * rng.uniform(0.3, 3.0, p) + rng.uniform(-3.0, 3.0, p)
    y = X @ rng.normal(size=p) + 2.0 + rng.normal(size=n)
    X, y = np.ascontiguousarray(X, dtype=dtype), y.astype(dtype)
    mu, sd = X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)
    pre = np.zeros((2, p + 1))
    pre[0, :p] = 1.0 / sd  # theta_j = z_j / sd_j, theta_p = z_p - sum_j mu_j / sd_j z_j
    pre[0, p] = 1.0
    pre[1, :p] = mu / sd
    theta0 = (0.1 * rng.normal(size=p + 1)).astype(dtype)
    return X, y, pre, theta0, rng


def _l2w(p, l2, fit_icpt, dtype):
    w = np.r_[np.full(p, l2), 0.0]
    if l2 and fit_icpt:
        w[p] = 0.5 * l2  # a weight on the intercept as well (l2w[p] enters g_p)
    return w.astype(dtype)


def _weights(n, dtype, rng):
    """Sample weights, zeros among them, normalised to mean 1 as the Python layer passes them."""
    w = rng.uniform(0.0, 2.0, n)
    w[rng.random(n) < 0.1] = 0.0
    return (w / w.mean()).astype(dtype)


def _run(mod, X, y, theta, l2w, fit_icpt, loss, order, pre, lr, opt=0, w=None):
    """``mod.run`` over the epochs of ``order`` with the parameter history."""
    n_ep, m = order.shape[0], theta.shape[0]
    grad = np.zeros(m, dtype=X.dtype)
    hist = np.zeros(n_ep + 1)
    params = np.zeros((n_ep + 1, m), dtype=X.dtype)
    out = mod.run(
        0,
        loss,
        X,
        y,
        theta,
        1.0,
        DELTA,
        l2w,
        fit_icpt,
        opt,
        HP,
        np.zeros((2, m), dtype=X.dtype),
        0,
        0,
        lr,
        SHP,
        0,
        n_ep,
        1,
        order,
        0.0,
        1,
        grad,
        math.nan,
        hist,
        params,
        pre,
        w=w,
    )
    return out, grad, hist, params


def _general_path(X, y, theta, l2w, fit_icpt, loss, order, pre, lr, w=None):
    """The general path of a stochastic epoch, one sample at a time: the
    extension's ``batch_grad`` over one row, then ``step`` (kind 1:
    ``pre_grad``, the gd rule on a zero vector, ``pre_apply``)."""
    m = theta.shape[0]
    if pre is None:
        pre = np.empty((0, m))
    grad = np.zeros(m, dtype=X.dtype)
    state = np.zeros((2, m), dtype=X.dtype)
    params = [theta.copy()]
    t = 0
    for idx in order:
        for k in range(idx.shape[0]):
            cy.batch_grad(0, loss, X, y, theta, 1.0, DELTA, l2w, fit_icpt, idx, k, k + 1, grad, w=w)
            t += 1
            ref.step(0, theta, grad, state, lr, HP, t, pre)
        params.append(theta.copy())
    return np.array(params), grad, t


def _lr(p):
    return 0.2 / (p + 1)  # contractive steps in the standardized coordinates


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("fit_icpt", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1, 7, 8, 17, 37, 100])
@pytest.mark.parametrize("kind", [1, 0])
def test_fused_path_is_the_general_path_bit_for_bit(kind, p, dtype, fit_icpt, l2, weighted):
    # p covers: below one block, one float64 block of 8, blocks plus a tail
    # (float64 blocks of 8, float32 blocks of 16), many blocks
    n, n_ep = 150, 3
    X, y, pre, theta0, rng = _problem(p, dtype, n)
    if kind == 0:
        pre = None
    loss = p % 2  # mse and huber
    l2w = _l2w(p, l2, fit_icpt, dtype)
    order = np.array(
        [rng.permutation(n) for _ in range(n_ep)], dtype=np.int64 if p % 3 == 1 else np.int32
    )
    # contractive steps: in the standardized coordinates, or on the raw rows
    lr = _lr(p) if kind else 0.5 / (1.0 + float((X.astype(np.float64) ** 2).sum(1).max()))
    w = _weights(n, dtype, rng) if weighted else None
    if weighted:
        lr /= float(w.max())  # still contractive for the heaviest sample
    theta = theta0.copy()
    (n_done, status, t, f), grad, _, params = _run(
        cy, X, y, theta, l2w, fit_icpt, loss, order, pre, lr, w=w
    )
    want_params, want_grad, want_t = _general_path(
        X, y, theta0.copy(), l2w, fit_icpt, loss, order, pre, lr, w=w
    )
    assert (n_done, status, t) == (n_ep, 0, want_t)
    np.testing.assert_array_equal(params, want_params)
    np.testing.assert_array_equal(theta, want_params[-1])
    np.testing.assert_array_equal(grad, want_grad)  # the last sample's (preconditioned) gradient
    assert not np.array_equal(theta, theta0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("fit_icpt", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1, 7, 100])
def test_fused_path_matches_reference(p, dtype, fit_icpt, l2, weighted):
    n, n_ep = 200, 4
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=3)
    if not fit_icpt:  # as fit() scales without an intercept: uncentred, b = 0
        pre[0, :p] = 1.0 / np.sqrt((X.astype(np.float64) ** 2).mean(0))
        pre[1] = 0.0
    l2w = _l2w(p, l2, fit_icpt, dtype)
    order = np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int32)
    w = _weights(n, dtype, rng) if weighted else None
    got_theta, want_theta = theta0.copy(), theta0.copy()
    lr = 0.25 * _lr(p)  # well inside the stable range: rounding differences shrink
    if weighted:
        lr /= float(w.max())
    got = _run(cy, X, y, got_theta, l2w, fit_icpt, 0, order, pre, lr, w=w)
    want = _run(ref, X, y, want_theta, l2w, fit_icpt, 0, order, pre, lr, w=w)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert got[0][:3] == want[0][:3] == (n_ep, 0, n_ep * n)
    scale = float(np.abs(want[3]).max())
    np.testing.assert_allclose(got[3], want[3], rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got_theta, want_theta, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got[2], want[2], rtol=rtol)  # objective after each epoch
    if not fit_icpt:
        assert got_theta[p] == theta0[p]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_divergence_restores_the_last_finite_epoch(dtype, weighted):
    n, p = 300, 12
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=5)
    order = np.array([rng.permutation(n) for _ in range(6)], dtype=np.int32)
    l2w = _l2w(p, 0.01, 1, dtype)
    w = _weights(n, dtype, rng) if weighted else None
    got_theta, want_theta = theta0.copy(), theta0.copy()
    got = _run(cy, X, y, got_theta, l2w, 1, 0, order, pre, 3.0, w=w)
    with np.errstate(all="ignore"):  # the reference overflows on its way
        want = _run(ref, X, y, want_theta, l2w, 1, 0, order, pre, 3.0, w=w)
    assert got[0][:3] == want[0][:3]
    assert got[0][1] == 2  # diverged
    np.testing.assert_array_equal(got_theta, theta0)  # restored: the first epoch diverged
    np.testing.assert_array_equal(got_theta, want_theta)
