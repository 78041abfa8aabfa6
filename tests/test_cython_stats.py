"""The Cython statistics passes: ``value_range`` against ``np.min`` / ``np.max``,
and the polynomial moments behind ``lsq_stats(1, ...)`` against the numpy
reference, serial (one chunk) and row-parallel sizes, every degree path (the
compile-time degrees 1..4 and the general one), both dtypes, and the same bits
with any thread count and any SIMD variant; with sample weights too (their own
W variants of the moments kernels).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fastgd.backends import _numpy as ref

cy = pytest.importorskip("fastgd.backends._cython", reason="the Cython extension is not built")

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.float64, np.float32]
# 1 and 7: only the partial last group of 8 rows; 8, 9: one group (+ 1); 1000:
# one chunk, several groups; 200_003: many chunks (the row-parallel pass) and
# blocks, with a partial group at the end of some chunks.
SIZES = [1, 7, 8, 9, 1000, 200_003]
BIG = 1_000_003  # value_range: many chunks


# ---------------------------------------------------------------- value_range


def _np_range(a):
    return float(np.min(a)), float(np.max(a))


def _same(got, want):
    assert len(got) == 2 and all(type(v) is float for v in got)
    for g, w in zip(got, want):
        assert (np.isnan(g) and np.isnan(w)) or g == w, (got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 7, 8, 17, 64, 65_537, BIG])
def test_value_range_matches_numpy(dtype, n):
    rng = np.random.default_rng(n)
    a = (rng.normal(size=n) * 1e3 + 7.0).astype(dtype)
    _same(cy.value_range(a), _np_range(a))
    # the extremes at either end, and in the middle
    for k in {0, n - 1, n // 2}:
        b = a.copy()
        b[k] = dtype(-1e30)
        _same(cy.value_range(b), _np_range(b))
        b[k] = dtype(1e30)
        _same(cy.value_range(b), _np_range(b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, BIG])
def test_value_range_nan_anywhere(dtype, n):
    rng = np.random.default_rng(1)
    a = rng.uniform(-5, 5, n).astype(dtype)
    nch = max(1, min(64, n // 32768))
    bounds = [(c * n) // nch for c in range(1, nch)]
    where = (
        set(range(n))
        if n < 16
        else {0, 1, n - 1, n - 2, n // 2, *bounds[:5], *[b - 1 for b in bounds[:5]]}
    )
    for k in sorted(where):
        b = a.copy()
        b[k] = np.nan
        got = cy.value_range(b)
        assert np.isnan(got[0]) and np.isnan(got[1]), (k, got)
        _same(got, _np_range(b))
    b = np.full(n, np.nan, dtype=dtype)
    assert all(np.isnan(cy.value_range(b)))
    if n > 2:  # NaN next to inf: still NaN
        b = a.copy()
        b[0], b[-1] = np.inf, np.nan
        assert all(np.isnan(cy.value_range(b)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, BIG])
def test_value_range_inf_is_a_value(dtype, n):
    rng = np.random.default_rng(2)
    a = rng.uniform(-5, 5, n).astype(dtype)
    b = a.copy()
    b[n // 3] = np.inf
    _same(cy.value_range(b), _np_range(b))
    b[(2 * n) // 3] = -np.inf
    _same(cy.value_range(b), _np_range(b))
    assert cy.value_range(np.full(n, np.inf, dtype=dtype)) == (np.inf, np.inf)
    assert cy.value_range(np.full(n, -np.inf, dtype=dtype)) == (-np.inf, -np.inf)


def test_value_range_inputs():
    a = np.arange(10.0)
    a.setflags(write=False)  # read-only arrays are read in place
    assert cy.value_range(a) == (0.0, 9.0)
    assert cy.value_range(np.array([0.1], dtype=np.float32)) == (float(np.float32(0.1)),) * 2
    with pytest.raises(ValueError):
        cy.value_range(np.empty(0))
    with pytest.raises(ValueError):
        cy.value_range(np.arange(10.0)[::2])  # not contiguous
    with pytest.raises((TypeError, ValueError)):
        cy.value_range(np.arange(10))  # not a float array


# ---------------------------------------------------------------- moments


def _poly_data(n, dtype, centred, seed=0):
    """x, y; ``centred``: u over [-1, 1] (fit's default basis), else u in [0.2, 1.8]
    (no cancellation in the sums of powers: a plain relative comparison)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(3.0, 7.0, n)
    y = 2.0 + 0.5 * x - 0.02 * x**3 + 0.1 * rng.normal(size=n)
    basis = np.array([5.0, 0.5]) if centred else np.array([2.6, 0.4])
    return x.astype(dtype)[:, None], y.astype(dtype), basis


def _design(X, y, basis, p):
    """|A| and y as float64, A as the reference builds it (u in the data dtype)."""
    dt = X.dtype.type
    u = ((X[:, 0] - dt(basis[0])) * dt(basis[1])).astype(np.float64)
    A = np.c_[np.vander(u, p + 1, increasing=True)[:, 1:], np.ones_like(u)]
    return A, y.astype(np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", range(1, 11))
def test_moments_match_the_reference(dtype, n, p):
    """float64 sums of float64 powers of the data-dtype u, as the reference (rtol 1e-12)."""
    X, y, basis = _poly_data(n, dtype, centred=False, seed=p)
    G, c, S = cy.lsq_stats(1, X, y, basis, p)
    Gr, cr, Sr = ref.lsq_stats(1, X, y, basis, p)
    np.testing.assert_allclose(G, Gr, rtol=1e-12, atol=0)
    np.testing.assert_allclose(c, cr, rtol=1e-12, atol=0)
    assert pytest.approx(Sr, rel=1e-12, abs=0) == S
    np.testing.assert_array_equal(G, G.T)
    assert G[p, p] == n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", [1, 3, 4, 5, 10])
@pytest.mark.parametrize("shifted", [True, False])
def test_moments_centred_basis(dtype, n, p, shifted):
    """u over [-1, 1] (odd moments cancel): error within 1e-12 of the sums of |terms|.

    ``shifted=False`` passes a plain scale (shift 0, its own specialisation).
    """
    X, y, basis = _poly_data(n, dtype, centred=True, seed=p)
    if not shifted:
        X = (X - dtype(5.0)).astype(dtype)
        basis = 0.5
        b2 = np.array([0.0, 0.5])
    else:
        b2 = basis
    G, c, S = cy.lsq_stats(1, X, y, basis, p)
    Gr, cr, Sr = ref.lsq_stats(1, X, y, b2, p)
    A, yy = _design(X, y, b2, p)
    absA = np.abs(A)
    np.testing.assert_array_less(np.abs(G - Gr), 1e-12 * (absA.T @ absA) + 1e-300)
    np.testing.assert_array_less(np.abs(c - cr), 1e-12 * (absA.T @ np.abs(yy)) + 1e-300)
    assert pytest.approx(Sr, rel=1e-12, abs=0) == S


def _weights(n, dtype, seed=0):
    """Sample weights with zeros and tiny ones among them."""
    rng = np.random.default_rng(seed + 100)
    w = rng.uniform(0.0, 3.0, n)
    w[rng.random(n) < 0.1] = 0.0
    w[rng.random(n) < 0.05] = 1e-3
    return w.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("p", range(1, 11))
@pytest.mark.parametrize("shifted", [True, False])
def test_weighted_moments_match_the_reference(dtype, n, p, shifted):
    """The W variants: sum w, sum w u**m, sum y w u**j, sum w y**2 (rtol 1e-12)."""
    X, y, basis = _poly_data(n, dtype, centred=False, seed=p)
    if not shifted:  # the shift-0 specialisation
        X = (X - dtype(2.6)).astype(dtype)
        basis = np.array([0.0, 0.4])
    w = _weights(n, dtype, seed=p)
    G, c, S = cy.lsq_stats(1, X, y, basis, p, w=w)
    Gr, cr, Sr = ref.lsq_stats(1, X, y, basis, p, w=w)
    A, yy = _design(X, y, basis, p)
    wa = w.astype(np.float64)[:, None] * np.abs(A)
    np.testing.assert_array_less(np.abs(G - Gr), 1e-12 * (np.abs(A).T @ wa) + 1e-300)
    np.testing.assert_array_less(np.abs(c - cr), 1e-12 * (wa.T @ np.abs(yy)) + 1e-300)
    assert pytest.approx(Sr, rel=1e-12, abs=1e-300) == S
    np.testing.assert_array_equal(G, G.T)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [9, 200_003])
@pytest.mark.parametrize("p", [2, 4, 7])
def test_unit_weights_are_the_unweighted_bits(dtype, n, p):
    """w = 1 multiplies every term by an exact 1 in the same lanes: the unweighted bits."""
    X, y, basis = _poly_data(n, dtype, centred=True, seed=p)
    G, c, S = cy.lsq_stats(1, X, y, basis, p)
    Gw, cw, Sw = cy.lsq_stats(1, X, y, basis, p, w=np.ones(n, dtype))
    np.testing.assert_array_equal(Gw, G)
    np.testing.assert_array_equal(cw, c)
    assert Sw == S


@pytest.mark.parametrize("dtype", DTYPES)
def test_moments_nonfinite_data(dtype):
    """A NaN or inf row makes the sums it enters non-finite, as in the reference."""
    for bad in (np.nan, np.inf):
        for where in ("x", "y"):
            X, y, basis = _poly_data(40_003, dtype, centred=True)
            (X[:, 0] if where == "x" else y)[12_345] = bad
            G, c, S = cy.lsq_stats(1, X, y, basis, 3)
            Gr, cr, Sr = ref.lsq_stats(1, X, y, basis, 3)
            np.testing.assert_array_equal(np.isfinite(G), np.isfinite(Gr))
            np.testing.assert_array_equal(np.isfinite(c), np.isfinite(cr))
            assert np.isfinite(S) == np.isfinite(Sr)
            fin = np.isfinite(Gr)
            np.testing.assert_allclose(G[fin], Gr[fin], rtol=1e-10)


def test_moments_are_the_same_bits_for_any_thread_count_and_simd_variant(tmp_path):
    """Chunk-ordered lane sums: one thread or two, AVX-512, AVX2 or the baseline."""
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from fastgd.backends import _cython as cy
        rng = np.random.default_rng(5)
        out = {{"simd": cy.simd_stats}}
        for dtype in (np.float64, np.float32):
            x = rng.uniform(-3, 4, 300_007).astype(dtype)[:, None]
            y = (1 + x[:, 0] ** 2 + rng.normal(size=x.shape[0])).astype(dtype)
            w = rng.uniform(0, 2, x.shape[0]).astype(dtype)
            for p in (1, 2, 3, 4, 6, 9):
                for basis in (0.3, np.array([0.5, 0.3])):
                    for tag, kw in (("", {{}}), ("w", {{"w": w}})):
                        G, c, S = cy.lsq_stats(1, x, y, basis, p, **kw)
                        key = f"{{dtype.__name__}}-{{p}}-{{np.ndim(basis)}}{{tag}}"
                        out[key] = [*G.ravel().tolist(), *c.tolist(), S]
            out[f"range-{{dtype.__name__}}"] = list(cy.value_range(x[:, 0]))
        print(repr(out))
    """)
    runs = {}
    for simd, threads in (("", "2"), ("", "1"), ("avx2", "2"), ("baseline", "1")):
        env = dict(os.environ, FASTGD_SIMD=simd, OMP_NUM_THREADS=threads)
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[simd, threads] = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert runs["baseline", "1"]["simd"] == "baseline"
    first = runs["", "2"]
    for key, run in runs.items():
        assert run.keys() == first.keys()
        for name in first:
            if name != "simd":
                assert run[name] == first[name], (key, name)
