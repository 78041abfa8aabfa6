"""dask arrays: fits on a real ``dask.distributed.LocalCluster`` against the in-memory fit.

The cluster (2 worker processes, 1 thread each) is started and closed by a
fixture; every test carries a timeout, so a hang fails instead of stalling.
Skipped only when the ``dask`` extra is not installed.
"""

from __future__ import annotations

import _thread
import math
import os
import signal
import threading
import time
import tracemalloc

import numpy as np
import pytest

import fastgd

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.timeout(180)

OPTIMIZERS = ["gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
ADAPTIVE = ("adagrad", "rmsprop", "adam")
RTOL = 1e-10


def awkward(n=3000, d=4, seed=0, dtype=np.float64):
    """Columns on different scales and off centre, two of them correlated.

    (Not so badly conditioned that the rounding of two summation orders --
    on one machine or on a cluster -- is amplified beyond ``RTOL``.)
    """
    rng = np.random.default_rng(seed)
    X = (
        rng.standard_normal((n, d)) * np.array([0.1, 1.0, 100.0, 10.0])[:d]
        + np.array([1.0, -4.0, 200.0, 0.0])[:d]
    )
    X[:, 3 % d] += 5 * X[:, 1 % d]
    y = (X / np.abs(X).mean(0)) @ np.linspace(1, 2, d) + 3.0 + 0.1 * rng.standard_normal(n)
    return X.astype(dtype), y.astype(dtype)


def chunked(*arrays, chunks=750):
    out = []
    for a in arrays:
        out.append(da.from_array(a, chunks=(chunks,) + a.shape[1:]))
    return out


def assert_same_fit(a, b, rtol=RTOL):
    assert a.n_iter == b.n_iter and a.status == b.status
    np.testing.assert_allclose(b.coef, a.coef, rtol=rtol, atol=1e-12 * np.abs(a.coef).max())
    assert b.intercept == pytest.approx(a.intercept, rel=rtol, abs=1e-12)
    np.testing.assert_allclose(b.history.loss, a.history.loss, rtol=rtol)


# ---------------------------------------------------------------- without a cluster (first:
# no Client exists yet in this module)


def test_local_scheduler_without_a_cluster():
    from distributed import get_client

    with pytest.raises(ValueError):
        get_client()  # no cluster: dask's local scheduler runs the chunks
    X, y = awkward()
    Xd, yd = chunked(X, y)
    a = fastgd.fit(X, y, max_iter=8, tol=0)
    b = fastgd.fit(Xd, yd, max_iter=8, tol=0)
    assert_same_fit(a, b)
    assert b.info["dask_chunks"] == 4 and b.info["persisted"]


# ---------------------------------------------------------------- the cluster


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


@pytest.mark.parametrize("precondition", ["auto", "none"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_full_batch_is_the_in_memory_trajectory(client, loss, optimizer, precondition):
    X, y = awkward()
    if precondition == "none":  # textbook GD needs data of one scale to move in 8 epochs
        X = (X - X.mean(0)) / X.std(0)
    Xd, yd = chunked(X, y)
    kw = dict(
        loss=loss,
        optimizer=optimizer,
        precondition=precondition,
        max_iter=8,
        tol=0,
        record="params",
    )
    if optimizer in ADAPTIVE:
        # An adaptive rule divides each coordinate's gradient by its own size: where that
        # gradient is at rounding level -- the intercept that precondition="auto" starts at
        # its least-squares value -- the step is decided by rounding, and any two summation
        # orders (in memory: the reference and the compiled backends too) part there.
        kw["intercept_init"] = 0.0
    a = fastgd.fit(X, y, **kw)
    b = fastgd.fit(Xd, yd, **kw)
    assert_same_fit(a, b)
    np.testing.assert_allclose(b.history.params, a.history.params, rtol=1e-9, atol=1e-12)
    assert b.lr == pytest.approx(a.lr, rel=1e-12)  # lr="auto" from one distributed pass
    assert b.objective == pytest.approx(a.objective, rel=RTOL)


@pytest.mark.parametrize(
    "case", ["weights", "l2", "poly", "poly-none", "fixed-lr", "no-icpt", "float32"]
)
def test_full_batch_variants(client, case):
    X, y = awkward()
    kw = dict(max_iter=8, tol=0)
    w = None
    rtol = RTOL
    if case == "weights":
        w = np.random.default_rng(3).uniform(0, 3, X.shape[0])
    elif case == "l2":
        kw["l2"] = 0.5
    elif case in ("poly", "poly-none"):
        X = np.linspace(10, 12, 3000)
        y = 1 + X + 0.5 * X**2 - 0.01 * X**3
        y = y + np.random.default_rng(4).standard_normal(3000)
        # (huber: full-batch MSE in the orthonormal basis converges in one step)
        kw.update(
            degree=3,
            precondition="auto" if case == "poly" else "none",
            loss="huber" if case == "poly" else "mse",
        )
    elif case == "fixed-lr":
        kw.update(lr=0.05, optimizer="momentum")
    elif case == "no-icpt":
        kw["fit_intercept"] = False
    elif case == "float32":
        X, y = X.astype(np.float32), y.astype(np.float32)
        rtol = 1e-4
    a = fastgd.fit(X, y, sample_weight=w, **kw)
    Xd, yd = chunked(X, y)
    b = fastgd.fit(Xd, yd, sample_weight=None if w is None else chunked(w)[0], **kw)
    assert b.coef.dtype == a.coef.dtype
    assert_same_fit(a, b, rtol=rtol)


def test_loss_and_grad(client):
    X, y = awkward()
    Xd, yd = chunked(X, y)
    coef = np.linspace(-1, 1, X.shape[1])
    a = fastgd.loss_and_grad(X, y, coef, 0.5, loss="huber", l2=0.1)
    b = fastgd.loss_and_grad(Xd, yd, coef, 0.5, loss="huber", l2=0.1)
    assert b[0] == pytest.approx(a[0], rel=1e-12)
    np.testing.assert_allclose(b[1], a[1], rtol=1e-11)
    assert b[2] == pytest.approx(a[2], rel=1e-11)


# ---------------------------------------------------------------- mini-batches and SGD


@pytest.mark.parametrize("batch_size,optimizer", [(1, "gd"), (32, "adam"), (100, "momentum")])
def test_stochastic_chunk_to_chunk(client, batch_size, optimizer):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 5)) * [1, 10, 0.1, 1, 5] + 3
    y = X @ np.arange(1.0, 6.0) + 2 + 0.01 * rng.standard_normal(4000)
    Xd, yd = chunked(X, y, chunks=1000)
    kw = dict(batch_size=batch_size, optimizer=optimizer, max_iter=4, tol=0)
    a = fastgd.fit(Xd, yd, seed=7, **kw)
    b = fastgd.fit(Xd, yd, seed=7, **kw)
    c = fastgd.fit(Xd, yd, seed=8, **kw)
    np.testing.assert_array_equal(a.coef, b.coef)  # same seed, same result
    assert a.intercept == b.intercept
    np.testing.assert_array_equal(a.history.loss, b.history.loss)
    assert not np.array_equal(a.coef, c.coef)
    mem = fastgd.fit(X, y, seed=7, **kw)  # converges like the in-memory fit
    best = fastgd.fit(X, y, max_iter=200, tol=1e-12).objective
    assert a.objective - best <= 2 * (mem.objective - best) + 1e-3 * best
    assert a.info["steps"] == 4 * 4 * -(-1000 // batch_size)  # batches do not span chunks
    assert mem.info["steps"] == 4 * -(-4000 // batch_size)


def test_stochastic_state_travels_partial_fit(client):
    from fastgd import GDRegressor

    X, y = awkward()
    Xd, yd = chunked(X, y)
    est = GDRegressor(optimizer="adam", batch_size=64, random_state=0)
    for _ in range(3):
        est.partial_fit(Xd, yd)
    assert est.t_ == 3 * 4 * -(-750 // 64)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array)
    np.testing.assert_allclose(pred.compute(), est.predict(X), rtol=1e-12)
    full = GDRegressor(tol=1e-12, max_iter=500).fit(Xd, yd)
    ref = GDRegressor(tol=1e-12, max_iter=500).fit(X, y)
    np.testing.assert_allclose(full.coef_, ref.coef_, rtol=1e-8)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("array", ["X", "y"])
@pytest.mark.parametrize("batch_size", [None, 1])
def test_nan_names_the_global_row(client, where, array, batch_size):
    X, y = awkward(n=2000)
    row = {"first": 0, "middle": 1234, "last": 1999}[where]
    bad = X if array == "X" else y
    if array == "X":
        bad[row, 2] = np.inf
    else:
        bad[row] = np.nan
    kw = dict(batch_size=batch_size, max_iter=3)
    if batch_size:
        kw.update(lr=1e-9, precondition="none")
    with pytest.raises(ValueError) as mem:
        fastgd.fit(X, y, **kw)
    Xd, yd = chunked(X, y, chunks=500)
    with pytest.raises(ValueError) as dsk:
        fastgd.fit(Xd, yd, **kw)
    assert str(dsk.value) == str(mem.value)
    assert (f"position ({row}, 2)" if array == "X" else f"position {row}") in str(dsk.value)


def test_bad_chunking_is_named(client):
    X, y = awkward(n=2000)
    Xd = da.from_array(X, chunks=(500, 4))
    with pytest.raises(ValueError, match=r"y's chunks .* do not match X's row chunks"):
        fastgd.fit(Xd, da.from_array(y, chunks=400))
    with pytest.raises(ValueError, match="different numbers of samples"):
        fastgd.fit(Xd, da.from_array(y[:-1], chunks=500))
    with pytest.raises(ValueError, match="unknown size"):
        fastgd.fit(Xd[Xd[:, 0] > 0], da.from_array(y, chunks=500))
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        fastgd.fit(Xd, da.from_array(y, chunks=500), sample_weight=-np.ones(2000))
    with pytest.raises(TypeError, match="X must be a dask array"):
        fastgd.fit(X, da.from_array(y, chunks=500))


def test_columns_in_several_chunks_are_joined(client):
    X, y = awkward()
    a = fastgd.fit(X, y, max_iter=5, tol=0)
    b = fastgd.fit(
        da.from_array(X, chunks=(600, 2)), da.from_array(y, chunks=600), max_iter=5, tol=0
    )
    assert_same_fit(a, b)


# ---------------------------------------------------------------- where the data live


def test_client_memory_stays_small(client):
    """A 256 MB array made on the workers: only parameters and gradients reach the client."""
    n, d = 1_600_000, 20
    X = da.random.default_rng(0).standard_normal((n, d), chunks=(200_000, d))
    y = X @ np.linspace(1, 2, d) + 1.0
    X, y = client.persist([X, y])
    distributed.wait([X, y])
    assert X.nbytes == 256_000_000
    for kw in ({}, {"batch_size": 64, "optimizer": "adam", "max_iter": 1}):
        tracemalloc.start()
        try:
            sgd = fastgd.fit(X, y, **({"max_iter": 3, "tol": 0} | kw))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert sgd.info["persisted"]
        assert peak < 0.02 * X.nbytes, f"client peak {peak / 1e6:.1f} MB with {kw}"
    res = fastgd.fit(X, y, max_iter=3, tol=0)
    np.testing.assert_allclose(res.coef, np.linspace(1, 2, d), rtol=1e-4)


def test_ctrl_c_returns_the_parameters_reached(client):
    X, y = awkward()
    Xd, yd = chunked(X, y)
    timers = []

    def start_timer(epoch, *_):  # Ctrl-C 0.3 s after the first epoch: during a later one
        if epoch == 1:
            timers.append(threading.Timer(0.3, _thread.interrupt_main))
            timers[0].start()

    try:
        res = fastgd.fit(
            Xd, yd, optimizer="adam", lr=1e-4, max_iter=100_000, tol=0, callback=start_timer
        )
    finally:
        for t in timers:
            t.cancel()
    assert res.status == "interrupted" and res.n_iter > 0
    assert len(res.history.loss) == res.n_iter + 1
    value, *_ = fastgd.loss_and_grad(X, y, res.coef, res.intercept)
    assert res.objective == pytest.approx(value, rel=1e-9)


def test_a_killed_worker_does_not_change_the_result(client):
    n, d = 400_000, 8
    X = da.random.default_rng(5).standard_normal((n, d), chunks=(50_000, d))
    y = X @ np.arange(1.0, d + 1) + 2.0
    kw = dict(optimizer="momentum", lr=0.05, precondition="none", max_iter=60, tol=0)
    ref = fastgd.fit(X, y, **kw)
    pids = client.run(os.getpid)
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("res", fastgd.fit(X, y, **kw)))
    th.start()
    time.sleep(1.0)
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # one worker dies mid-fit
    th.join(150)
    assert not th.is_alive()
    res = out["res"]
    assert client.run(os.getpid) != pids  # the nanny started a new worker
    assert_same_fit(ref, res)
    assert math.isfinite(res.objective)


# ---------------------------------------------------------------- larger than the workers' memory


def test_data_larger_than_the_workers_memory_are_read_from_disk(tmp_path):
    """576 MB on disk, 2 x 256 MiB workers: read chunk by chunk in every pass."""
    from fastgd._demo_dask import cluster, open_dataset, write_dataset

    path = tmp_path / "big.zarr"
    with dask.config.set(scheduler="threads"):  # (written before the cluster starts)
        write_dataset(path, 6_000_000, 12, chunk_rows=200_000)
    X, y = open_dataset(path)
    with cluster(n_workers=2, memory_limit="256MiB") as c:
        limit = sum(w["memory_limit"] for w in c.scheduler_info()["workers"].values())
        assert X.nbytes + y.nbytes > limit
        res = fastgd.fit(X, y, max_iter=3, tol=0)
        assert not res.info["persisted"] and res.info["dask_chunks"] == 30
    Xm, ym = np.asarray(X), np.asarray(y)  # the same data, in memory
    mem = fastgd.fit(Xm, ym, max_iter=3, tol=0)
    assert_same_fit(mem, res)


def test_fastgd_fit_reads_a_zarr_store(tmp_path, capsys):
    from fastgd import cli
    from fastgd._demo_dask import write_dataset

    path = tmp_path / "d.zarr"
    coef, b = write_dataset(path, 20_000, 3, chunk_rows=5_000)
    assert cli.main(["fit", str(path), "--tol", "1e-10", "--json", str(tmp_path / "o.json")]) == 0
    out = capsys.readouterr().out
    assert "20,000 rows" in out and "converged" in out
    import json

    got = json.loads((tmp_path / "o.json").read_text())
    np.testing.assert_allclose(list(got["coef"].values()), coef, atol=5e-3)
    assert got["r2"] > 0.99


def test_demo_dask_fits_a_dataset_on_disk(capsys):
    from fastgd import cli

    assert cli.main(["demo", "--dask", "--scale", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "LocalCluster" in out and "200,000 x 10" in out
    assert "full batch, defaults: converged" in out and "chunk to chunk" in out
