"""User arrays are never written to, and an exception raised by user code
(callback, fun, grad) propagates unchanged and leaves nothing half-written.

Every array handed to a public entry point is fingerprinted (bytes hash, a
copy, and its flags) before the call and compared after it.  Arrays are left
writeable on purpose: a read-only array would turn a stray write into an
error, hiding exactly what we want to detect.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import fastgd

from .conftest import AVAILABLE, small_linear, small_poly


class Snapshot:
    """Bytes, hash, dtype, shape, strides and flags of an array at one moment."""

    def __init__(self, a):
        self.a = a
        self.copy = np.array(a, copy=True)
        self.digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        self.meta = (a.dtype, a.shape, a.strides, a.flags.writeable, a.flags.c_contiguous)

    def check(self, what=""):
        a = self.a
        assert (
            a.dtype,
            a.shape,
            a.strides,
            a.flags.writeable,
            a.flags.c_contiguous,
        ) == self.meta, what
        assert hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() == self.digest, what
        np.testing.assert_array_equal(a, self.copy, err_msg=what)


def _snap(*arrays):
    return [Snapshot(a) for a in arrays]


def _check(snaps, what=""):
    for s in snaps:
        s.check(what)


# fit settings: every path through fit (full batch, SGD, mini-batch, callback, params history, poly)
FIT_SETTINGS = {
    "full": dict(max_iter=20),
    "sgd": dict(batch_size=1, lr=0.01, max_iter=3, seed=0),
    "minibatch-adam-huber": dict(batch_size=8, optimizer="adam", loss="huber", max_iter=5, seed=1),
    "nesterov-params-callback": dict(
        optimizer="nesterov", record="params", max_iter=6, callback=lambda *a: None
    ),
    "sgd-no-record": dict(batch_size=3, record=None, max_iter=4, seed=2, l2=0.1),
    "diverging": dict(lr=1e6, max_iter=50),
}


@pytest.mark.filterwarnings("ignore::fastgd.DivergenceWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("setting", list(FIT_SETTINGS))
@pytest.mark.parametrize("backend", AVAILABLE)
def test_fit_never_writes_inputs(backend, setting, dtype):
    X, y, _, _ = small_linear(dtype=dtype)
    Xf = np.asfortranarray(X)  # copied internally
    coef_init = np.array([0.1, -0.2, 0.3], dtype=dtype)
    snaps = _snap(X, y, Xf, coef_init)
    r1 = fastgd.fit(X, y, backend=backend, coef_init=coef_init, **FIT_SETTINGS[setting])
    r2 = fastgd.fit(Xf, y, backend=backend, coef_init=coef_init, **FIT_SETTINGS[setting])
    _check(snaps, setting)
    for r in (r1, r2):
        assert np.isfinite(r.coef).all()
        for a in (X, y, Xf, coef_init):
            assert not np.shares_memory(r.coef, a)
    np.testing.assert_array_equal(r1.coef, r2.coef)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_fit_poly_never_writes_inputs(backend):
    x, y, _, _ = small_poly()
    coef_init = np.array([1.0, 0.5, -0.5])
    snaps = _snap(x, y, coef_init)
    for kw in (dict(), dict(batch_size=1, lr=0.01, seed=0), dict(loss="huber", record="params")):
        res = fastgd.fit(x, y, degree=3, coef_init=coef_init, backend=backend, max_iter=10, **kw)
        _check(snaps, str(kw))
        assert not np.shares_memory(res.coef, coef_init)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_fit_memmap_opened_for_writing_is_not_written(backend, tmp_path):
    X, y, _, _ = small_linear()
    mX = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="w+", shape=X.shape)
    my = np.memmap(tmp_path / "y.dat", dtype=y.dtype, mode="w+", shape=y.shape)
    mX[...] = X
    my[...] = y
    mX.flush()
    my.flush()
    before = (tmp_path / "X.dat").read_bytes(), (tmp_path / "y.dat").read_bytes()
    snaps = _snap(mX, my)
    fastgd.fit(mX, my, backend=backend, max_iter=10)
    fastgd.fit(mX, my, backend=backend, batch_size=4, max_iter=2, seed=0)
    fastgd.loss_and_grad(mX, my, np.ones(3), backend=backend)
    _check(snaps)
    mX.flush()
    my.flush()
    assert ((tmp_path / "X.dat").read_bytes(), (tmp_path / "y.dat").read_bytes()) == before


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_loss_and_grad_never_writes_inputs(backend, dtype):
    X, y, _, _ = small_linear(dtype=dtype)
    coef = np.array([1.0, -1.0, 0.5], dtype=dtype)
    snaps = _snap(X, y, coef)
    v, g, gb = fastgd.loss_and_grad(X, y, coef, 0.3, loss="huber", l2=0.5, backend=backend)
    _check(snaps)
    assert not np.shares_memory(g, coef)
    x, yp, _, _ = small_poly(dtype=dtype)
    snaps = _snap(x, yp, coef)
    fastgd.loss_and_grad(x, yp, coef, degree=3, backend=backend)
    _check(snaps)


def _quad(x):
    return float(((x - 2.0) ** 2).sum())


def _quad_grad(x):
    return 2.0 * (x - 2.0)


@pytest.mark.filterwarnings("ignore::fastgd.DivergenceWarning")
@pytest.mark.parametrize(
    "kw",
    [dict(), dict(optimizer="adam", record="params"), dict(lr=5.0, max_iter=400)],
    ids=["gd", "adam-params", "diverging"],
)
@pytest.mark.parametrize("backend", AVAILABLE)
def test_minimize_never_writes_x0(backend, kw):
    for x0 in (np.array([5.0, -3.0, 0.5]), np.array([5.0, -3.0, 0.5], dtype=np.float32)):
        snaps = _snap(x0)
        res = fastgd.minimize(_quad, _quad_grad, x0, backend=backend, **kw)
        _check(snaps)
        assert not np.shares_memory(res.x, x0)
        assert np.isfinite(res.x).all()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_minimize_scribbling_user_functions_never_reach_x0(backend):
    """fun/grad that write into the array they are given cannot reach the caller's x0."""

    def fun(x):
        val = float(((x - 1.0) ** 2).sum())
        x[...] = -5.0
        return val

    def grad(x):
        g = 2.0 * (x - 1.0)
        x[...] = 123.0
        return g

    x0 = np.array([4.0, 4.0])
    snaps = _snap(x0)
    fastgd.minimize(fun, grad, x0, backend=backend, max_iter=30)
    _check(snaps)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_callback_gets_copies(backend):
    """A callback that writes into the coef it is given does not change the fit."""
    X, y, _, _ = small_linear()

    def scribble(epoch, coef, intercept, objective):
        coef[...] = 1e300

    plain = fastgd.fit(X, y, backend=backend, max_iter=15, callback=lambda *a: None)
    res = fastgd.fit(X, y, backend=backend, max_iter=15, callback=scribble)
    np.testing.assert_array_equal(res.coef, plain.coef)
    assert res.intercept == plain.intercept


class Boom(Exception):
    """Raised by user code in these tests."""


@pytest.mark.parametrize("batch_size", [None, 1])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_callback_exception_propagates_unchanged(backend, batch_size):
    X, y, _, _ = small_linear()
    coef_init = np.array([0.5, 0.5, 0.5])
    snaps = _snap(X, y, coef_init)
    err = Boom("from the callback")
    seen = []

    def cb(epoch, coef, intercept, objective):
        seen.append(epoch)
        if epoch == 3:
            raise err

    kw = dict(
        backend=backend, batch_size=batch_size, lr=0.01, seed=5, max_iter=10, coef_init=coef_init
    )
    before = fastgd.fit(X, y, **kw)
    with pytest.raises(Boom) as info:
        fastgd.fit(X, y, callback=cb, **kw)
    assert info.value is err and seen == [1, 2, 3]
    _check(snaps)
    # nothing left behind: the same fit afterwards gives the same answer
    after = fastgd.fit(X, y, **kw)
    np.testing.assert_array_equal(after.coef, before.coef)
    assert after.intercept == before.intercept


@pytest.mark.parametrize("where", ["fun-first", "fun-later", "grad-first", "grad-later"])
@pytest.mark.parametrize("backend", AVAILABLE)
def test_minimize_exception_propagates_unchanged(backend, where):
    err = Boom(where)
    calls = {"fun": 0, "grad": 0}
    which, when = where.split("-")
    limit = 1 if when == "first" else 5

    def fun(x):
        calls["fun"] += 1
        if which == "fun" and calls["fun"] >= limit:
            raise err
        return _quad(x)

    def grad(x):
        calls["grad"] += 1
        if which == "grad" and calls["grad"] >= limit:
            raise err
        return _quad_grad(x)

    x0 = np.array([1.0, 7.0])
    snaps = _snap(x0)
    with pytest.raises(Boom) as info:
        fastgd.minimize(fun, grad, x0, backend=backend, max_iter=100)
    assert info.value is err
    _check(snaps)
    assert calls[which] == limit


@pytest.mark.parametrize("backend", AVAILABLE)
def test_keyboard_interrupt_in_callback_returns_finite_parameters(backend):
    """Ctrl-C (here raised from the callback) stops the fit with what it reached."""
    X, y, _, _ = small_linear()
    snaps = _snap(X, y)

    def cb(epoch, coef, intercept, objective):
        if epoch == 4:
            raise KeyboardInterrupt

    res = fastgd.fit(X, y, backend=backend, callback=cb, max_iter=50)
    assert res.status == "interrupted" and res.n_iter == 4 and not res.converged
    assert np.isfinite(res.coef).all() and np.isfinite(res.objective)
    _check(snaps)


def test_datasets_out_untouched_on_error():
    """``out=`` is written only by a call that succeeds: a refused call leaves both arrays as they were."""
    X = np.full((10, 2), 7.0)
    y = np.full(10, 7.0)
    snaps = _snap(X, y)
    for bad in (dict(noise=-1.0), dict(outliers=2.0), dict(seed=-1), dict(dtype=np.int32)):
        with pytest.raises((ValueError, TypeError)):
            fastgd.datasets.make_linear(10, 2, out=(X, y), **bad)
        _check(snaps, str(bad))
    with pytest.raises(ValueError):
        fastgd.datasets.make_linear(10, 2, out=(X, np.empty(9)))
    _check(snaps)
    Xr, yr, _, _ = fastgd.datasets.make_linear(10, 2, seed=3)
    Xo, yo, _, _ = fastgd.datasets.make_linear(10, 2, seed=3, out=(X, y))
    assert Xo is X and yo is y
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
