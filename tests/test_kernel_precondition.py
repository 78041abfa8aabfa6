"""The kernel interface's preconditioning pieces, compiled backends against the reference.

``basis`` (a shifted polynomial input), a dense ``l2w`` penalty, ``lsq_stats``
and ``run(..., pre)`` with both kinds of preconditioner: the same numbers as
``fastgd.backends._numpy`` (rtol 1e-9 float64, 1e-4 float32), every update
rule and batching.
"""

import itertools

import numpy as np
import pytest

from fastgd import _registry as reg
from fastgd.backends import _numpy as ref, resolve

from .conftest import COMPILED

RTOL = {np.float64: 1e-9, np.float32: 1e-4}
HP = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
SHP = np.array([0.25, 0.99])


def _problem(model, dtype, n=80, p=4, seed=0):
    rng = np.random.default_rng(seed)
    if model == 0:
        X = rng.normal(size=(n, p)) * [0.5, 3.0, 1.0, 2.0][:p] + [4.0, -1.0, 0.0, 2.0][:p]
        y = X @ rng.normal(size=p) + 1.5 + 0.1 * rng.normal(size=n)
    else:
        x = rng.uniform(3.0, 7.0, n)
        X = x[:, None]
        y = 1.0 + 0.5 * x - 0.2 * x**2 + 0.01 * x**3 + 0.05 * rng.normal(size=n)
    return np.ascontiguousarray(X, dtype=dtype), y.astype(dtype)


def _pre(kind, m, seed=1):
    rng = np.random.default_rng(seed)
    if kind == 0:
        return np.empty((0, m))
    if kind == 1:
        pre = np.zeros((2, m))
        pre[0, : m - 1] = rng.uniform(0.3, 2.0, m - 1)
        pre[0, m - 1] = 1.0
        pre[1, : m - 1] = rng.uniform(-1.0, 1.0, m - 1)
        return pre
    T = np.triu(rng.uniform(-0.5, 0.5, (m, m))) + np.eye(m)
    return np.vstack([T, np.linalg.inv(T)])


def _l2w(m, dense, dtype):
    if not dense:
        return np.r_[np.full(m - 1, 0.05), 0.0].astype(dtype)
    rng = np.random.default_rng(2)
    B = rng.normal(size=(m - 1, m - 1))
    Q = np.zeros((m, m))
    Q[: m - 1, : m - 1] = 0.02 * B @ B.T
    return Q.reshape(-1).astype(dtype)


def _run(mod, model, loss, X, y, theta, basis, l2w, opt, batch, pre, n_epochs=6, lr=0.02):
    n = X.shape[0]
    m = theta.shape[0]
    rng = np.random.default_rng(5)
    order = (
        np.array([rng.permutation(n) for _ in range(n_epochs)], dtype=np.int32)
        if batch
        else np.empty((0, 0), dtype=np.int32)
    )
    state = np.zeros((2, m), dtype=X.dtype)
    grad = np.zeros(m, dtype=X.dtype)
    hist = np.zeros(n_epochs + 1)
    histp = np.zeros((n_epochs + 1, m), dtype=X.dtype)
    out = mod.run(
        model,
        loss,
        X,
        y,
        theta,
        basis,
        0.7,
        l2w,
        1,
        opt,
        HP,
        state,
        0,
        0,
        lr,
        SHP,
        0,
        n_epochs,
        batch,
        order,
        0.0,
        1,
        grad,
        float("nan"),
        hist,
        histp,
        pre,
    )
    return out, hist, histp, state


CASES = list(
    itertools.product(
        COMPILED,
        [0, 1],
        [0, 1],
        [0, 1, 2],
        list(reg.OPTIMIZERS),
        [0, 1, 5],
        [np.float64, np.float32],
    )
)


@pytest.mark.parametrize(
    "backend,model,loss,kind,opt,batch,dtype", CASES, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_run_with_preconditioner_matches_reference(backend, model, loss, kind, opt, batch, dtype):
    if model == 0 and kind == 2:
        pytest.skip("the linear model uses the centre-and-scale kind")
    if model == 1 and kind == 1:
        pytest.skip("the polynomial model uses the dense kind")
    _, mod = resolve(backend)
    X, y = _problem(model, dtype)
    p = X.shape[1] if model == 0 else 3
    m = p + 1
    basis = np.array([5.0, 0.5]) if model == 1 else np.array([0.0, 1.0])
    l2w = _l2w(m, dense=(kind == 2), dtype=dtype)
    pre = _pre(kind, m)
    code = reg.OPTIMIZERS[opt].code
    # single-sample momentum on this data is chaotic at larger steps (one ulp of y
    # changes the path): keep it contractive so float32 stays comparable
    lr = {"adagrad": 0.05, "rmsprop": 0.005, "adam": 0.01}.get(
        opt, (0.002 if batch == 1 else 0.01) if batch else 0.05
    )
    th_ref = np.zeros(m, dtype=dtype)
    th_got = th_ref.copy()
    a = _run(ref, model, loss, X, y, th_ref, basis, l2w, code, batch, pre, lr=lr)
    b = _run(mod, model, loss, X, y, th_got, basis, l2w, code, batch, pre, lr=lr)
    rtol = RTOL[dtype]
    assert b[0][:3] == a[0][:3]
    np.testing.assert_allclose(b[1], a[1], rtol=rtol)
    scale = float(np.abs(a[2]).max())
    np.testing.assert_allclose(b[2], a[2], rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(th_got, th_ref, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(b[3], a[3], rtol=rtol, atol=rtol * float(np.abs(a[3]).max()))
    assert not np.array_equal(th_ref, np.zeros(m, dtype=dtype))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", [0, 1])
def test_shifted_basis_and_dense_penalty_match_reference(backend, dtype, loss):
    _, mod = resolve(backend)
    X, y = _problem(1, dtype)
    basis = np.array([5.0, 0.5])
    theta = np.array([0.3, -0.2, 0.1, 2.0], dtype=dtype)
    for l2w in (_l2w(4, False, dtype), _l2w(4, True, dtype)):
        g_ref = np.empty(4, dtype=dtype)
        g_got = np.empty(4, dtype=dtype)
        f_ref = ref.objective_grad(1, loss, X, y, theta, basis, 0.7, l2w, 1, g_ref)
        f_got = mod.objective_grad(1, loss, X, y, theta, basis, 0.7, l2w, 1, g_got)
        assert f_got == pytest.approx(f_ref, rel=RTOL[dtype])
        np.testing.assert_allclose(g_got, g_ref, rtol=RTOL[dtype], atol=RTOL[dtype])
        assert mod.objective(1, loss, X, y, theta, basis, 0.7, l2w) == pytest.approx(
            f_ref, rel=RTOL[dtype]
        )
        idx = np.arange(X.shape[0], dtype=np.int32)[::-1].copy()
        mod.batch_grad(1, loss, X, y, theta, basis, 0.7, l2w, 1, idx, 3, 17, g_got)
        ref.batch_grad(1, loss, X, y, theta, basis, 0.7, l2w, 1, idx, 3, 17, g_ref)
        np.testing.assert_allclose(g_got, g_ref, rtol=RTOL[dtype], atol=RTOL[dtype])
    # a float basis means [0, scale]
    f1 = mod.objective(1, loss, X, y, theta, 0.2, 0.7, _l2w(4, False, dtype))
    f2 = mod.objective(1, loss, X, y, theta, np.array([0.0, 0.2]), 0.7, _l2w(4, False, dtype))
    assert f1 == f2


@pytest.mark.parametrize("backend", ["numpy", *COMPILED])
@pytest.mark.parametrize("model", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lsq_stats(backend, model, dtype):
    _, mod = resolve(backend)
    X, y = _problem(model, dtype, n=3000)
    p = X.shape[1] if model == 0 else 5
    basis = np.array([5.0, 0.5])
    G, c, S = mod.lsq_stats(model, X, y, basis, p)
    if model == 0:
        A = np.c_[X.astype(np.float64), np.ones(X.shape[0])]
    else:
        u = ((X[:, 0] - dtype(5.0)) * dtype(0.5)).astype(np.float64)
        A = np.c_[np.vander(u, p + 1, increasing=True)[:, 1:], np.ones_like(u)]
    yy = y.astype(np.float64)
    np.testing.assert_allclose(G, A.T @ A, rtol=1e-10)
    np.testing.assert_allclose(c, A.T @ yy, rtol=1e-10, atol=1e-9 * np.abs(A.T @ yy).max())
    assert pytest.approx(float(yy @ yy), rel=1e-12) == S
