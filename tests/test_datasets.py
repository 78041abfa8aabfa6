"""Synthetic data: determinism whatever the chunking, ``out=`` / memmap, and the data's shape."""

import tracemalloc

import numpy as np
import pytest

import fastgd
from fastgd import datasets
from fastgd.datasets import BLOCK_ROWS

# Two and a half blocks plus a few rows: chunks and the last block are partial.
N = 2 * BLOCK_ROWS + BLOCK_ROWS // 2 + 7
MAKERS = {
    "linear": lambda **kw: datasets.make_linear(N, 3, **kw),
    "poly": lambda **kw: datasets.make_polynomial(N, 3, **kw),
}


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_data_whatever_the_chunking(kind, dtype):
    make = MAKERS[kind]
    ref_x, ref_y, coef, b = make(seed=7, dtype=dtype, outliers=0.1, n_jobs=1, chunk_size=N)
    assert ref_x.dtype == dtype and ref_y.dtype == dtype
    for chunk_size, n_jobs in [
        (1, 1),
        (1, 2),
        (BLOCK_ROWS, 2),
        (3 * BLOCK_ROWS + 5, 2),
        (10 * N, 2),
        (None, None),
    ]:
        x, y, c2, b2 = make(seed=7, dtype=dtype, outliers=0.1, chunk_size=chunk_size, n_jobs=n_jobs)
        np.testing.assert_array_equal(x, ref_x)
        np.testing.assert_array_equal(y, ref_y)
        np.testing.assert_array_equal(c2, coef)
        assert b2 == b


@pytest.mark.parametrize("kind", list(MAKERS))
def test_seed_changes_the_data(kind):
    x1, y1, c1, _ = MAKERS[kind](seed=1)
    x2, y2, c2, _ = MAKERS[kind](seed=2)
    assert not np.array_equal(x1, x2)
    assert not np.array_equal(c1, c2)
    # every block gets its own stream: no two blocks repeat each other
    assert not np.array_equal(x1[:BLOCK_ROWS], x1[BLOCK_ROWS : 2 * BLOCK_ROWS])
    x3, *_ = MAKERS[kind](seed=None)
    x4, *_ = MAKERS[kind](seed=None)
    assert not np.array_equal(x3, x4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_out_memmap_matches_memory(tmp_path, dtype):
    p = 4
    X_mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=dtype, shape=(N, p))
    y_mm = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=dtype, shape=(N,))
    X, y, coef, b = datasets.make_linear(N, p, seed=3, dtype=dtype, outliers=0.05, out=(X_mm, y_mm))
    assert X is X_mm and y is y_mm
    X_mm.flush()
    y_mm.flush()
    X_ref, y_ref, coef_ref, _ = datasets.make_linear(N, p, seed=3, dtype=dtype, outliers=0.05)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), X_ref)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y_ref)
    np.testing.assert_array_equal(coef, coef_ref)

    x_mm = np.memmap(tmp_path / "x.bin", mode="w+", dtype=dtype, shape=(N,))
    y2_mm = np.memmap(tmp_path / "y.bin", mode="w+", dtype=dtype, shape=(N,))
    datasets.make_polynomial(N, 2, seed=3, dtype=dtype, out=(x_mm, y2_mm), chunk_size=1000)
    x_ref, y2_ref, _, _ = datasets.make_polynomial(N, 2, seed=3, dtype=dtype)
    np.testing.assert_array_equal(x_mm, x_ref)
    np.testing.assert_array_equal(y2_mm, y2_ref)


def test_fit_reads_a_memmap_in_place(tmp_path):
    """fit works through a read-only float64 memmap without copying it into memory."""
    n, p = 200_000, 8  # X is 12.8 MB
    X_w = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=(n, p))
    y_w = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=(n,))
    _, _, coef, b = datasets.make_linear(n, p, noise=0.01, seed=0, out=(X_w, y_w))
    X_w.flush()
    y_w.flush()
    del X_w, y_w
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    tracemalloc.start()  # numpy reports its data allocations to tracemalloc
    try:
        res = fastgd.fit(X, y, max_iter=200, tol=1e-9)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 4, f"fit allocated {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.1f} MB X"
    np.testing.assert_allclose(res.coef, coef, atol=1e-2)
    assert abs(res.intercept - b) < 1e-2
    # the same numbers as from memory
    res_mem = fastgd.fit(np.array(X), np.array(y), max_iter=200, tol=1e-9, backend=res.backend)
    np.testing.assert_allclose(res.coef, res_mem.coef, rtol=1e-12)


def test_linear_data_recover_the_truth():
    X, y, coef, b = datasets.make_linear(50_000, 5, noise=0.1, seed=11)
    assert np.all(np.abs(coef) <= 2) and -1 <= b <= 1
    A = np.c_[X, np.ones(len(X))]
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(sol[:-1], coef, atol=5e-3)
    assert abs(sol[-1] - b) < 5e-3
    resid = y - A @ np.r_[coef, b]
    assert 0.09 < resid.std() < 0.11
    assert abs(X.mean()) < 0.01 and abs(X.std() - 1) < 0.01


def test_polynomial_data_recover_the_truth():
    x, y, coef, b = datasets.make_polynomial(50_000, 3, noise=0.05, seed=5)
    assert x.min() >= -1 and x.max() < 1
    fitted = np.polynomial.polynomial.polyfit(x, y, 3)
    np.testing.assert_allclose(fitted, np.r_[b, coef], atol=1e-2)


@pytest.mark.parametrize("kind", list(MAKERS))
def test_outlier_fraction(kind):
    x, y, coef, b = MAKERS[kind](seed=4, noise=0.0, outliers=0.2)
    if kind == "linear":
        clean = x @ coef + b
    else:
        clean = np.polynomial.polynomial.polyval(x, np.r_[b, coef])
    frac = np.mean(np.abs(y - clean) > 1e-9)
    assert 0.18 < frac < 0.22
    x0, y0, *_ = MAKERS[kind](seed=4, noise=0.0)
    np.testing.assert_allclose(y0, clean, atol=1e-12)


def test_zero_features_gives_a_constant_target():
    X, y, coef, b = datasets.make_linear(1000, 0, noise=0.0, seed=0)
    assert X.shape == (1000, 0) and coef.shape == (0,)
    np.testing.assert_allclose(y, b)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(dtype=np.int64), ValueError, "dtype"),
        (dict(dtype="not a dtype"), ValueError, "dtype"),
        (dict(chunk_size=0), ValueError, "chunk_size"),
        (dict(n_jobs=0), ValueError, "n_jobs"),
        (dict(n_jobs=1.5), TypeError, "n_jobs"),
        (dict(outliers=1.0), ValueError, "outliers"),
        (dict(noise=-1.0), ValueError, "noise"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(out=np.empty((10, 3))), ValueError, "pair"),
        (dict(out=(np.empty((10, 2)), np.empty(10))), ValueError, r"out\[0\]"),
        (dict(out=(np.empty((10, 3), np.float32), np.empty(10))), ValueError, r"out\[0\]"),
        (dict(out=(np.empty((10, 3)), np.empty(20)[::2])), ValueError, "C-contiguous"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        datasets.make_linear(10, 3, **kwargs)


def test_overlapping_out_is_refused():
    buf = np.empty(20)
    with pytest.raises(ValueError, match="overlap"):
        datasets.make_polynomial(10, 2, out=(buf[:10], buf[5:15]))
