"""``fastgd demo --dask`` and on-disk datasets: fitting data larger than the workers' memory.

A dataset on disk is a zarr store with two arrays, ``X`` (n, d) and ``y``
(n,), chunked by rows (:func:`write_dataset`, :func:`open_dataset`);
``fastgd fit DATA.zarr`` reads the same.  :func:`cluster` gives a
``dask.distributed`` client: on a running cluster (its scheduler address), or
on a ``LocalCluster`` started here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np


def _dask():
    try:
        import dask.array as da
        import distributed
    except ImportError as exc:
        raise ImportError("this needs dask: pip install 'fastgd[dask]'") from exc
    return da, distributed


@contextlib.contextmanager
def cluster(
    address: str | None = None, n_workers: int = 2, memory_limit: str | int | None = None
) -> Iterator[Any]:
    """A ``dask.distributed.Client``: on ``address`` (``"tcp://host:8786"``), else local.

    The local cluster has ``n_workers`` processes of one thread each, with
    ``memory_limit`` each (dask's default: the machine's memory shared out).

    Examples
    --------
    >>> from fastgd._demo_dask import cluster
    >>> with cluster(n_workers=1) as client:  # doctest: +SKIP
    ...     print(len(client.scheduler_info()["workers"]))
    1
    """
    _, distributed = _dask()
    if address:
        with distributed.Client(address) as client:
            yield client
        return
    kw = {} if memory_limit is None else {"memory_limit": memory_limit}
    # (a worker near its limit pauses and says so: for this streaming that is expected)
    kw["silence_logs"] = logging.ERROR
    with (
        distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, **kw
        ) as lc,
        distributed.Client(lc) as client,
    ):
        yield client


def write_dataset(
    path: str | os.PathLike[str],
    n_samples: int,
    n_features: int,
    *,
    chunk_rows: int = 250_000,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """Write a linear regression dataset to the zarr store ``path``, chunk by chunk.

    The rows are generated on the workers (or dask's local scheduler) and
    written from there: the data never pass through this process.  Returns
    the true ``(coef, intercept)``.

    Examples
    --------
    >>> import tempfile, os
    >>> from fastgd._demo_dask import write_dataset, open_dataset
    >>> path = os.path.join(tempfile.mkdtemp(), "d.zarr")
    >>> coef, b = write_dataset(path, 1000, 3, chunk_rows=250)
    >>> X, y = open_dataset(path)
    >>> X.shape, X.chunks[0]
    ((1000, 3), (250, 250, 250, 250))
    """
    da, _ = _dask()
    rng = np.random.default_rng(seed)
    coef = rng.uniform(-2, 2, n_features)
    intercept = float(rng.uniform(-1, 1))
    g = da.random.default_rng(seed + 1)
    X = g.standard_normal((n_samples, n_features), chunks=(chunk_rows, n_features))
    X = X * np.linspace(0.5, 3.0, n_features) + np.linspace(-2.0, 5.0, n_features)
    y = X @ coef + intercept + noise * g.standard_normal(n_samples, chunks=chunk_rows)
    # uncompressed: random floats do not compress, and every pass reads them back
    da.to_zarr(X, os.fspath(path), component="X", overwrite=True, compressors=None)
    da.to_zarr(
        y.rechunk((X.chunks[0],)), os.fspath(path), component="y", overwrite=True, compressors=None
    )
    return coef, intercept


def open_dataset(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """``(X, y)`` of a zarr dataset as dask arrays (nothing is read yet)."""
    da, _ = _dask()
    return (
        da.from_zarr(os.fspath(path), component="X"),
        da.from_zarr(os.fspath(path), component="y"),
    )


def run_dask_demo(
    scale: float | None = None, address: str | None = None, print_fn: Any = print
) -> dict[str, Any]:
    """Fit a dataset on disk that is larger than the workers' memory, on a cluster.

    Starts a 2-worker ``LocalCluster`` whose workers have 320 MiB each (or
    uses the cluster at ``address``), writes ``scale`` x 1e7 rows x 10
    float64 columns (800 MB at scale 1) to a temporary zarr store, and fits
    it twice: full-batch gradient descent with the defaults (the data are
    read chunk by chunk in every pass: they do not fit in the workers'
    memory) and one epoch of mini-batch Adam chunk to chunk.

    Examples
    --------
    >>> from fastgd._demo_dask import run_dask_demo
    >>> out = run_dask_demo(scale=0.01, print_fn=lambda *a: None)  # doctest: +SKIP
    >>> out["gd"].status  # doctest: +SKIP
    'converged'
    """
    import fastgd

    scale = 1.0 if scale is None else scale
    n, d = max(1000, int(10_000_000 * scale)), 10
    chunk = max(250, n // 40)
    tmp = tempfile.mkdtemp(prefix="fastgd-dask-")
    out: dict[str, Any] = {}
    try:
        with cluster(address, memory_limit="320MiB") as client:
            workers = client.scheduler_info()["workers"]
            mem = sum(w.get("memory_limit") or 0 for w in workers.values())
            print_fn(
                f"fastgd demo --dask: {len(workers)} workers, {mem / 2**20:.0f} MiB of "
                f"memory in all ({'scheduler ' + address if address else 'LocalCluster'})"
            )
            path = os.path.join(tmp, "data.zarr")
            t = time.perf_counter()
            coef, _b = write_dataset(path, n, d, chunk_rows=chunk)
            X, y = open_dataset(path)
            print_fn(
                f"  wrote {path}: X {n:,} x {d} float64 = {X.nbytes / 2**20:.0f} MiB in "
                f"{X.numblocks[0]} chunks ({time.perf_counter() - t:.1f} s)"
            )
            res = fastgd.fit(X, y, tol=1e-8, max_iter=200)
            err = float(np.max(np.abs(res.coef - coef)))
            where = (
                "persisted on the workers"
                if res.info["persisted"]
                else "read from disk in every pass"
            )
            print_fn(
                f"  full batch, defaults: {res.status} after {res.n_iter} epochs in "
                f"{res.elapsed:.1f} s ({where}); max |coef - true| = {err:.2e}"
            )
            out["gd"] = res
            res2 = fastgd.fit(X, y, optimizer="adam", batch_size=256, max_iter=1, seed=0)
            err2 = float(np.max(np.abs(res2.coef - coef)))
            print_fn(
                f"  mini-batch Adam (256 rows), one epoch chunk to chunk: "
                f"{res2.elapsed:.1f} s; max |coef - true| = {err2:.2e}; objective "
                f"{res2.objective:.5g} (noise floor {0.1**2:.5g})"
            )
            out["adam"] = res2
            out["memory_limit"] = mem
            out["nbytes"] = X.nbytes
            if not math.isfinite(res.objective):  # pragma: no cover - a defect
                raise RuntimeError("the dask demo's fit did not finish")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
