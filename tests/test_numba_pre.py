"""The numba backend with the centre-and-scale preconditioner and the value range.

* ``run`` with ``pre`` of kind 1, plain gd, ``batch_size=1``, the linear model
  and a diagonal ``l2w`` (``fit()``'s default SGD) takes the fused
  ``_sgd_gd_linear_pre``.  It must walk its general path's trajectory bit
  for bit: the general path is ``run`` itself with ``FUSED_PRE`` off
  (one-row gradient, then ``step``), plain and with the rows staged
  (``_staged_epoch``).  The numpy reference, whose dot products sum in
  another order, is matched to rounding.  With sample weights as well.
* Full-batch MSE with a preconditioner or a dense penalty: no noise-floor
  fallback of the least-squares shortcut when ``tol > 0``, a stricter one
  when ``tol == 0`` (as the Cython backend).
* ``value_range``: ``(min, max)`` in one pass, like ``np.min`` / ``np.max``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastgd
from fastgd.backends import _numpy as ref

nb = pytest.importorskip("fastgd.backends._numba", reason="numba is not installed")

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


def _run(mod, X, y, theta, l2w, fit_icpt, loss, order, pre, lr, opt=0, w=None):
    """``mod.run`` over the epochs of ``order``: (out, objective history, parameter history)."""
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
    return out, hist, params


def _lr(p):
    return 0.2 / (p + 1)  # contractive steps in the standardized coordinates


def _both_paths(monkeypatch, X, y, theta0, l2w, fit_icpt, loss, order, pre, lr, w=None):
    """(fused, general): ``run`` with and without ``FUSED_PRE``, from ``theta0``."""
    got = []
    for fused in (True, False):
        monkeypatch.setattr(nb, "FUSED_PRE", fused)
        theta = theta0.copy()
        out, hist, params = _run(nb, X, y, theta, l2w, fit_icpt, loss, order, pre, lr, w=w)
        got.append((out, hist, params, theta))
    return got


def _assert_same(a, b):
    assert a[0] == b[0]  # n_done, status, t, f
    np.testing.assert_array_equal(a[1], b[1])  # objective after each epoch
    np.testing.assert_array_equal(a[2], b[2])  # parameters after each epoch
    np.testing.assert_array_equal(a[3], b[3])


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("fit_icpt", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1, 7, 100])
def test_fused_path_is_the_general_path_bit_for_bit(monkeypatch, p, dtype, fit_icpt, l2, loss):
    # p: below one block of 8 partial sums, one block short, blocks plus a tail
    n, n_ep = 150, 3
    X, y, pre, theta0, rng = _problem(p, dtype, n)
    l2w = _l2w(p, l2, fit_icpt, dtype)
    order = np.array(
        [rng.permutation(n) for _ in range(n_ep)], dtype=np.int64 if p % 3 == 1 else np.int32
    )
    fused, general = _both_paths(monkeypatch, X, y, theta0, l2w, fit_icpt, loss, order, pre, _lr(p))
    assert fused[0][:3] == (n_ep, 0, n_ep * n)
    _assert_same(fused, general)
    assert not np.array_equal(fused[3], theta0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [7, 19])
def test_fused_path_with_staged_rows(monkeypatch, p, dtype):
    """Rows staged chunk by chunk (``_staged_epoch``, the prediction carried
    across chunks): the same bits as the plain epoch and the general path."""
    n, n_ep = 301, 3
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=4)
    l2w = _l2w(p, 0.02, 1, dtype)
    order = np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int32)
    lr = _lr(p)
    plain, general = _both_paths(monkeypatch, X, y, theta0, l2w, 1, 1, order, pre, lr)
    _assert_same(plain, general)
    # chunks of a few rows, so chunk boundaries fall everywhere; one thread
    # runs both halves of a chunk in turn, two race over it
    for rows in (5, 64):
        monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size, rows=rows: rows)
        staged = _both_paths(monkeypatch, X, y, theta0, l2w, 1, 1, order, pre, lr)
        _assert_same(staged[0], plain)
        _assert_same(staged[1], plain)


def test_fused_path_staged_by_size(monkeypatch):
    """Staging as ``run`` chooses it, with the size threshold lowered to 0."""
    import numba

    if numba.get_num_threads() < 2:
        pytest.skip("staging needs two threads")
    n, p, n_ep = 400, 12, 2
    X, y, pre, theta0, rng = _problem(p, np.float64, n, seed=8)
    l2w = _l2w(p, 0.0, 1, np.float64)
    order = np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int32)
    plain, _ = _both_paths(monkeypatch, X, y, theta0, l2w, 1, 0, order, pre, _lr(p))
    monkeypatch.setattr(nb, "STAGE_MIN_BYTES", 0)
    assert nb._stage_rows(X, 1) > 0
    staged, general = _both_paths(monkeypatch, X, y, theta0, l2w, 1, 0, order, pre, _lr(p))
    _assert_same(staged, plain)
    _assert_same(general, plain)


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("fit_icpt", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1, 7, 100])
def test_fused_path_matches_reference(p, dtype, fit_icpt, l2):
    n, n_ep = 200, 4
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=3)
    if not fit_icpt:  # as fit() scales without an intercept: uncentred, b = 0
        pre[0, :p] = 1.0 / np.sqrt((X.astype(np.float64) ** 2).mean(0))
        pre[1] = 0.0
    l2w = _l2w(p, l2, fit_icpt, dtype)
    order = np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int32)
    got_theta, want_theta = theta0.copy(), theta0.copy()
    lr = 0.25 * _lr(p)  # well inside the stable range: rounding differences shrink
    got = _run(nb, X, y, got_theta, l2w, fit_icpt, 0, order, pre, lr)
    want = _run(ref, X, y, want_theta, l2w, fit_icpt, 0, order, pre, lr)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert got[0][:3] == want[0][:3] == (n_ep, 0, n_ep * n)
    scale = float(np.abs(want[2]).max())
    np.testing.assert_allclose(got[2], want[2], rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got_theta, want_theta, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got[1], want[1], rtol=rtol)  # objective after each epoch
    if not fit_icpt:
        assert got_theta[p] == theta0[p]


@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [1, 7, 100])
def test_weighted_fused_path_is_the_general_path_and_the_reference(monkeypatch, p, dtype, loss):
    """Sample weights (zeros among them): fused, general and staged paths bit for
    bit, the reference to rounding."""
    n, n_ep = 150, 3
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=6)
    l2w = _l2w(p, 0.02, 1, dtype)
    w = rng.integers(0, 4, n).astype(dtype)
    w /= w.mean()
    order = np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int32)
    lr = 0.25 * _lr(p)
    fused, general = _both_paths(monkeypatch, X, y, theta0, l2w, 1, loss, order, pre, lr, w=w)
    assert fused[0][:3] == (n_ep, 0, n_ep * n)
    _assert_same(fused, general)
    unweighted, _ = _both_paths(monkeypatch, X, y, theta0, l2w, 1, loss, order, pre, lr)
    assert not np.array_equal(fused[3], unweighted[3])
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: 5)
    for staged in _both_paths(monkeypatch, X, y, theta0, l2w, 1, loss, order, pre, lr, w=w):
        _assert_same(staged, fused)
    want_theta = theta0.copy()
    want = _run(ref, X, y, want_theta, l2w, 1, loss, order, pre, lr, w=w)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    scale = float(np.abs(want[2]).max())
    np.testing.assert_allclose(fused[2], want[2], rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(fused[1], want[1], rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_path_divergence_restores_the_last_finite_epoch(dtype):
    n, p = 300, 12
    X, y, pre, theta0, rng = _problem(p, dtype, n, seed=5)
    order = np.array([rng.permutation(n) for _ in range(6)], dtype=np.int32)
    l2w = _l2w(p, 0.01, 1, dtype)
    got_theta, want_theta = theta0.copy(), theta0.copy()
    got = _run(nb, X, y, got_theta, l2w, 1, 0, order, pre, 3.0)
    with np.errstate(all="ignore"):  # the reference overflows on its way
        want = _run(ref, X, y, want_theta, l2w, 1, 0, order, pre, 3.0)
    assert got[0][:3] == want[0][:3]
    assert got[0][1] == 2  # diverged
    np.testing.assert_array_equal(got_theta, theta0)  # restored: the first epoch diverged
    np.testing.assert_array_equal(got_theta, want_theta)


def test_default_sgd_fit_same_with_and_without_fusion(monkeypatch):
    """``fit()``'s default (preconditioned) single-sample gd: the same result either way."""
    X, y, _, _ = fastgd.datasets.make_linear(1500, 9, noise=0.3, seed=2)
    kw = dict(batch_size=1, max_iter=3, tol=0.0, seed=1, l2=0.01, backend="numba")
    fused = fastgd.fit(X, y, **kw)
    monkeypatch.setattr(nb, "FUSED_PRE", False)
    general = fastgd.fit(X, y, **kw)
    np.testing.assert_array_equal(fused.coef, general.coef)
    assert fused.intercept == general.intercept
    np.testing.assert_array_equal(fused.history.loss, general.history.loss)
    want = fastgd.fit(X, y, **dict(kw, backend="numpy"))
    np.testing.assert_allclose(fused.coef, want.coef, rtol=1e-10)
    np.testing.assert_allclose(fused.history.loss, want.history.loss, rtol=1e-10)


# ---------------------------------------------------------------- least-squares shortcut


def _shortcut_or_rows(kind, dense, tol, exact=False):
    """The objective ``run`` reports at its entry point, from statistics that
    disagree with the rows on purpose: at their least-squares solution the
    shortcut's gradient is within rounding of zero, so the value tells which
    of the shortcut (the statistics' sum of squares) and the pass over the
    rows (the rows' one) stood for that epoch.  ``exact``: the statistics'
    data fit exactly (their sum of squares is all cancellation)."""
    rng = np.random.default_rng(0)
    n, p = 500, 3
    X = rng.normal(size=(n, p)) + 1.0
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + rng.normal(size=n)
    y_stats = X @ np.array([1.0, -2.0, 0.5]) + 0.3 if exact else y + 0.5 * rng.normal(size=n)
    G, c, S = ref.lsq_stats(0, X, y_stats, np.array([0.0, 1.0]), p)
    theta = np.linalg.solve(G, c)
    m = p + 1
    pre = np.r_[np.ones((1, m)), np.zeros((1, m))] if kind else None  # T = I, kind 1
    l2w = np.zeros(m * m if dense else m)
    grad = np.zeros(m)
    out = nb.run(
        0,
        0,
        X,
        y,
        theta,
        1.0,
        1.0,
        l2w,
        1,
        0,
        HP,
        np.zeros((2, m)),
        0,
        0,
        0.1,
        SHP,
        0,
        0,
        0,
        np.empty((0, 0), np.int32),
        tol,
        1,
        grad,
        math.nan,
        np.empty(0),
        np.empty((0, m)),
        pre,
        (G, c, S),
    )
    f = out[3]
    rows = float(np.mean((X @ theta[:p] + theta[p] - y) ** 2))
    short = float(np.mean((X @ theta[:p] + theta[p] - y_stats) ** 2))
    assert abs(rows - short) > 1e-3 * rows
    if math.isclose(f, rows, rel_tol=1e-9):
        return "rows"
    assert math.isclose(f, short, rel_tol=1e-9, abs_tol=1e-20)
    return "shortcut"


@pytest.mark.parametrize("kind,dense", [(0, False), (1, False), (0, True), (1, True)])
def test_noise_floor_fallback_only_when_tol_is_zero(kind, dense):
    # kind 0 with diagonal weights: the fallback as it always was, whatever tol
    strict = kind != 0 or dense
    assert _shortcut_or_rows(kind, dense, 1e-9) == ("shortcut" if strict else "rows")
    assert _shortcut_or_rows(kind, dense, 0.0) == "rows"
    # an almost exact fit (the sum of squares lost to cancellation): the rows
    # (kind 0, diagonal weights: its gradient is at the noise floor anyway)
    assert _shortcut_or_rows(kind, dense, 1e-9, exact=True) == "rows"


@pytest.mark.parametrize("n,degree,l2", [(200_000, 3, 0.0), (50_000, 5, 0.0), (50_000, 3, 1e-3)])
def test_preconditioned_poly_fit_with_tol(n, degree, l2):
    x, y, _, _ = fastgd.datasets.make_polynomial(n, degree, noise=0.1, seed=0)
    kw = dict(degree=degree, l2=l2)
    got = fastgd.fit(x, y, tol=1e-14, backend="numba", **kw)
    assert got.status == "converged"
    got_params = np.r_[got.intercept, got.coef]
    if l2 == 0.0:
        want = np.polyfit(x, y, degree)[::-1]
        np.testing.assert_allclose(got_params, want, rtol=0, atol=1e-9 * np.abs(want).max())
    if "cython" in fastgd.available_backends():
        cy = fastgd.fit(x, y, tol=1e-14, backend="cython", **kw)
        np.testing.assert_allclose(
            got_params, np.r_[cy.intercept, cy.coef], rtol=0, atol=1e-9 * np.abs(got_params).max()
        )
    # tol = 0: the reference's history up to the epoch where either stops
    short = fastgd.fit(x, y, tol=0.0, max_iter=50, backend="numba", **kw)
    want = fastgd.fit(x, y, tol=0.0, max_iter=50, backend="numpy", **kw)
    k = min(short.history.loss.shape[0], want.history.loss.shape[0])
    assert k >= 3
    np.testing.assert_allclose(short.history.loss[:k], want.history.loss[:k], rtol=1e-9)
    np.testing.assert_allclose(
        np.r_[short.intercept, short.coef],
        np.r_[want.intercept, want.coef],
        rtol=0,
        atol=1e-9 * np.abs(got_params).max(),
    )


# ---------------------------------------------------------------- value_range


def _np_range(a):
    lo, hi = float(np.min(a)), float(np.max(a))
    if math.isnan(lo) or math.isnan(hi):
        return (math.nan, math.nan)
    return (lo, hi)


def _same(got, want):
    assert len(got) == 2 and all(type(v) is float for v in got)
    for g, w in zip(got, want):
        assert (math.isnan(g) and math.isnan(w)) or g == w


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "n", [1, 2, 3, 5, 8, 1001, nb.PARALLEL_MIN - 1, nb.PARALLEL_MIN, (1 << 20) + 3]
)
def test_value_range_matches_numpy(n, dtype):
    rng = np.random.default_rng(n)
    a = (rng.normal(size=n) * 10 + 3).astype(dtype)
    _same(nb.value_range(a), _np_range(a))
    for pos in sorted({0, n // 2, n - 1}):  # an extreme value anywhere, in any chunk
        b = a.copy()
        b[pos] = -1e30
        _same(nb.value_range(b), _np_range(b))
        b[pos] = 1e30
        _same(nb.value_range(b), _np_range(b))
        b[pos] = np.inf
        _same(nb.value_range(b), _np_range(b))
        b[pos] = -np.inf
        _same(nb.value_range(b), _np_range(b))
        b[pos] = np.nan
        _same(nb.value_range(b), (math.nan, math.nan))
    ro = a.copy()
    ro.flags.writeable = False
    _same(nb.value_range(ro), _np_range(a))


def test_value_range_special_arrays():
    _same(nb.value_range(np.array([np.inf, -np.inf])), (-math.inf, math.inf))
    _same(nb.value_range(np.array([np.inf])), (math.inf, math.inf))
    _same(nb.value_range(np.full(300_000, np.nan, np.float32)), (math.nan, math.nan))
    _same(nb.value_range(np.full(9, -2.5)), (-2.5, -2.5))
    big = np.zeros(1 << 20)
    big[-1] = np.nan  # in the last chunk of the parallel pass
    _same(nb.value_range(big), (math.nan, math.nan))
    with pytest.raises(ValueError, match="empty"):
        nb.value_range(np.empty(0))
    with pytest.raises(ValueError):
        nb.value_range(np.zeros((3, 2)))
    with pytest.raises(ValueError):
        nb.value_range(np.arange(4))
    with pytest.raises(ValueError):
        nb.value_range(np.zeros(8)[::2])


def test_value_range_agrees_with_the_reference_and_cython():
    rng = np.random.default_rng(3)
    a = rng.normal(size=500_000)
    want = ref.value_range(a)
    _same(nb.value_range(a), want)
    if "cython" in fastgd.available_backends():
        from fastgd.backends import _cython as cy

        if hasattr(cy, "value_range"):
            _same(tuple(float(v) for v in cy.value_range(a)), want)
