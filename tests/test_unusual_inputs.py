"""Legitimate but unusual inputs just work, with the same answer on every backend.

Each variant holds exactly the same numbers as a plain C-contiguous float64
(or float32) array, so on a given backend the fit must be *identical* to the
fit of that plain array, and every backend must agree with the numpy
reference (to the tolerance of tests/test_backends.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgd

from .conftest import AVAILABLE

RTOL = {np.float64: 1e-9, np.float32: 1e-4}

RNG = np.random.default_rng(7)
XI = RNG.integers(-3, 4, size=(30, 3))  # small integers: exact in every dtype
YI = XI @ np.array([1, -2, 3]) + RNG.integers(-1, 2, size=30) + 5
XF = XI.astype(np.float64)
YF = YI.astype(np.float64)
XP = np.linspace(-2.0, 3.0, 30)  # 1-D input for polynomials
YP = 1.0 - XP + 0.5 * XP**2


def _readonly(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _strided(a):
    """A non-contiguous view holding the values of ``a``."""
    big = np.zeros((a.shape[0] * 2,) + tuple(3 * s for s in a.shape[1:]), dtype=a.dtype)
    view = big[::2, ::3] if a.ndim == 2 else big[::2]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


def _reversed(a):
    """A negative-stride view holding the values of ``a``."""
    rev = np.array(a[::-1], copy=True)[::-1]
    assert rev.strides[0] < 0
    return rev


def _memmap(tmp_path, name, a, mode="r"):
    path = tmp_path / f"{name}.dat"
    mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
    mm[...] = a
    mm.flush()
    del mm
    return np.memmap(path, dtype=a.dtype, mode=mode, shape=a.shape)


# name -> function(tmp_path) -> (X, y); all equal in value to (XF, YF)
LINEAR_VARIANTS = {
    "lists": lambda t: (XI.tolist(), YI.tolist()),
    "float-lists": lambda t: (XF.tolist(), YF.tolist()),
    "tuples": lambda t: (tuple(map(tuple, XI.tolist())), tuple(YI.tolist())),
    "int64": lambda t: (XI.astype(np.int64), YI.astype(np.int64)),
    "int32-int16-mix": lambda t: (XI.astype(np.int32), YI.astype(np.int16)),
    "int8": lambda t: (XI.astype(np.int8), YI.astype(np.int16)),
    "float16": lambda t: (XF.astype(np.float16), YF.astype(np.float16)),
    "big-endian": lambda t: (XF.astype(">f8"), YF.astype(">f8")),
    "fortran": lambda t: (np.asfortranarray(XF), YF),
    "strided": lambda t: (_strided(XF), _strided(YF)),
    "negative-strides": lambda t: (_reversed(XF), _reversed(YF)),
    "transposed-view": lambda t: (np.ascontiguousarray(XF.T).T, YF),
    "readonly": lambda t: (_readonly(XF), _readonly(YF)),
    "readonly-fortran": lambda t: (_readonly(np.asfortranarray(XF)), _readonly(YF)),
    "memmap-r": lambda t: (_memmap(t, "X", XF), _memmap(t, "y", YF)),
    "memmap-c": lambda t: (_memmap(t, "X", XF, "c"), _memmap(t, "y", YF, "c")),
    "matrix-column-y": lambda t: (XF, YF.reshape(-1, 1)[:, 0]),
}

FIT_SETTINGS = {
    "full-batch": dict(max_iter=40, tol=0.0),
    "sgd": dict(batch_size=1, lr=0.005, max_iter=5, tol=0.0, seed=11),
    "minibatch-huber": dict(
        batch_size=7, loss="huber", optimizer="adam", lr=0.05, max_iter=8, seed=2, tol=0.0
    ),
}


def _assert_same(got, want):
    assert got.status == want.status and got.n_iter == want.n_iter
    assert got.coef.dtype == want.coef.dtype
    np.testing.assert_array_equal(got.coef, want.coef)
    assert got.intercept == want.intercept
    np.testing.assert_array_equal(got.history.loss, want.history.loss)


def _assert_close(got, ref):
    rtol = RTOL[got.coef.dtype.type]
    assert got.n_iter == ref.n_iter and got.status == ref.status
    scale = max(1.0, float(np.abs(ref.coef).max()), abs(ref.intercept))
    np.testing.assert_allclose(got.coef, ref.coef, rtol=rtol, atol=rtol * scale)
    assert got.intercept == pytest.approx(ref.intercept, rel=rtol, abs=float(rtol * scale))


@pytest.fixture(scope="module")
def references():
    """The plain-array fit on every backend (computed once)."""
    return {
        (b, s): fastgd.fit(XF, YF, backend=b, **kw)
        for b in AVAILABLE
        for s, kw in FIT_SETTINGS.items()
    }


@pytest.mark.parametrize("setting", list(FIT_SETTINGS))
@pytest.mark.parametrize("variant", list(LINEAR_VARIANTS))
@pytest.mark.parametrize("backend", AVAILABLE)
def test_linear_variant_same_fit(tmp_path, references, backend, variant, setting):
    Xv, yv = LINEAR_VARIANTS[variant](tmp_path)
    res = fastgd.fit(Xv, yv, backend=backend, **FIT_SETTINGS[setting])
    assert res.coef.dtype == np.float64
    _assert_same(res, references[(backend, setting)])
    _assert_close(res, references[("numpy", setting)])


@pytest.mark.parametrize("backend", AVAILABLE)
def test_float32_variants_stay_float32(tmp_path, backend):
    X32, y32 = XF.astype(np.float32), YF.astype(np.float32)
    want = fastgd.fit(X32, y32, backend=backend, max_iter=30, tol=0.0)
    ref = fastgd.fit(X32, y32, backend="numpy", max_iter=30, tol=0.0)
    for Xv, yv in [
        (np.asfortranarray(X32), y32),
        (_readonly(X32), _readonly(y32)),
        (_memmap(tmp_path, "X32", X32), _memmap(tmp_path, "y32", y32)),
        (_strided(X32), _strided(y32)),
        (X32.astype(">f4"), y32.astype(">f4")),
        (X32, YF),
    ]:  # float64 y follows X's dtype
        res = fastgd.fit(Xv, yv, backend=backend, max_iter=30, tol=0.0)
        assert res.coef.dtype == np.float32
        _assert_same(res, want)
        _assert_close(res, ref)


POLY_VARIANTS = {
    "list": lambda t: (XP.tolist(), YP.tolist()),
    "strided": lambda t: (_strided(XP), YP),
    "readonly": lambda t: (_readonly(XP), _readonly(YP)),
    "memmap": lambda t: (_memmap(t, "x", XP), _memmap(t, "yp", YP)),
    "column-slice": lambda t: (np.column_stack([XP, XP])[:, 1], YP),
}


@pytest.mark.parametrize("variant", list(POLY_VARIANTS))
@pytest.mark.parametrize("backend", AVAILABLE)
def test_poly_variant_same_fit(tmp_path, backend, variant):
    xv, yv = POLY_VARIANTS[variant](tmp_path)
    # tol > 0: the fit stops on its convergence, not on where rounding settles
    # (an exact fit: tol=0 would stop at each summation order's own fixed point)
    kw = dict(degree=2, max_iter=60, tol=1e-10)
    want = fastgd.fit(XP, YP, backend=backend, **kw)
    ref = fastgd.fit(XP, YP, backend="numpy", **kw)
    res = fastgd.fit(xv, yv, backend=backend, **kw)
    _assert_same(res, want)
    _assert_close(res, ref)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_loss_and_grad_variants(tmp_path, backend):
    coef = np.array([0.5, -1.0, 2.0])
    want = fastgd.loss_and_grad(XF, YF, coef, 0.25, backend=backend)
    ref = fastgd.loss_and_grad(XF, YF, coef, 0.25, backend="numpy")
    assert want[0] == pytest.approx(ref[0], rel=1e-12)
    np.testing.assert_allclose(want[1], ref[1], rtol=1e-12)
    for name, make in LINEAR_VARIANTS.items():
        Xv, yv = make(tmp_path)
        for cv in (coef.tolist(), _readonly(coef), _strided(coef), _memmap(tmp_path, "c", coef)):
            got = fastgd.loss_and_grad(Xv, yv, cv, np.float32(0.25), backend=backend)
            assert got[0] == want[0], name
            np.testing.assert_array_equal(got[1], want[1])
            assert got[2] == want[2]


@pytest.mark.parametrize("backend", AVAILABLE)
def test_single_feature(backend):
    X = XF[:, :1]
    ref = fastgd.fit(X, YF, backend="numpy", tol=1e-12, max_iter=5000)
    res = fastgd.fit(X, YF, backend=backend, tol=1e-12, max_iter=5000)
    assert res.coef.shape == (1,)
    slope, icpt = np.polyfit(X[:, 0], YF, 1)
    assert res.coef[0] == pytest.approx(slope, rel=1e-6)
    assert res.intercept == pytest.approx(icpt, rel=1e-6, abs=1e-6)
    _assert_close(res, ref)


@pytest.mark.parametrize("batch_size", [None, 1, 5])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_single_sample(backend, batch_size):
    """One row: the fit interpolates it (any point on a line through it is optimal)."""
    X, y = np.array([[2.0, -1.0]]), np.array([3.0])
    res = fastgd.fit(X, y, backend=backend, batch_size=batch_size, tol=1e-12, max_iter=2000, seed=0)
    assert np.isfinite(res.coef).all() and res.status == "converged"
    assert res.predict(X)[0] == pytest.approx(3.0, abs=1e-8)
    ref = fastgd.fit(X, y, backend="numpy", batch_size=batch_size, tol=1e-12, max_iter=2000, seed=0)
    _assert_close(res, ref)
    v, g, gb = fastgd.loss_and_grad(X, y, [0, 0], backend=backend)  # integer coef
    assert v == 9.0 and g.tolist() == [-12.0, 6.0] and gb == -6.0
    one = fastgd.fit([1.5], [2.0], degree=2, backend=backend, max_iter=200)
    assert np.isfinite(one.coef).all()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_intercept_only(backend):
    """No features at all: the fit is the mean (the tutorial example)."""
    y = np.array([12.1, 12.8, 14.9, 16.3, 17.2])
    res = fastgd.fit(np.empty((5, 0)), y, backend=backend, tol=1e-12, max_iter=1000)
    assert res.coef.shape == (0,)
    assert res.intercept == pytest.approx(y.mean(), rel=1e-10)


@pytest.mark.parametrize("setting", ["plain", "huber-adam"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_batch_size_at_least_n_is_full_batch(backend, setting):
    """Documented: ``batch_size >= n_samples`` is full batch (same trajectory, no shuffling)."""
    kw = dict(max_iter=25, tol=0.0, seed=4, record="params")
    if setting == "huber-adam":
        kw.update(loss="huber", optimizer="adam", lr=0.1)
    full = fastgd.fit(XF, YF, backend=backend, **kw)
    for bs in (30, 31, 1000, 2**40):
        res = fastgd.fit(XF, YF, backend=backend, batch_size=bs, **kw)
        _assert_same(res, full)
        np.testing.assert_array_equal(res.history.params, full.history.params)
        assert res.info["batch_size"] is None
        assert res.lr == full.lr


@pytest.mark.parametrize("backend", AVAILABLE)
def test_minimize_unusual_x0(backend):
    def fun(x):
        return float(((x - 1.0) ** 2).sum())

    def grad(x):
        return 2.0 * (x - 1.0)

    want = fastgd.minimize(fun, grad, np.array([3.0, -2.0]), backend=backend, max_iter=50)
    for x0 in (
        [3, -2],
        (3.0, -2.0),
        _readonly(np.array([3.0, -2.0])),
        np.array([3, -2], dtype=np.int8),
        _strided(np.array([3.0, -2.0])),
    ):
        got = fastgd.minimize(fun, grad, x0, backend=backend, max_iter=50)
        assert got.x.dtype == np.float64
        np.testing.assert_array_equal(got.x, want.x)
        assert got.n_iter == want.n_iter
    g32 = fastgd.minimize(
        fun, grad, np.array([3.0, -2.0], dtype=np.float32), backend=backend, max_iter=50
    )
    assert g32.x.dtype == np.float32
