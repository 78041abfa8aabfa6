"""The Cython backend's staged stochastic epochs take the plain epoch's steps.

With staging on (``_set_staging`` for single-sample epochs, off by default;
``_set_staging_batches`` for mini-batches, on by default unless another
process keeps the second core busy), on an ``X`` of at least
``STAGE_MIN_BYTES`` with two threads available, an epoch stages its rows
(``_staged_epoch``): a second thread copies the rows of the
chunks ahead in the sample order into buffers, and the stepping thread reads
them there as far as they are copied, the rest from ``X``.  The steps are
the plain epoch's code, so parameters, optimizer state, gradient, history
and step count must be the same bits.  Staging is forced here on small data
(``_set_stage_min_bytes(0)``), where chunks of a few dozen rows put chunk
boundaries everywhere and the stepping thread switches between buffer and
``X`` wherever the copy happens to be (a row copied wrongly, or read before
its copy, would change the steps).  A process made by ``fork`` must not
stage (no OpenMP region there) and get the same bits.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

cy = pytest.importorskip("fastgd.backends._cython", reason="the Cython extension is not built")

HP = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
SHP = np.array([0.25, 0.99])
DELTA = 0.7  # Huber's kink
N = 2003


@pytest.fixture
def staging():
    """Stage every stochastic epoch, whatever the size of X or the machine's load."""
    old = cy._set_stage_min_bytes(0)
    was = cy._set_staging(True)
    was_b = cy._set_staging_batches(True)
    check = cy._set_busy_check(False)
    try:
        yield
    finally:
        cy._set_stage_min_bytes(old)
        cy._set_staging(was)
        cy._set_staging_batches(was_b)
        cy._set_busy_check(check)


def _problem(model, dtype, n=N, p=6, seed=0):
    rng = np.random.default_rng(seed)
    if model == 0:
        X = rng.normal(size=(n, p)) * rng.uniform(0.3, 3.0, p) + rng.uniform(-2.0, 2.0, p)
        y = X @ rng.normal(size=p) + 1.5 + rng.normal(size=n)
        m = p + 1
        basis = 1.0
    else:
        X = rng.uniform(-1.0, 1.5, size=(n, 1))
        y = 0.5 - X[:, 0] + 0.3 * X[:, 0] ** 3 + 0.1 * rng.normal(size=n)
        m = 4  # degree 3
        basis = np.array([0.25, 0.8])  # a shift: the shifted row functions
    y[rng.random(n) < 0.03] += 8.0  # outliers: Huber's clipped slope
    X, y = np.ascontiguousarray(X, dtype=dtype), y.astype(dtype)
    return X, y, m, basis, rng


def _pre(kind, X, m, rng):
    if kind == 0:
        return None
    if kind == 1:
        cols = X.shape[1]
        mu = np.zeros(m - 1)
        sd = np.ones(m - 1)
        if cols == m - 1:
            mu, sd = X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)
        pre = np.zeros((2, m))
        pre[0, : m - 1] = 1.0 / sd
        pre[0, m - 1] = 1.0
        pre[1, : m - 1] = mu / sd
        return pre
    T = np.eye(m) + np.triu(0.2 * rng.normal(size=(m, m)), 1)
    return np.vstack([T, np.linalg.inv(T)])


def _case(model, kind, weighted, dtype):
    """A problem of ``_problem`` with its preconditioner, weights (or None), penalty
    and two epochs' orders."""
    X, y, m, basis, rng = _problem(model, dtype)
    pre = _pre(kind, X, m, rng)
    w = None
    if weighted:
        w = rng.uniform(0.0, 2.0, N)
        w[rng.random(N) < 0.1] = 0.0
        w = (w / w.mean()).astype(dtype)
    l2w = np.r_[np.full(m - 1, 0.01), 0.005].astype(dtype)
    orders = np.stack([rng.permutation(N) for _ in range(2)]).astype(np.int64)
    return X, y, m, basis, pre, w, l2w, orders


def _run(
    X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, n_epochs=2, epoch0=0, need_obj=1, bsz=1
):
    dt = X.dtype
    theta = (0.05 * np.arange(1, m + 1) / m).astype(dt)
    state = np.zeros((2, m), dt)
    grad = np.zeros(m, dt)
    hist_loss = np.full(n_epochs + 1, np.nan)
    hist_params = np.zeros((n_epochs + 1, m), dt)
    out = cy.run(
        0 if X.shape[1] != 1 or m == 2 else 1,
        loss,
        X,
        y,
        theta,
        basis,
        DELTA,
        l2w,
        1,
        opt,
        HP,
        state,
        3,
        1,
        lr,
        SHP,
        epoch0,
        n_epochs,
        bsz,
        orders,
        0.0,
        need_obj,
        grad,
        float("nan"),
        hist_loss if need_obj else np.empty(0),
        hist_params,
        pre,
        None,
        w,
    )
    return out, theta, state, grad, hist_loss, hist_params


def _same(a, b):
    (oa, *ra), (ob, *rb) = a, b
    assert oa[:3] == ob[:3]
    assert oa[3] == ob[3] or (np.isnan(oa[3]) and np.isnan(ob[3]))
    for u, v in zip(ra, rb):
        assert u.dtype == v.dtype
        assert np.array_equal(u, v, equal_nan=True)


CASES = [
    (opt, loss, model, kind, weighted, dtype)
    for opt in range(6)
    for loss in (0, 1)
    for model in (0, 1)
    for kind in (0, 1, 2)
    for weighted in (False, True)
    for dtype in (np.float64, np.float32)
]


@pytest.mark.parametrize("opt,loss,model,kind,weighted,dtype", CASES)
def test_staged_epochs_are_the_plain_epochs(staging, opt, loss, model, kind, weighted, dtype):
    """Every optimizer, both losses, linear and poly, each preconditioner, with and
    without weights, float64 and float32: the same bits staged and plain --
    without a history too, where ``f`` is the progressive loss (its sum runs
    in visiting order however the staged epoch splits)."""
    X, y, m, basis, pre, w, l2w, orders = _case(model, kind, weighted, dtype)
    lr = {1: 0.001, 2: 0.001, 3: 0.05}.get(opt, 0.01) if model == 0 else 0.02
    row_bytes = X.shape[1] * X.itemsize
    assert 1 < cy._stage_rows(N, row_bytes, 1) < N // 8  # many chunks
    staged = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr)
    staged0 = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, need_obj=0)
    old = cy._set_stage_min_bytes(1 << 62)
    try:
        assert cy._stage_rows(N, row_bytes, 1) == 0
        plain = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr)
        plain0 = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, need_obj=0)
    finally:
        cy._set_stage_min_bytes(old)
    assert plain[0][0] == 2  # two epochs, no divergence
    assert np.all(np.isfinite(plain[4]))
    _same(staged, plain)
    assert np.isfinite(plain0[0][3]) and plain0[0][3] != plain[0][3]  # progressive, not f
    _same(staged0, plain0)
    for u, v in zip(plain0[1:4], plain[1:4]):  # the same steps with or without a history
        assert np.array_equal(u, v)


BATCH_CASES = [
    (opt, loss, model, kind, weighted, dtype, bsz)
    for opt in (0, 2, 5)
    for loss in (0, 1)
    for model in (0, 1)
    for kind in (0, 1, 2)
    for weighted in (False, True)
    for dtype in (np.float64, np.float32)
    for bsz in (3, 8)
]


@pytest.mark.parametrize("opt,loss,model,kind,weighted,dtype,bsz", BATCH_CASES)
def test_staged_minibatch_epochs_are_the_plain_epochs(
    staging, opt, loss, model, kind, weighted, dtype, bsz
):
    """Mini-batches: chunks of whole batches, the stepping thread taking from a
    buffer only whole batches copied so far; the epoch's last batch partial
    (2003 rows).  The same bits staged and plain, with a history and without."""
    X, y, m, basis, pre, w, l2w, orders = _case(model, kind, weighted, dtype)
    lr = {2: 0.002}.get(opt, 0.02) if model == 0 else 0.05
    row_bytes = X.shape[1] * X.itemsize
    rows = cy._stage_rows(N, row_bytes, bsz)
    assert rows % bsz == 0 and bsz <= rows < N // 4  # whole batches, several chunks
    staged = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, bsz=bsz)
    staged0 = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, need_obj=0, bsz=bsz)
    cy._set_staging_batches(False)
    assert cy._stage_rows(N, row_bytes, bsz) == 0
    plain = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, bsz=bsz)
    plain0 = _run(X, y, m, basis, opt, loss, pre, w, l2w, orders, lr, need_obj=0, bsz=bsz)
    assert plain[0][0] == 2 and plain[0][2] == 3 + 2 * -(-N // bsz)  # steps: t0 + batches
    assert np.all(np.isfinite(plain[4]))
    _same(staged, plain)
    _same(staged0, plain0)


@pytest.mark.parametrize("rows_in_batches", [1, 2])
@pytest.mark.parametrize("bsz", [2, 7])
def test_staged_minibatch_chunks_of_a_few_batches(staging, rows_in_batches, bsz):
    """Chunks of one or two batches: the stepping thread switches between buffer
    and X at batch boundaries wherever the copy happens to be."""
    X, y, m, basis, rng = _problem(0, np.float64, n=1001, p=9)
    orders = np.stack([rng.permutation(1001) for _ in range(3)]).astype(np.int64)
    row_bytes = X.shape[1] * X.itemsize
    l2w = np.r_[np.full(m - 1, 0.01), 0.0]
    old = cy._set_stage_bytes(rows_in_batches * bsz * row_bytes)
    try:
        assert cy._stage_rows(1001, row_bytes, bsz) == rows_in_batches * bsz
        staged = _run(X, y, m, basis, 5, 1, None, None, l2w, orders, 0.01, n_epochs=3, bsz=bsz)
        cy._set_staging_batches(False)
        plain = _run(X, y, m, basis, 5, 1, None, None, l2w, orders, 0.01, n_epochs=3, bsz=bsz)
        _same(staged, plain)
    finally:
        cy._set_stage_bytes(old)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_staged_divergence(staging, dtype):
    """A diverging staged epoch: the plain epoch's status, step count and restored theta."""
    X, y, m, basis, rng = _problem(0, dtype)
    l2w = np.r_[np.full(m - 1, 0.01), 0.005].astype(dtype)
    orders = np.stack([rng.permutation(N) for _ in range(3)]).astype(np.int64)
    staged = _run(X, y, m, basis, 1, 0, None, None, l2w, orders, 0.05, n_epochs=3)
    cy._set_stage_min_bytes(1 << 62)
    plain = _run(X, y, m, basis, 1, 0, None, None, l2w, orders, 0.05, n_epochs=3)
    assert plain[0][1] == 2
    _same(staged, plain)


@pytest.mark.parametrize("rows", [1, 2, 3, 7])
@pytest.mark.parametrize("kind", [0, 1])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index", [np.int32, np.int64])
def test_chunks_of_a_few_rows(staging, rows, kind, dtype, index):
    """Chunks of 1..7 rows (the fused paths restart at every chunk; the last
    sample of the epoch takes the general path), int32 and int64 orders, a
    dense penalty too (the general path)."""
    X, y, m, basis, rng = _problem(0, dtype, n=1001, p=9)
    pre = _pre(kind, X, m, rng)
    orders = np.stack([rng.permutation(1001) for _ in range(3)]).astype(index)
    row_bytes = X.shape[1] * X.itemsize
    old = cy._set_stage_bytes(rows * row_bytes)
    try:
        assert cy._stage_rows(1001, row_bytes, 1) == rows
        for l2w in (
            np.r_[np.full(m - 1, 0.01), 0.0].astype(dtype),
            (0.01 * np.eye(m)).ravel().astype(dtype),
        ):
            staged = _run(X, y, m, basis, 0, 1, pre, None, l2w, orders, 0.01, n_epochs=3)
            cy._set_stage_min_bytes(1 << 62)
            plain = _run(X, y, m, basis, 0, 1, pre, None, l2w, orders, 0.01, n_epochs=3)
            cy._set_stage_min_bytes(0)
            _same(staged, plain)
    finally:
        cy._set_stage_bytes(old)


def test_staging_defaults():
    """Single-sample epochs plain, mini-batches staged (on large X, a core free)."""
    assert cy.STAGING is False
    assert cy._stage_rows(64 * (1 << 21) // 800 + 1, 800, 1) == 0
    assert cy.STAGING_BATCHES is True


@pytest.mark.timeout(60)
def test_no_staging_while_another_process_keeps_a_core_busy(staging):
    """``_busy_elsewhere`` sees another process's runnable threads (Linux): then
    a mini-batch epoch does not stage (its copy thread would take the core the
    steps need)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = False
        for _ in range(200):  # the hog is runnable nearly always: seen within a few tries
            if cy._busy_elsewhere():
                seen = True
                break
            threading.Event().wait(0.01)
        assert seen
        cy._set_busy_check(True)
        big = 64 * (1 << 21) // 800 + 1
        cy._set_stage_min_bytes(cy.STAGE_MIN_BYTES)
        assert any(cy._stage_rows(big, 800, 32) == 0 for _ in range(50))
    finally:
        hog.kill()
        hog.wait(10)


def test_stage_rows_of_large_data(staging):
    """Chunks of STAGE_BYTES of rows on large X, 1/64 of X just over the threshold,
    none below it, for mini-batches or with one thread."""
    cy._set_stage_min_bytes(cy.STAGE_MIN_BYTES)
    big = 64 * (1 << 21) // 800 + 1
    edge = cy.STAGE_MIN_BYTES // 800 + 1
    if cy.max_threads() >= 2:
        assert cy._stage_rows(big, 800, 1) == (1 << 21) // 800
        assert cy._stage_rows(2 * big, 400, 1) == (1 << 21) // 400
        assert 0 < 2 * cy._stage_rows(edge, 800, 1) * 800 <= edge * 800 / 32
    else:
        assert cy._stage_rows(big, 800, 1) == 0
    assert cy._stage_rows(cy.STAGE_MIN_BYTES // 800, 800, 1) == 0
    if cy.max_threads() >= 2:  # whole batches; none when a batch outgrows a chunk
        assert cy._stage_rows(big, 800, 32) == (1 << 21) // 800 // 32 * 32
        assert cy._stage_rows(big, 800, 3000) == 0
    assert cy._stage_rows(cy.STAGE_MIN_BYTES // 800, 800, 32) == 0
    assert cy._stage_rows(big, 800, 0) == 0


def test_staged_epochs_from_several_threads(staging):
    """Python threads staging at once: every fit its own buffers, the same bits."""
    X, y, m, basis, rng = _problem(0, np.float64)
    orders = np.stack([rng.permutation(N) for _ in range(2)]).astype(np.int64)
    l2w = np.zeros(m)
    want = _run(X, y, m, basis, 5, 1, None, None, l2w, orders, 0.01)
    got = [None] * 4

    def work(k):
        got[k] = _run(X, y, m, basis, 5, 1, None, None, l2w, orders, 0.01)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    for g in got:
        assert g is not None
        _same(g, want)


_FORK_SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from fastgd.backends import _cython as cy

    cy._set_stage_min_bytes(0)
    cy._set_staging(True)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4001, 12)) + 1.0
    y = X @ rng.normal(size=12) + rng.normal(size=4001)
    order = np.stack([rng.permutation(4001)]).astype(np.int64)
    HP = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])

    def fit():
        theta = np.zeros(13); state = np.zeros((2, 13)); grad = np.zeros(13)
        cy.run(0, 1, X, y, theta, 1.0, 0.7, np.zeros(13), 1, 0, HP, state, 0, 0, 0.01,
               np.zeros(2), 0, 1, 1, order, 0.0, 0, grad, float("nan"), np.empty(0),
               np.empty((0, 13)))
        return theta

    assert cy.max_threads() >= 2 and cy._stage_rows(4001, 96, 1) > 0
    want = fit()  # staged: the parent ran an OpenMP region
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if not cy.forked() or cy.max_threads() != 1 or cy._stage_rows(4001, 96, 1) != 0:
                code = 4
            elif not np.array_equal(fit(), want):
                code = 3
        except BaseException:
            code = 5
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.skipif(cy.max_threads() < 2, reason="staging needs two threads")
def test_forked_child_runs_serially_with_the_same_bits():
    """After a staged epoch, a forked child runs the plain epoch: the same bits, no hang."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(cy.__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", _FORK_SCRIPT.format(root=root)],
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
