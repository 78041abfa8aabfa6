"""``fastgd bench --dask``: a full-batch epoch on a dask cluster, side by side with its peers.

On one 2-worker ``LocalCluster`` (one thread each), with the same data:

* fastgd's full-batch epoch on a dask array (one map of the fused kernel over
  the chunks, the update on the client);
* the same epoch in memory, in this process (the in-memory fit's epoch);
* dask-glm's ``gradient_descent`` (behind dask-ml's ``LinearRegression``),
  per iteration;
* scaling: 1, 2 and 4 chunks per worker; data 1x, 4x and 16x a base size,
  the largest read from a zarr store on disk in every pass.

Epoch times are taken from the fit's own callback (the time between two
epochs' callbacks), so that setup -- the problem, the statistics -- is not
counted; the median over ``repeats`` fits is reported, with a pause between
cases.  Ratios compare cases measured in the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: The issue's problem: X 4,000,000 x 20 float64 in 250,000-row chunks.
N, D, CHUNK = 4_000_000, 20, 250_000
#: Base size of the data-size sweep (x1, x4, x16): 1,000,000 x 20 (160 MB).
N_BASE = 1_000_000
PAUSE = 0.5


def _epoch_times(fit: Callable[..., Any], X: Any, y: Any, epochs: int) -> list[float]:
    """Seconds of each epoch after the first of one fit (callback to callback)."""
    stamps: list[float] = []
    fit(
        X,
        y,
        max_iter=epochs + 1,
        tol=0,
        lr=0.05,
        precondition="none",
        callback=lambda *a: stamps.append(time.perf_counter()),
    )
    return list(np.diff(stamps))


def _median_epoch(X: Any, y: Any, repeats: int, epochs: int = 5) -> float:
    import fastgd

    times: list[float] = []
    for _ in range(repeats):
        times += _epoch_times(fastgd.fit, X, y, epochs)
        time.sleep(PAUSE)
    return statistics.median(times)


def _glm_iteration(X: Any, y: Any, repeats: int) -> float:
    """dask-glm ``gradient_descent`` (Normal family): seconds per iteration."""
    from dask_glm.algorithms import gradient_descent
    from dask_glm.families import Normal

    per: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        gradient_descent(X, y, max_iter=1, family=Normal, tol=0)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        gradient_descent(X, y, max_iter=3, family=Normal, tol=0)
        t3 = time.perf_counter() - t
        per.append((t3 - t1) / 2)
        time.sleep(PAUSE)
    return statistics.median(per)


def _data(n: int, chunk: int, seed: int = 0) -> tuple[Any, Any]:
    import dask.array as da

    g = da.random.default_rng(seed)
    X = g.standard_normal((n, D), chunks=(chunk, D))
    y = X @ np.linspace(1.0, 2.0, D) + 1.0 + 0.1 * g.standard_normal(n, chunks=chunk)
    return X, y


def run_dask_bench(
    repeats: int = 5, glm: bool = True, sweep: bool = True, print_fn: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the dask benchmark; returns the measured seconds and ratios.

    Examples
    --------
    >>> from fastgd._bench_dask import run_dask_bench
    >>> out = run_dask_bench(repeats=1, glm=False, sweep=False)  # doctest: +SKIP
    """
    import distributed

    from ._demo_dask import cluster, open_dataset, write_dataset

    out: dict[str, Any] = {
        "problem": f"X {N:,} x {D} float64, {CHUNK:,}-row chunks",
        "workers": "2 x 1 thread (LocalCluster)",
        "repeats": repeats,
    }
    with cluster(n_workers=2) as client:
        X, y = _data(N, CHUNK)
        X, y = client.persist([X, y])
        distributed.wait([X, y])
        Xm, ym = np.asarray(X), np.asarray(y)
        dask_epoch = _median_epoch(X, y, repeats)
        mem_epoch = _median_epoch(Xm, ym, repeats)
        out["dask_epoch_s"], out["memory_epoch_s"] = dask_epoch, mem_epoch
        out["dask_vs_memory"] = dask_epoch / mem_epoch
        print_fn(f"full-batch epoch on {out['problem']}:")
        print_fn(f"  fastgd on the cluster   {dask_epoch * 1e3:8.1f} ms")
        print_fn(
            f"  fastgd in memory        {mem_epoch * 1e3:8.1f} ms   "
            f"(cluster / memory = {out['dask_vs_memory']:.2f}x)"
        )
        if glm:
            it = _glm_iteration(X, y, max(1, min(repeats, 3)))
            out["glm_iteration_s"], out["speedup_vs_glm"] = it, it / dask_epoch
            print_fn(
                f"  dask-glm per iteration  {it * 1e3:8.1f} ms   "
                f"(fastgd {out['speedup_vs_glm']:.1f}x faster)"
            )
        del Xm, ym
        if sweep:
            rows: list[dict[str, Any]] = []
            for per_worker in (1, 2, 4):
                Xc, yc = client.persist(
                    [X.rechunk({0: N // (2 * per_worker)}), y.rechunk(N // (2 * per_worker))]
                )
                distributed.wait([Xc, yc])
                t = _median_epoch(Xc, yc, repeats)
                rows.append({"chunks_per_worker": per_worker, "epoch_s": t})
                print_fn(f"  {per_worker} chunk(s) per worker     {t * 1e3:8.1f} ms")
                del Xc, yc
            out["chunks"] = rows
            del X, y
            rows = []  # (the same list type, now for the size sweep)
            tmp = tempfile.mkdtemp(prefix="fastgd-bench-")
            try:
                for mult in (1, 4, 16):
                    n = N_BASE * mult
                    if mult < 16:
                        Xs, ys = _data(n, CHUNK, seed=mult)
                        Xs, ys = client.persist([Xs, ys])
                        distributed.wait([Xs, ys])
                        where = "memory"
                    else:
                        path = os.path.join(tmp, "x16.zarr")
                        write_dataset(path, n, D, chunk_rows=CHUNK, seed=mult)
                        Xs, ys = open_dataset(path)
                        where = "disk"
                    t = _median_epoch(
                        Xs,
                        ys,
                        max(1, repeats // 2) if mult == 16 else repeats,
                        epochs=3 if mult == 16 else 5,
                    )
                    rows.append(
                        {
                            "size": f"{mult}x",
                            "n": n,
                            "bytes": int(Xs.nbytes),
                            "from": where,
                            "epoch_s": t,
                            "ns_per_row": t / n * 1e9,
                        }
                    )
                    print_fn(
                        f"  data {mult:>2}x ({Xs.nbytes / 1e6:6.0f} MB, {where:6}) "
                        f"{t * 1e3:8.1f} ms   {t / n * 1e9:5.1f} ns/row"
                    )
                    del Xs, ys
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            out["sizes"] = rows
    return out


def write_results(out: dict[str, Any], json_path: str | None, txt_path: str | None) -> None:
    """Write the results as JSON and as the table README quotes."""
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)
    if txt_path:
        lines = [
            (
                f"fastgd bench --dask: {out['problem']}, {out['workers']}, "
                f"median of {out['repeats']}"
            ),
            f"full-batch epoch, fastgd on the cluster : {out['dask_epoch_s'] * 1e3:7.1f} ms",
            (
                f"full-batch epoch, fastgd in memory     : {out['memory_epoch_s'] * 1e3:7.1f} ms"
                f"  (cluster / memory {out['dask_vs_memory']:.2f}x)"
            ),
        ]
        if "glm_iteration_s" in out:
            lines.append(
                f"dask-glm gradient_descent, per iteration: "
                f"{out['glm_iteration_s'] * 1e3:7.1f} ms  (fastgd "
                f"{out['speedup_vs_glm']:.1f}x faster)"
            )
        for r in out.get("chunks", []):
            lines.append(
                f"{r['chunks_per_worker']} chunk(s) per worker: "
                f"{r['epoch_s'] * 1e3:7.1f} ms per epoch"
            )
        for r in out.get("sizes", []):
            lines.append(
                f"data {r['size']:>3} ({r['bytes'] / 1e6:.0f} MB, from {r['from']}): "
                f"{r['epoch_s'] * 1e3:7.1f} ms per epoch, {r['ns_per_row']:.1f} ns/row"
            )
        with open(txt_path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
