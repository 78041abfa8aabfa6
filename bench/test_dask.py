"""dask: a full-batch epoch on a 2-worker LocalCluster against the same epoch in memory.

The whole comparison (with dask-glm and the scaling sweeps) is
``python -m fastgd bench --dask``; this file keeps one case of each side in
the pytest-benchmark suite, on 1,000,000 x 20 float64 in 4 chunks per worker.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastgd  # noqa: E402
from fastgd._bench_dask import _data  # noqa: E402

pytestmark = pytest.mark.timeout(300)
N = 1_000_000


@pytest.fixture(scope="module")
def cluster_data():
    from fastgd._demo_dask import cluster

    with cluster(n_workers=2) as client:
        X, y = _data(N, N // 8)
        X, y = client.persist([X, y])
        distributed.wait([X, y])
        yield X, y


def _fit(X, y):
    return fastgd.fit(X, y, max_iter=1, tol=0, lr=0.05, precondition="none")


@pytest.mark.parametrize("where", ["cluster", "memory"])
def test_full_batch_epoch(benchmark, cluster_data, where):
    X, y = cluster_data
    if where == "memory":
        X, y = np.asarray(X), np.asarray(y)
    time.sleep(0.3)  # let the previous case's threads go idle
    res = benchmark(_fit, X, y)
    assert res.n_iter == 1 and res.objective < fastgd.loss_and_grad(X, y, np.zeros(20))[0]
