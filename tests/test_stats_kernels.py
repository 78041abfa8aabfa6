"""The statistics kernels ``moments`` and ``max_row_norm2`` of every backend
against a direct numpy computation: both dtypes, weights or none, full and
diagonal moments with a nonzero origin, the linear and polynomial designs, the
three kinds of ``pre``, sizes on both sides of the parallel thresholds, data
with large offsets and columns of very different scales; and the same bits
with one thread or several.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastgd.backends import available_backends, resolve

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = available_backends()
DTYPES = [np.float64, np.float32]
# 1, 7, 9: partial groups of rows; 1000: one chunk; 70_001 and 200_003:
# several chunks and blocks, the parallel passes of both compiled backends.
SIZES = [1, 7, 9, 1000, 70_001, 200_003]


def _data(n, d, dtype, seed=0, offset=0.0, scales=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if scales is not None:
        X *= scales
    X += offset
    y = rng.standard_normal(n) * 3.0 + offset
    w = rng.random(n) * 2.0
    w[::5] = 0.0
    return X.astype(dtype), y.astype(dtype), (w / w.mean() if w.mean() > 0 else w).astype(dtype)


def _direct_moments(X, y, x0, y0, full, w):
    """The definition, all in float64 (``np.longdouble`` would be slower, not needed)."""
    A = X.astype(np.float64) - x0
    b = y.astype(np.float64) - y0
    wv = np.ones(len(y)) if w is None else w.astype(np.float64)
    Aw = A * wv[:, None]
    G = Aw.T @ A if full else np.einsum("ij,ij->j", Aw, A)
    # absolute scale of each sum: the same sums of |terms|
    Aa, ba = np.abs(Aw), np.abs(b)
    scale = (
        Aa.sum(0),
        (Aa.T @ np.abs(A)) if full else np.einsum("ij,ij->j", Aa, np.abs(A)),
        Aa.T @ ba,
        float((wv * ba).sum()),
        float((wv * ba) @ ba),
    )
    return (Aw.sum(0), G, Aw.T @ b, float((wv * b).sum()), float((wv * b) @ b)), scale


def _check_moments(got, want, scale, rtol):
    assert len(got) == 5
    for g0, h0, sc0 in zip(got, want, scale):
        g, h, sc = np.asarray(g0), np.asarray(h0), np.asarray(sc0)
        assert g.shape == h.shape
        assert g.dtype == np.float64
        np.testing.assert_array_less(np.abs(g - h), rtol * sc + 1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("full", [False, True])
def test_moments(backend, dtype, n, weighted, full):
    _, mod = resolve(backend)
    d = 13 if n < 100_000 else 5
    X, y, w = _data(n, d, dtype, seed=n)
    x0 = X[0].astype(np.float64) + 0.25
    y0 = float(y[0]) - 0.5
    ww = w if weighted else None
    got = mod.moments(X, y, x0, y0, full, ww)
    want, scale = _direct_moments(X, y, x0, y0, full, ww)
    _check_moments(got, want, scale, 1e-12)
    if full and backend != "numpy":  # the compiled kernels mirror one triangle
        np.testing.assert_array_equal(got[1], got[1].T)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("full", [False, True])
def test_moments_offset_and_scales(backend, dtype, full):
    """Offsets of 1e6 and columns from 1e-3 to 1e5: relative to the first row, the
    second moments keep their digits (float64 differences of the data)."""
    _, mod = resolve(backend)
    scales = np.logspace(-3, 5, 9)
    X, y, w = _data(50_003, 9, dtype, seed=3, offset=1e6, scales=scales)
    x0 = X[0].astype(np.float64)
    y0 = float(y[0])
    for ww in (None, w):
        got = mod.moments(X, y, x0, y0, full, ww)
        want, scale = _direct_moments(X, y, x0, y0, full, ww)
        _check_moments(got, want, scale, 1e-12)
        var = np.diag(got[1]) if full else got[1]
        n = X.shape[0]
        cov = var / n - (got[0] / n) ** 2
        ref = np.var(X.astype(np.float64), axis=0) if ww is None else None
        if ref is not None:
            np.testing.assert_allclose(cov, ref, rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("full", [False, True])
def test_moments_small_shapes(backend, full):
    """One column, one row, and the interface example."""
    _, mod = resolve(backend)
    X = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([1.0, 2.0])
    s, G, sxy, sy, syy = mod.moments(X, y, np.zeros(2), 0.0, full)
    assert s.tolist() == [4.0, 7.0]
    assert G.tolist() == ([[10.0, 17.0], [17.0, 29.0]] if full else [10.0, 29.0])
    assert sxy.tolist() == [7.0, 12.0]
    assert (sy, syy) == (3.0, 5.0)
    X1 = np.array([[2.0]])
    s, G, sxy, sy, syy = mod.moments(
        X1, np.array([3.0]), np.array([1.0]), 1.0, full, np.array([0.5])
    )
    assert s.tolist() == [0.5] and np.ravel(G).tolist() == [0.5]
    assert sxy.tolist() == [1.0] and (sy, syy) == (1.0, 2.0)


def _direct_rn2(model, X, basis, pre, fit_icpt, w):
    p = pre.shape[1] - 1
    m = p + 1
    n = X.shape[0]
    A = np.empty((n, m))
    if model == 0:
        A[:, :p] = X.astype(np.float64)
    else:
        dt = X.dtype.type
        u = ((X[:, 0] - dt(basis[0])) * dt(basis[1])).astype(np.float64)
        for j in range(p):
            A[:, j] = u ** (j + 1) if j == 0 else A[:, j - 1] * u
    A[:, p] = 1.0 if fit_icpt else 0.0
    if pre.shape[0] == 0:
        T = np.eye(m)
    elif pre.shape[0] == 2:
        T = np.eye(m)
        T[np.arange(p), np.arange(p)] = pre[0, :p]
        T[p, :p] = -pre[1, :p]
    else:
        T = pre[:m]
    v = np.sum((A @ T) ** 2, axis=1)
    if w is not None:
        v = v * w.astype(np.float64)
    return float(v.max())


def _pre(kind, m, rng):
    if kind == "none":
        return np.empty((0, m))
    if kind == "centre":
        a = rng.random(m) + 0.5
        b = rng.standard_normal(m)
        a[-1], b[-1] = 1.0, 0.0
        return np.vstack([a, b])
    T = rng.standard_normal((m, m)) / np.sqrt(m) + np.eye(m)
    return np.vstack([T, np.linalg.inv(T)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", [0, 1])
@pytest.mark.parametrize("kind", ["none", "centre", "dense"])
@pytest.mark.parametrize("n", [1, 9, 1000, 200_003])
def test_max_row_norm2(backend, dtype, model, kind, n):
    _, mod = resolve(backend)
    rng = np.random.default_rng(n + model)
    if model == 0:
        X, _, w = _data(n, 11, dtype, seed=n, scales=np.logspace(-3, 2, 11))
        basis = np.array([0.0, 1.0])
        m = 12
    else:
        X, _, w = _data(n, 1, dtype, seed=n, offset=1e3)
        basis = np.array([1e3, 0.7])
        m = 5
    pre = _pre(kind, m, rng)
    for fit_icpt in (True, False):
        for ww in (None, w):
            got = mod.max_row_norm2(model, X, basis, pre, fit_icpt, ww)
            want = _direct_rn2(model, X, basis, pre, fit_icpt, ww)
            assert isinstance(got, float)
            assert got == pytest.approx(want, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_row_norm2_nan(backend):
    _, mod = resolve(backend)
    X = np.ones((70_001, 3))
    X[12_345, 1] = np.nan
    pre = np.empty((0, 4))
    assert np.isnan(mod.max_row_norm2(0, X, np.array([0.0, 1.0]), pre, True))
    assert mod.max_row_norm2(0, X[:10], np.array([0.0, 1.0]), pre, True) == 4.0


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_same_bits_with_one_thread(backend):
    """The chunking depends on the problem only: one thread gives the same bits."""
    code = textwrap.dedent(f"""
        import numpy as np, sys
        from fastgd import _config
        from fastgd.backends import resolve
        _, mod = resolve({backend!r})
        if {backend!r} == "numba":
            _config.set_num_threads(int(sys.argv[1]))
        rng = np.random.default_rng(5)
        X = rng.standard_normal((200_003, 7)) + 3.0
        y = rng.standard_normal(200_003)
        w = rng.random(200_003)
        out = []
        for full in (False, True):
            for ww in (None, w):
                s, G, sxy, sy, syy = mod.moments(X, y, X[0], float(y[0]), full, ww)
                out += [s, np.ravel(G), sxy, np.array([sy, syy])]
        pre = np.vstack([rng.random(8) + 0.5, rng.standard_normal(8)])
        out.append(np.array([mod.max_row_norm2(0, X, np.array([0.0, 1.0]), pre, True, w)]))
        np.save(sys.stdout.buffer, np.concatenate(out))
    """)
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", code, threads],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout
        import io

        results.append(np.load(io.BytesIO(out)))
    np.testing.assert_array_equal(results[0], results[1])


def test_cython_simd_variants_same_bits():
    """The AVX2 and AVX-512 Gram tiles give the same bits (the same fused operations
    per entry); the diagonal moments and max_row_norm2 give the baseline's bits too."""
    cy = pytest.importorskip("fastgd.backends._cython", reason="the Cython extension is not built")
    if cy.stats_gram == "baseline":
        pytest.skip("no AVX2 + FMA on this CPU")
    code = textwrap.dedent("""
        import numpy as np, sys
        from fastgd.backends import _cython as cy
        rng = np.random.default_rng(9)
        out = []
        for dt in (np.float64, np.float32):
            X = (rng.standard_normal((20_011, 37)) + 2.0).astype(dt)
            y = rng.standard_normal(20_011).astype(dt)
            w = rng.random(20_011).astype(dt)
            for full in (False, True):
                if full and sys.argv[1] == "baseline":
                    continue
                s, G, sxy, sy, syy = cy.moments(X, y, X[0], float(y[0]), full, w)
                out += [s, np.ravel(G), sxy, np.array([sy, syy])]
            pre = np.vstack([rng.random(38) + 0.5, rng.standard_normal(38)])
            out.append(np.array([cy.max_row_norm2(0, X, np.array([0.0, 1.0]), pre, True, w)]))
        np.save(sys.stdout.buffer, np.concatenate(out))
    """)
    import io

    runs = {}
    for simd in ("", "avx2", "baseline"):
        env = dict(os.environ, FASTGD_SIMD=simd, PYTHONPATH=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", code, simd], env=env, cwd=ROOT, capture_output=True, check=True
        ).stdout
        runs[simd] = np.load(io.BytesIO(out))
    np.testing.assert_array_equal(runs[""], runs["avx2"])
    # the baseline run skips the full moments (its tiles round each product)
    diag, full = 3 * 37 + 2, 2 * 37 + 37 * 37 + 2
    per = diag + full + 1
    for k in range(2):
        want = np.r_[runs[""][k * per : k * per + diag], runs[""][(k + 1) * per - 1]]
        np.testing.assert_array_equal(runs["baseline"][k * (diag + 1) : (k + 1) * (diag + 1)], want)
