"""The numba backend: what the cross-backend test does not reach.

Lazy import, parallel kernels from several Python threads at once, results
independent of the thread count, read-only and memory-mapped inputs, int64
sample orders, staged stochastic epochs taking the plain epoch's steps,
divergence detection in compiled code, the compiled minimize loop, and the
least-squares shortcut agreeing with the pass over the rows; the same with
sample weights, and the schedule's epoch offset.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastgd
from fastgd import _config
from fastgd._result import DivergenceWarning

from .conftest import AVAILABLE, run_concurrently

pytestmark = pytest.mark.skipif("numba" not in AVAILABLE, reason="numba not installed")


def _nb():
    from fastgd.backends import _numba

    return _numba


def _big(dtype=np.float64, seed=0):
    """Large enough (rows x columns) for the parallel kernels."""
    nb = _nb()
    n, p = 4 * nb.PARALLEL_MIN // 8 + 123, 8
    X, y, coef, b = fastgd.datasets.make_linear(
        n, p, noise=0.5, outliers=0.05, seed=seed, dtype=dtype
    )
    assert X.size >= nb.PARALLEL_MIN and nb._n_blocks(X) > 1
    return X, y, coef, b


def _weights(n, dtype=np.float64, seed=0):
    """Integer weights 0..3 (some rows dropped), normalised to mean 1 as fit() passes them."""
    w = np.random.default_rng(seed).integers(0, 4, n).astype(dtype)
    return w / w.mean()


def test_import_fastgd_does_not_import_numba():
    code = (
        "import sys, numpy as np, fastgd\n"
        "fastgd.fit(np.arange(5.0)[:, None], np.arange(5.0), backend='numpy', max_iter=3)\n"
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fastmath_flags_keep_nan_semantics():
    assert not _config.FASTMATH & {"fast", "nnan", "ninf"}
    assert {"reassoc", "contract", "arcp", "nsz", "afn"} >= _config.FASTMATH


def test_threading_layer_is_thread_safe():
    _nb()
    assert _config.threading_layer() is not None
    assert _config.thread_safe() or _config.parallel_lock() is not None


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_eight_threads_give_the_sequential_results(loss):
    """Parallel kernels entered from 8 Python threads at once: no abort, same bits."""
    problems = [_big(np.float32 if k % 4 == 3 else np.float64, seed=k) for k in range(8)]
    opts = ["gd", "momentum", "nesterov", "adam"]

    def fit_job(k):
        X, y, _, _ = problems[k]
        return lambda: fastgd.fit(
            X,
            y,
            loss=loss,
            optimizer=opts[k % 4],
            max_iter=6,
            tol=0.0,
            lr=0.05,
            l2=0.01,
            backend="numba",
        )

    def lag_job(k):
        X, y, coef, b = problems[k]
        return lambda: fastgd.loss_and_grad(X, y, 0.5 * coef, b, loss=loss, backend="numba")

    jobs = [fit_job(k) if k % 2 == 0 else lag_job(k) for k in range(8)]
    sequential = [job() for job in jobs]
    for _ in range(2):
        concurrent = run_concurrently(jobs)
        for seq, con in zip(sequential, concurrent):
            if isinstance(seq, tuple):  # loss_and_grad
                assert seq[0] == con[0] and seq[2] == con[2]
                assert np.array_equal(seq[1], con[1])
            else:
                assert np.array_equal(seq.coef, con.coef)
                assert seq.intercept == con.intercept
                assert np.array_equal(seq.history.loss, con.history.loss)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_results_do_not_depend_on_the_thread_count(loss):
    import numba

    X, y, coef, b = _big()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fastgd.loss_and_grad(X, y, 0.5 * coef, b, loss=loss, backend="numba")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = fastgd.loss_and_grad(X, y, 0.5 * coef, b, loss=loss, backend="numba")
    finally:
        numba.set_num_threads(before)
    assert one[0] == many[0] and one[2] == many[2]
    assert np.array_equal(one[1], many[1])


def test_results_do_not_depend_on_the_scheduling_and_leave_it_alone():
    """fastgd schedules its parallel loops dynamically, and restores the caller's chunk size."""
    import numba

    X, y, coef, b = _big()
    before = numba.get_parallel_chunksize()
    try:
        results = []
        for user_chunk in (0, 1, 7):
            numba.set_parallel_chunksize(user_chunk)
            results.append(fastgd.loss_and_grad(X, y, 0.5 * coef, b, backend="numba"))
            fastgd.fit(X, y, backend="numba", max_iter=2, lr=0.01)
            assert numba.get_parallel_chunksize() == user_chunk
    finally:
        numba.set_parallel_chunksize(before)
    for got in results[1:]:
        assert got[0] == results[0][0] and np.array_equal(got[1], results[0][1])


def test_parallel_pass_matches_the_reference():
    X, y, coef, b = _big()
    for loss in ("mse", "huber"):
        ref = fastgd.loss_and_grad(X, y, 0.5 * coef, b, loss=loss, l2=0.1, backend="numpy")
        got = fastgd.loss_and_grad(X, y, 0.5 * coef, b, loss=loss, l2=0.1, backend="numba")
        assert got[0] == pytest.approx(ref[0], rel=1e-12)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-10, atol=1e-12 * np.abs(ref[1]).max())
        assert got[2] == pytest.approx(ref[2], rel=1e-10)


@pytest.mark.parametrize("model", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_parallel_passes_match_the_reference(model, dtype):
    """objective_grad, objective and lsq_stats with weights, on data large enough for
    the parallel passes: the reference to rounding; weight 0 drops a row."""
    nb = _nb()
    from fastgd.backends import _numpy as ref

    if model == 0:
        X, y, _, _ = _big(dtype)
        p, basis = X.shape[1], np.array([0.0, 1.0])
    else:
        x, y, _, _ = fastgd.datasets.make_polynomial(
            2 * nb.PARALLEL_MIN + 123, 4, noise=0.1, seed=2, dtype=dtype
        )
        X, p, basis = x[:, None], 4, np.array([0.2, 0.6])
    assert X.size >= nb.PARALLEL_MIN and nb._n_blocks(X) > 1
    w = _weights(X.shape[0], dtype)
    theta = (0.5 * np.random.default_rng(1).normal(size=p + 1)).astype(dtype)
    l2w = np.r_[np.full(p, 0.1), 0.0].astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    keep = w > 0
    for loss in (0, 1):
        g, gr = np.empty(p + 1, dtype), np.empty(p + 1, dtype)
        f = nb.objective_grad(model, loss, X, y, theta, basis, 0.5, l2w, 1, g, w=w)
        fr = ref.objective_grad(model, loss, X, y, theta, basis, 0.5, l2w, 1, gr, w=w)
        assert f == pytest.approx(fr, rel=rtol)
        np.testing.assert_allclose(g, gr, rtol=rtol, atol=rtol * np.abs(gr).max())
        assert nb.objective(model, loss, X, y, theta, basis, 0.5, l2w, w=w) == pytest.approx(
            fr, rel=rtol
        )
        # without a penalty: dropping the weight-0 rows changes the sums only by
        # their count (n_kept / n)
        f0 = nb.objective(model, loss, X, y, theta, basis, 0.5, 0 * l2w, w=w)
        fk = nb.objective(model, loss, X[keep], y[keep], theta, basis, 0.5, 0 * l2w, w=w[keep])
        assert fk * keep.mean() == pytest.approx(f0, rel=10 * rtol)
    for got, want in zip(
        nb.lsq_stats(model, X, y, basis, p, w=w), ref.lsq_stats(model, X, y, basis, p, w=w)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_weights_are_checked_and_converted():
    nb = _nb()
    X, y, coef, b = fastgd.datasets.make_linear(50, 3, seed=2, dtype=np.float32)
    theta, l2w = np.r_[coef, b].astype(np.float32), np.zeros(4, np.float32)
    w = np.linspace(0.5, 1.5, 50)
    g64, g32 = np.empty(4, np.float32), np.empty(4, np.float32)
    f64 = nb.objective_grad(0, 0, X, y, theta, 1.0, 1.0, l2w, 1, g64, w=w)
    f32 = nb.objective_grad(0, 0, X, y, theta, 1.0, 1.0, l2w, 1, g32, w=w.astype(np.float32))
    assert f64 == f32 and np.array_equal(g64, g32)  # float64 weights in the data dtype
    with pytest.raises(ValueError, match=r"w must have shape \(50,\)"):
        nb.objective_grad(0, 0, X, y, theta, 1.0, 1.0, l2w, 1, g64, w=w[:49])


def test_read_only_and_memmap_inputs(tmp_path):
    X, y, coef, b = fastgd.datasets.make_linear(500, 4, seed=1)
    kw = dict(max_iter=30, tol=0.0, lr=0.05, backend="numba", batch_size=16, seed=2)
    expected = fastgd.fit(X, y, **kw)
    Xr, yr = X.copy(), y.copy()
    Xr.flags.writeable = False
    yr.flags.writeable = False
    Xm = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="w+", shape=X.shape)
    ym = np.memmap(tmp_path / "y.dat", dtype=y.dtype, mode="w+", shape=y.shape)
    Xm[:] = X
    ym[:] = y
    Xm.flush()
    ym.flush()
    del Xm, ym
    Xm = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="r", shape=X.shape)
    ym = np.memmap(tmp_path / "y.dat", dtype=y.dtype, mode="r", shape=y.shape)
    for Xi, yi in ((Xr, yr), (Xm, ym)):
        got = fastgd.fit(Xi, yi, **kw)
        assert np.array_equal(got.coef, expected.coef)
        assert got.intercept == expected.intercept
        v = fastgd.loss_and_grad(Xi, yi, coef, b, backend="numba")
        w = fastgd.loss_and_grad(X, y, coef, b, backend="numba")
        assert v[0] == w[0] and np.array_equal(v[1], w[1])


def _run_args(
    X,
    y,
    order,
    n_epochs,
    batch_size,
    epoch0=0,
    theta=None,
    f0=float("nan"),
    grad=None,
    state=None,
    hist=None,
):
    p = X.shape[1]
    theta = np.zeros(p + 1) if theta is None else theta
    return (
        0,
        0,
        X,
        y,
        theta,
        1.0,
        1.0,
        np.full(p + 1, 0.01),
        1,
        1,
        np.array([0.9, 0.9, 0.999, 1e-8, 0.99]),
        np.zeros((2, p + 1)) if state is None else state,
        0,
        0,
        0.01,
        np.array([0.25, 0.99]),
        epoch0,
        n_epochs,
        batch_size,
        order,
        0.0,
        1,
        np.zeros(p + 1) if grad is None else grad,
        f0,
        np.empty(n_epochs + 1) if hist is None else hist,
        np.empty((0, p + 1)),
    )


@pytest.mark.parametrize("batch_size", [1, 5])
def test_int64_order_same_as_int32(batch_size):
    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(200, 3, seed=4)
    rng = np.random.default_rng(0)
    order = np.stack([rng.permutation(200) for _ in range(3)])
    a = _run_args(X, y, order.astype(np.int32), 3, batch_size)
    b = _run_args(X, y, order.astype(np.int64), 3, batch_size)
    ra, rb = nb.run(*a), nb.run(*b)
    assert ra == rb
    assert np.array_equal(a[4], b[4])
    assert not np.array_equal(a[4], np.zeros(4))


STAGED = [
    (opt, bs, degree, loss, dtype)
    for opt in ("gd", "momentum", "adam")
    for bs in (1, 3)
    for degree in (None, 3)
    for loss in ("mse", "huber")
    for dtype in (np.float64, np.float32)
]


@pytest.mark.parametrize("opt,batch_size,degree,loss,dtype", STAGED)
def test_staged_epochs_take_the_same_steps(monkeypatch, opt, batch_size, degree, loss, dtype):
    """Rows staged chunk by chunk by two threads: the same bits as the plain epoch.

    Chunks of 3-4 batches, so chunk boundaries fall everywhere, and the two
    staging threads race over every chunk (a row copied twice or never
    would change the steps).
    """
    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(2003, 6, noise=0.2, outliers=0.05, seed=5, dtype=dtype)
    if degree is not None:
        X = X[:, 0]
    kw = dict(
        optimizer=opt,
        batch_size=batch_size,
        degree=degree,
        loss=loss,
        l2=0.01,
        lr=0.002 if degree else 0.01,
        max_iter=3,
        tol=0.0,
        seed=6,
        backend="numba",
    )
    plain = fastgd.fit(X, y, **kw)
    rows = 4 * batch_size + (1 if batch_size == 1 else 0)
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: rows)
    staged = fastgd.fit(X, y, **kw)
    assert plain.n_iter == staged.n_iter == 3
    assert np.array_equal(plain.coef, staged.coef)
    assert plain.intercept == staged.intercept
    assert np.array_equal(plain.history.loss, staged.history.loss)


STAGED_W = [
    (opt, bs, degree, dtype)
    for opt in ("gd", "adam")
    for bs in (1, 3)
    for degree in (None, 3)
    for dtype in (np.float64, np.float32)
]


@pytest.mark.parametrize("opt,batch_size,degree,dtype", STAGED_W)
def test_staged_weighted_epochs_take_the_same_steps(monkeypatch, opt, batch_size, degree, dtype):
    """The weights staged with their rows: the same bits as the plain weighted epoch."""
    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(2003, 6, noise=0.2, outliers=0.05, seed=5, dtype=dtype)
    if degree is not None:
        X = X[:, 0]
    kw = dict(
        optimizer=opt,
        batch_size=batch_size,
        degree=degree,
        loss="huber",
        l2=0.01,
        lr=0.002 if degree else 0.01,
        max_iter=3,
        tol=0.0,
        seed=6,
        backend="numba",
        sample_weight=_weights(2003),
    )
    plain = fastgd.fit(X, y, **kw)
    rows = 4 * batch_size + (1 if batch_size == 1 else 0)  # whole batches
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: rows)
    staged = fastgd.fit(X, y, **kw)
    assert plain.n_iter == staged.n_iter == 3
    assert np.array_equal(plain.coef, staged.coef)
    assert plain.intercept == staged.intercept
    assert np.array_equal(plain.history.loss, staged.history.loss)


def test_staged_epoch_with_one_thread_and_from_several_threads(monkeypatch):
    """One thread runs both halves of every chunk in turn; concurrent fits stay apart."""
    import numba

    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(3001, 9, seed=7)
    kw = dict(batch_size=1, max_iter=2, tol=0.0, lr=0.01, seed=8, backend="numba")
    plain = fastgd.fit(X, y, **kw)
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: 50)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = fastgd.fit(X, y, **kw)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one.coef, plain.coef) and one.intercept == plain.intercept
    for got in run_concurrently([lambda: fastgd.fit(X, y, **kw)] * 4):
        assert np.array_equal(got.coef, plain.coef) and got.intercept == plain.intercept


def _staging_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "fastgd-stage"]


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("helper", ["gone", "late", "failed"])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_staged_epochs_without_their_staging_thread(monkeypatch, batch_size, helper):
    """The staging thread gone from the start, starting late, or failing at once:
    the stepping thread copies what it has to, the same bits, and nothing waits."""
    import threading
    import time

    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(2003, 6, noise=0.2, seed=5)
    kw = dict(
        batch_size=batch_size,
        optimizer="adam",
        max_iter=3,
        tol=0.0,
        lr=0.01,
        seed=8,
        backend="numba",
    )
    plain = fastgd.fit(X, y, **kw)
    rows = 4 * batch_size + (1 if batch_size == 1 else 0)  # whole batches
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: rows)
    work = nb._Staging._work

    def gone(self):
        self.marks[24] = nb.STAGE_STOP

    def late(self):
        time.sleep(0.05)
        work(self)

    stager = nb._stager

    def failing(*args):  # the kernel raises on the staging thread (not when compiled)
        if threading.current_thread().name == "fastgd-stage":
            raise RuntimeError("no staging")
        return stager(*args)

    if helper == "failed":
        monkeypatch.setattr(nb, "_stager", failing)
    else:
        monkeypatch.setattr(nb._Staging, "_work", {"gone": gone, "late": late}[helper])
    staged = fastgd.fit(X, y, **kw)
    assert np.array_equal(plain.coef, staged.coef) and plain.intercept == staged.intercept
    assert np.array_equal(plain.history.loss, staged.history.loss)
    assert not _staging_threads()


def test_staging_thread_ends_with_the_call(monkeypatch):
    """A call that stops early (tolerance) or is given more epochs than it runs
    leaves no staging thread behind; the stager's kernel returns at once when
    told to stop before it starts."""
    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(3001, 5, noise=0.0, seed=7)
    monkeypatch.setattr(nb, "_stage_rows", lambda X, batch_size: 64)
    res = fastgd.fit(X, y, batch_size=1, max_iter=500, tol=1e-3, lr=0.01, seed=1, backend="numba")
    assert res.converged and res.n_iter < 500
    assert not _staging_threads()
    staging = nb._Staging(X, y, None, np.zeros((4, 3001), np.int32), 64)
    staging.marks[16] = nb.STAGE_STOP
    nb._stager(
        X, y, None, np.zeros((4, 3001), np.int32), 64, staging.Xs, staging.ys, None, staging.marks
    )  # returns: told to stop
    assert staging.marks[24] == -1  # no chunk staged


def test_stage_rows_chooses_whole_batches_of_large_data(monkeypatch):
    import numba

    nb = _nb()
    big = np.empty((64 * nb.STAGE_BYTES // 800 + 1, 100))  # chunks of STAGE_BYTES
    small = np.empty((nb.STAGE_MIN_BYTES // 800, 100))  # just under STAGE_MIN_BYTES
    edge = np.empty((nb.STAGE_MIN_BYTES // 800 + 1, 100))  # just over: chunks of 1/64 of X
    if numba.get_num_threads() >= 2:
        assert nb._stage_rows(big, 1) == nb.STAGE_BYTES // 800
        rows = nb._stage_rows(big, 7)
        assert rows > 0 and rows % 7 == 0 and rows * 800 <= nb.STAGE_BYTES
        big32 = np.empty((64 * nb.STAGE_BYTES // 400 + 1, 100), np.float32)
        assert nb._stage_rows(big32, 1) == nb.STAGE_BYTES // 400
        assert 0 < 2 * nb._stage_rows(edge, 1) * 800 <= edge.nbytes / 32
    assert nb._stage_rows(small, 1) == 0  # fits the caches
    assert nb._stage_rows(big, 0) == 0  # full batch
    assert nb._stage_rows(big, nb.STAGE_BYTES // 800 + 1) == 0  # a batch larger than a chunk
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert nb._stage_rows(big, 1) == 0  # nobody to stage
    finally:
        numba.set_num_threads(before)


def test_least_squares_shortcut_matches_the_row_pass():
    """Chunks of one epoch take the pass over the rows; one chunk of 40 epochs
    the Gram matrix: both follow the same trajectory."""
    nb = _nb()
    X, y, _, _ = fastgd.datasets.make_linear(300, 3, noise=0.3, seed=5)
    empty = np.empty((0, 0), dtype=np.int32)
    whole = _run_args(X, y, empty, 40, 0)
    assert nb.run(*whole)[:3] == (40, 0, 40)

    theta, grad, state = np.zeros(4), np.zeros(4), np.zeros((2, 4))
    hist = np.empty(41)
    f, t = float("nan"), 0
    for e in range(40):
        args = list(
            _run_args(
                X, y, empty, 1, 0, epoch0=e, theta=theta, f0=f, grad=grad, state=state, hist=hist
            )
        )
        args[12] = t
        done, status, t, f = nb.run(*args)
        assert (done, status) == (1, 0)
    np.testing.assert_allclose(theta, whole[4], rtol=1e-11)
    np.testing.assert_allclose(hist, whole[24], rtol=1e-11)


@pytest.mark.parametrize("model", [0, 1])
def test_weighted_least_squares_shortcut_matches_the_reference(model):
    """Full-batch MSE on weighted statistics (the Gram matrix / moments of ``run``'s own
    pass, or the caller's ``stats``): the reference's weighted passes over the rows."""
    nb = _nb()
    from fastgd.backends import _numpy as ref

    X, y, _, _ = fastgd.datasets.make_linear(300, 3, noise=0.3, seed=5)
    p, basis = 3, np.array([0.1, 0.5])
    if model == 1:
        X = np.ascontiguousarray(X[:, :1])
    w = _weights(300)
    empty = np.empty((0, 0), dtype=np.int32)

    def go(mod, **kw):
        theta, grad, hist = np.zeros(p + 1), np.zeros(p + 1), np.empty(41)
        out = mod.run(
            model,
            0,
            X,
            y,
            theta,
            basis,
            1.0,
            np.full(p + 1, 0.01),
            1,
            1,
            np.array([0.9, 0.9, 0.999, 1e-8, 0.99]),
            np.zeros((2, p + 1)),
            0,
            0,
            0.05,
            np.array([0.25, 0.99]),
            0,
            40,
            0,
            empty,
            0.0,
            1,
            grad,
            float("nan"),
            hist,
            np.empty((0, p + 1)),
            **kw,
        )
        return out, theta, hist

    want = go(ref, w=w)
    stats = nb.lsq_stats(model, X, y, basis, p, w=w)
    for got in (go(nb, w=w), go(nb, w=w, stats=stats)):
        assert got[0][:3] == want[0][:3] == (40, 0, 40)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-10)
        np.testing.assert_allclose(got[2], want[2], rtol=1e-10)
    assert not np.allclose(go(nb)[1], want[1], rtol=1e-3)


@pytest.mark.parametrize("model", [0, 1])
def test_weighted_shortcut_sees_an_overflow_in_a_weight_zero_row(model):
    """The weighted statistics do not bound a weight-0 row's residual: the shortcut
    checks its bound (``_lsq_guard``), takes the pass over the rows near overflow, and
    the fit diverges at the reference's epoch (its 0 * inf is NaN)."""
    nb = _nb()
    from fastgd.backends import _numpy as ref

    rng = np.random.default_rng(0)
    n, p = 200, 1 if model == 0 else 2
    x = rng.normal(size=n)
    x[7] = 1e4 if model == 0 else 1e2  # far away, weight 0
    X = x[:, None].astype(np.float32)
    y = (2.0 * x + 1.0).astype(np.float32)
    w = np.ones(n, np.float32)
    w[7] = 0.0
    empty = np.empty((0, 0), dtype=np.int32)
    got = []
    for mod in (nb, ref):
        theta, grad = np.zeros(p + 1, np.float32), np.zeros(p + 1, np.float32)
        out = mod.run(
            model,
            0,
            X,
            y,
            theta,
            np.array([0.0, 1.0]),
            1.0,
            np.zeros(p + 1, np.float32),
            1,
            0,
            np.zeros(5),
            np.zeros((2, p + 1), np.float32),
            0,
            0,
            1.2 if model == 0 else 0.7,
            np.zeros(2),
            0,
            400,
            0,
            empty,
            0.0,
            0,
            grad,
            float("nan"),
            np.empty(0),
            np.empty((0, p + 1), np.float32),
            w=w,
        )
        got.append((out, theta))
    (out, theta), (want, want_theta) = got
    assert out[1] == want[1] == 2  # diverged
    assert out[0] == want[0] > 20
    np.testing.assert_allclose(theta, want_theta, rtol=1e-4)


@pytest.mark.parametrize("sched", [0, 1, 2])
@pytest.mark.parametrize("batch_size", [0, 4])
def test_schedule_offset_continues_the_schedule(sched, batch_size):
    """``sched_hp[2] = k``: epoch e takes epoch e + k's learning rate, as the reference;
    two entries are offset 0."""
    nb = _nb()
    from fastgd.backends import _numpy as ref

    shp = np.array([0.4, 0.8])
    for e in range(4):
        want = ref.schedule(sched, 0.1, np.r_[shp, 3.0], e)
        assert nb.schedule(sched, 0.1, np.r_[shp, 3.0], e) == pytest.approx(want, rel=1e-15)
        assert nb.schedule(sched, 0.1, shp, e + 3) == pytest.approx(want, rel=1e-15)
        assert nb.schedule(sched, 0.1, np.r_[shp, 0.0], e) == nb.schedule(sched, 0.1, shp, e)
    X, y, _, _ = fastgd.datasets.make_linear(64, 3, seed=3)
    rng = np.random.default_rng(1)
    order = (
        np.stack([rng.permutation(64) for _ in range(5)]).astype(np.int32)
        if batch_size
        else np.empty((0, 0), np.int32)
    )
    out = {}
    for name, mod, epoch0, sched_hp in [
        ("later epochs", nb, 3, shp),
        ("offset", nb, 0, np.r_[shp, 3.0]),
        ("reference", ref, 0, np.r_[shp, 3.0]),
    ]:
        args = list(_run_args(X, y, order, 5, batch_size, epoch0=epoch0, hist=np.empty(epoch0 + 6)))
        args[13], args[15] = sched, sched_hp
        res = mod.run(*args)
        out[name] = (res[:3], args[4])
    assert out["offset"][0] == out["later epochs"][0] == out["reference"][0]
    assert np.array_equal(out["offset"][1], out["later epochs"][1])
    np.testing.assert_allclose(out["offset"][1], out["reference"][1], rtol=1e-12)


def test_poly_least_squares_matches_reference_and_polyfit():
    x, y, _, _ = fastgd.datasets.make_polynomial(20_000, 3, noise=0.1, seed=6)
    # the textbook basis: 50 epochs above the noise floor (preconditioned, the fit
    # is there in 2 and tol=0 then stops wherever rounding settles)
    kw = dict(degree=3, optimizer="nesterov", max_iter=3000, tol=1e-12, precondition="none")
    got = fastgd.fit(x, y, backend="numba", **kw)
    ref = fastgd.fit(x, y, backend="numpy", **dict(kw, max_iter=50, tol=0.0))
    short = fastgd.fit(x, y, backend="numba", **dict(kw, max_iter=50, tol=0.0))
    np.testing.assert_allclose(short.history.loss, ref.history.loss, rtol=1e-10)
    np.testing.assert_allclose(short.coef, ref.coef, rtol=1e-9)
    assert got.status == "converged"
    c = np.polyfit(x, y, 3)[::-1]
    np.testing.assert_allclose(np.r_[got.intercept, got.coef], c, rtol=1e-6)


def test_divergence_detected_in_compiled_code():
    X, y, _, _ = fastgd.datasets.make_linear(300, 3, seed=7)
    for kw in (dict(loss="mse"), dict(batch_size=7, seed=1), dict(batch_size=1, seed=1)):
        with pytest.warns(DivergenceWarning):
            got = fastgd.fit(X, y, lr=1e6, max_iter=50, backend="numba", **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DivergenceWarning)
            ref = fastgd.fit(X, y, lr=1e6, max_iter=50, backend="numpy", **kw)
        assert got.status == ref.status == "diverged"
        assert got.n_iter == ref.n_iter
        assert np.all(np.isfinite(got.coef)) and np.isfinite(got.intercept)
        np.testing.assert_allclose(got.coef, ref.coef, rtol=1e-9)


def test_minimize_with_jitted_functions():
    import numba

    @numba.njit
    def rosen(x):
        return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2

    @numba.njit
    def rosen_grad(x):
        g = np.empty_like(x)
        g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] ** 2)
        g[1] = 200.0 * (x[1] - x[0] ** 2)
        return g

    kw = dict(optimizer="momentum", lr=1e-3, max_iter=3000, tol=0.0, record="params")
    got = fastgd.minimize(rosen, rosen_grad, np.array([-1.0, 1.5]), **kw)
    ref = fastgd.minimize(
        rosen.py_func, rosen_grad.py_func, np.array([-1.0, 1.5]), backend="numpy", **kw
    )
    assert got.backend == "numba"
    np.testing.assert_allclose(got.history.params, ref.history.params, rtol=1e-9, atol=1e-12)
    assert got.fun == pytest.approx(ref.fun, rel=1e-9)
    assert np.allclose(got.x, [1.0, 1.0], atol=0.05)


def test_minimize_plain_python_functions_on_numba_backend():
    got = fastgd.minimize(
        lambda x: float(x @ x), lambda x: 2 * x, np.array([3.0, -4.0]), backend="numba", lr=0.1
    )
    assert got.status == "converged"
    assert np.allclose(got.x, 0.0, atol=1e-5)


def test_minimize_jitted_divergence():
    import numba

    @numba.njit
    def f(x):
        return np.sum(x**4)

    @numba.njit
    def g(x):
        return 4.0 * x**3

    with pytest.warns(DivergenceWarning):
        got = fastgd.minimize(f, g, np.array([3.0, 1.0]), lr=10.0, max_iter=100)
    assert got.status == "diverged"
    assert np.all(np.isfinite(got.x))
