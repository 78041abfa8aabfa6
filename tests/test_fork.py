"""Fork safety: processes made by ``fork`` after fastgd ran its parallel passes.

libgomp's thread pool does not survive ``fork``: a child of a process that
ran an OpenMP parallel region with 2+ threads hangs forever on entering the
next one.  The Cython backend therefore runs serially in a forked process
(``_cython.forked()``, set by an ``os.register_at_fork`` hook), with the same
results.  Here the parent first runs every case on data big enough for the
row-parallel passes to use several chunks (and so 2 threads on a 2-core
machine), then children made by a fork-method ``multiprocessing`` pool and by
a raw ``os.fork()`` (also a fork of a fork, and a fork taken while another
parent thread is inside a parallel pass) run the same cases and must get the
parent's results.

Every wait on a child has a timeout: a hang fails the test (after
``TIMEOUT`` seconds) instead of stalling the run, and the hung child is
killed.

The tests are parametrized over ``FORK_BACKENDS``.  numba runs on its TBB
threading layer when the ``tbb`` package is installed (fork safe: a child's
parallel passes run as the parent's); on another layer a forked child runs
its numba kernels serially (``_numba._forked``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback

import numpy as np
import pytest

import fastgd
from fastgd.backends import resolve

from .conftest import AVAILABLE

#: Backends these tests run on.
FORK_BACKENDS = ["cython", "numba", "numpy"]
BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(b not in AVAILABLE, reason=f"{b} not available"))
    for b in FORK_BACKENDS
]

#: Seconds any wait on a child process may take before the test fails.
TIMEOUT = 60.0
#: Children may sum in another order than the parent (serial): equal to rounding.
RTOL = 1e-10

# Exit codes of the raw os.fork() children.
OK, MISMATCH, NOT_SERIAL, ERROR, GRANDCHILD_HUNG, NO_EXIT = 0, 3, 4, 5, 6, 7

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python >= 3.12 warns on fork with threads alive (the pool's, the busy thread)
    pytest.mark.filterwarnings(
        "ignore:.*use of fork\\(\\) may lead to deadlocks:DeprecationWarning"
    ),
]

# Sizes: enough rows for several chunks of every row-parallel pass of the
# Cython backend (its chunks: about 2**15 multiply-adds each; value_range,
# all_finite and the weighted guard one element per "multiply-add", so
# > 65536 elements), small enough for a few seconds with the numpy reference.
N_LINEAR, P_LINEAR = 70_000, 8
N_POLY, DEGREE = 100_000, 3
N_STOCHASTIC = 8_000  # rows of the SGD / mini-batch cases (per-sample loops)

_DATA: dict = {}


def _light_weights(n, seed):
    """Weights in (0, 2) with every tenth one tiny: below the Cython backend's
    WLIGHT, so a weighted least-squares fit also runs its overflow guard's
    row passes."""
    w = np.random.default_rng(seed).uniform(0.1, 2.0, n)
    w[::10] = 0.01
    return w


def _data():
    """The problems, built once (a forked child inherits them)."""
    if not _DATA:
        X, y, _, _ = fastgd.datasets.make_linear(
            N_LINEAR, P_LINEAR, noise=0.5, outliers=0.05, seed=7
        )
        x, yp, _, _ = fastgd.datasets.make_polynomial(N_POLY, DEGREE, noise=0.1, seed=8)
        _DATA.update(
            X=X,
            y=y,
            X32=X.astype(np.float32),
            y32=y.astype(np.float32),
            w=_light_weights(N_LINEAR, 9),
            x=2.5 * x,
            yp=yp,
            wp=_light_weights(N_POLY, 10),
        )
    return _DATA


def _fit_summary(res):
    return {
        "coef": np.asarray(res.coef, dtype=np.float64),
        "scalars": np.array([res.intercept, res.objective, res.n_iter], dtype=np.float64),
        "loss": np.asarray(res.history.loss),
        "params": np.asarray(res.history.params if res.history.params is not None else []),
        "status": res.status,
    }


def _fit(**kw):
    def case(backend):
        d = _data()
        if "degree" in kw:
            X, y, w = d["x"], d["yp"], d["wp"]
        elif kw.get("dtype") == "float32":
            X, y, w = d["X32"], d["y32"], d["w"]
        else:
            X, y, w = d["X"], d["y"], d["w"]
        opts = {k: v for k, v in kw.items() if k not in ("dtype", "rows", "weighted")}
        rows = kw.get("rows")
        if kw.get("weighted"):
            opts["sample_weight"] = w[:rows]
        return _fit_summary(fastgd.fit(X[:rows], y[:rows], backend=backend, **opts))

    return case


def _loss_and_grad_linear(backend):
    d = _data()
    coef = np.linspace(-1.0, 1.0, P_LINEAR)
    f, g, gi = fastgd.loss_and_grad(
        d["X"], d["y"], coef, 0.5, loss="huber", l2=0.1, sample_weight=d["w"], backend=backend
    )
    return {"f": np.array([f, gi]), "grad": np.asarray(g)}


def _loss_and_grad_poly(backend):
    d = _data()
    f, g, gi = fastgd.loss_and_grad(
        d["x"], d["yp"], [0.3, -0.2, 0.1], 0.2, degree=DEGREE, backend=backend
    )
    return {"f": np.array([f, gi]), "grad": np.asarray(g)}


def _kernels(backend):
    """The backend's statistics kernels called directly (``lsq_stats``, ``value_range``, ``all_finite``)."""
    mod = resolve(backend)[1]
    d = _data()
    G, c, S = mod.lsq_stats(0, d["X"], d["y"], 1.0, P_LINEAR)
    Gw, cw, Sw = mod.lsq_stats(
        1, d["x"].reshape(-1, 1), d["yp"], np.array([0.25, 0.4]), DEGREE, w=d["wp"]
    )
    lo, hi = mod.value_range(d["x"])
    return {
        "G": G,
        "c": c,
        "Gw": Gw,
        "cw": cw,
        "S": np.array([S, Sw]),
        "range": np.array([lo, hi]),
        "finite": np.array([mod.all_finite(d["X"]), mod.all_finite(d["x"])], dtype=np.float64),
    }


#: Every entry point: fit in each batching (full batch and its least-squares
#: shortcut, SGD, mini-batches), several optimizers, both models, losses,
#: dtypes, weights and preconditioning; loss_and_grad; the statistics kernels.
CASES = {
    "full-gd-lsq": _fit(max_iter=30, tol=0.0),
    "full-adam-huber-l2": _fit(
        optimizer="adam", loss="huber", l2=0.01, lr=0.05, max_iter=15, tol=0.0
    ),
    "full-nesterov-f32-none": _fit(
        optimizer="nesterov", dtype="float32", precondition="none", max_iter=15, tol=0.0
    ),
    "full-weighted-guard": _fit(weighted=True, max_iter=20, tol=0.0),
    "sgd": _fit(batch_size=1, lr=1e-3, max_iter=2, tol=0.0, seed=1, rows=N_STOCHASTIC),
    "minibatch-momentum": _fit(
        optimizer="momentum",
        batch_size=64,
        max_iter=3,
        tol=0.0,
        seed=2,
        record="params",
        rows=N_STOCHASTIC,
    ),
    "minibatch-rmsprop-weighted": _fit(
        optimizer="rmsprop",
        batch_size=32,
        lr=0.01,
        max_iter=2,
        tol=0.0,
        seed=3,
        weighted=True,
        rows=N_STOCHASTIC,
    ),
    "poly-full": _fit(degree=DEGREE, max_iter=50, tol=0.0),
    "poly-full-weighted-guard": _fit(degree=DEGREE, weighted=True, max_iter=20, tol=0.0),
    "poly-adagrad-huber": _fit(
        degree=DEGREE, optimizer="adagrad", loss="huber", max_iter=20, tol=0.0
    ),
    "poly-sgd": _fit(
        degree=DEGREE, batch_size=1, lr=0.01, max_iter=2, tol=0.0, seed=4, rows=N_STOCHASTIC
    ),
    "loss_and_grad-linear": _loss_and_grad_linear,
    "loss_and_grad-poly": _loss_and_grad_poly,
    "kernels": _kernels,
}

_EXPECTED: dict = {}


def _expected(backend):
    """Every case run in this (the parent) process: its parallel passes run here first."""
    if backend not in _EXPECTED:
        _EXPECTED[backend] = {name: case(backend) for name, case in CASES.items()}
    return _EXPECTED[backend]


def _assert_same(got, want, where=""):
    assert got.keys() == want.keys(), where
    for key, w in want.items():
        g = got[key]
        if isinstance(w, str):
            assert g == w, f"{where} {key}"
            continue
        assert g.shape == w.shape, f"{where} {key}"
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=RTOL * scale, err_msg=f"{where} {key}")


def _all_same(backend):
    """In a child: True when every case equals the parent's (inherited ``_EXPECTED``)."""
    want = _expected(backend)
    for name, case in CASES.items():
        try:
            _assert_same(case(backend), want[name], name)
        except AssertionError:
            traceback.print_exc()
            return False
    return True


def _is_serial(backend):
    """True when a forked child runs serially (Cython: the fork flag is set)."""
    if backend != "cython":
        return True
    from fastgd.backends import _cython

    return _cython.forked() and _cython.max_threads() == 1


def _threads_state(backend):
    if backend != "cython":
        return None
    from fastgd.backends import _cython

    return _cython.forked(), _cython.max_threads()


# ---------------------------------------------------------------- raw os.fork


def _wait(pid, timeout):
    """Exit code of child ``pid``, or None when it has not exited within ``timeout``
    seconds (it is then killed and reaped)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.02)


def _run_forked(target, timeout=TIMEOUT):
    """Run ``target()`` (returns an exit code) in an ``os.fork()`` child; returns the
    child's exit code, or None when it hung (killed after ``timeout`` seconds)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into the caller (pytest)
        code = NO_EXIT
        try:
            code = int(target())
        except BaseException:  # noqa: BLE001 - reported through the exit code
            traceback.print_exc()
            code = ERROR
        finally:
            os._exit(code)
    return _wait(pid, timeout)


def _child_checks(backend):
    """Exit code of a child that gets the parent's results (or hangs) and runs serially."""
    if not _all_same(backend):
        return MISMATCH
    return OK if _is_serial(backend) else NOT_SERIAL


@pytest.mark.parametrize("backend", BACKENDS)
def test_os_fork_child_after_parallel_calls(backend):
    _expected(backend)  # the parallel passes run in this process first
    before = _threads_state(backend)
    assert _run_forked(lambda: _child_checks(backend)) == OK
    # the parent keeps its threads, and its passes still run (and agree)
    assert _threads_state(backend) == before
    if backend == "cython":
        assert before[0] is False
    _assert_same(CASES["full-adam-huber-l2"](backend), _expected(backend)["full-adam-huber-l2"])


@pytest.mark.parametrize("child_calls_first", [False, True], ids=["idle-child", "busy-child"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_of_a_fork(backend, child_calls_first):
    """A grandchild works, whether or not its parent (the child) ran fastgd first."""
    _expected(backend)

    def child():
        if child_calls_first and not _all_same(backend):
            return MISMATCH
        code = _run_forked(lambda: _child_checks(backend), timeout=TIMEOUT / 2)
        return GRANDCHILD_HUNG if code is None else code

    assert _run_forked(child) == OK


@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_while_another_thread_runs_a_parallel_pass(backend):
    """Fork taken while a parent thread is inside the parallel passes (mid-region)."""
    want = _expected(backend)
    d = _data()
    stop, started = threading.Event(), threading.Event()

    def busy():
        while not stop.is_set():
            fastgd.loss_and_grad(d["X"], d["y"], np.ones(P_LINEAR), backend=backend)
            started.set()

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    try:
        assert started.wait(TIMEOUT)
        time.sleep(0.01)
        code = _run_forked(lambda: _child_checks(backend))
    finally:
        stop.set()
        worker.join(TIMEOUT)
    assert not worker.is_alive()
    assert code == OK
    _assert_same(CASES["loss_and_grad-linear"](backend), want["loss_and_grad-linear"])


# ---------------------------------------------------------------- multiprocessing


def _pool_case(args):
    """Pool task: run one case in the worker; returns its result and the worker's threading state."""
    backend, name = args
    return CASES[name](backend), _threads_state(backend), os.getpid()


@pytest.mark.parametrize("backend", BACKENDS)
def test_fork_pool_after_parallel_calls(backend):
    want = _expected(backend)
    before = _threads_state(backend)
    tasks = [(backend, name) for name in CASES] * 2  # every case in both workers (likely)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        out = pool.map_async(_pool_case, tasks, chunksize=1).get(timeout=TIMEOUT)
    assert len(out) == len(tasks)
    for (_, name), (got, state, pid) in zip(tasks, out):
        assert pid != os.getpid()
        _assert_same(got, want[name], name)
        if backend == "cython":
            assert state == (True, 1), name  # the worker ran serially
    # the parent keeps its threads (and its results)
    assert _threads_state(backend) == before
    _assert_same(CASES["poly-full"](backend), want["poly-full"])
