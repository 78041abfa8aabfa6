"""Synthetic regression data, generated in fixed blocks of rows, in parallel.

Every block of ``BLOCK_ROWS`` rows draws from its own generator, seeded from
``(seed, block index)``, so the data depend only on the seed: not on
``chunk_size``, the number of threads, nor on whether they go to memory or to
a ``np.memmap`` passed as ``out=``.  Blocks are written straight into the
output arrays (no temporary of the full length), and chunks of blocks are
handed to a pool of threads: numpy's generators and ufuncs release the GIL, so
generation scales with the cores.  A ``np.memmap`` opened with ``mode="w+"``
as ``out=`` writes data larger than memory to disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _validation as val

#: Rows drawn from one generator (the unit of determinism).
BLOCK_ROWS = 1 << 15
#: Default rows per task handed to a thread (a whole number of blocks).
CHUNK_ROWS = 8 * BLOCK_ROWS
_TRUTH_STREAM = 0
_ROWS_STREAM = 1


def _seed(seed: Any) -> int:
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)  # drawn fresh: one int
        return entropy % (2**63)
    return val.as_int("seed", seed, 0)


def _dtype(dtype: Any) -> type[np.floating[Any]]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt.type


def _target(name: str, out: Any, shape: tuple[int, ...], dt: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dt)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dt:
        raise ValueError(
            f"{name} must be an ndarray (or np.memmap) of shape {shape} and dtype "
            f"{np.dtype(dt).name}, got "
            f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out).__name__)}"
        )
    if not (out.flags.writeable and out.flags.c_contiguous):
        raise ValueError(f"{name} must be writeable and C-contiguous")
    return out


def _outputs(
    out: Any, shapes: tuple[tuple[int, ...], tuple[int, ...]], dt: type
) -> tuple[np.ndarray, np.ndarray]:
    if out is None:
        return _target("out[0]", None, shapes[0], dt), _target("out[1]", None, shapes[1], dt)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"out must be a pair of arrays (X, y), got {type(out).__name__}")
    a = _target("out[0]", out[0], shapes[0], dt)
    b = _target("out[1]", out[1], shapes[1], dt)
    if np.shares_memory(a, b):
        raise ValueError("out[0] and out[1] must not overlap")
    return a, b


def _contaminate(
    rng: np.random.Generator, yb: np.ndarray, signal: np.ndarray, intercept: float, outliers: float
) -> None:
    """Replace a fraction of targets by a contaminating sub-population.

    Outlying rows get ``-2*signal + intercept + 5*|z|``: gross errors that pull
    a least-squares fit towards the wrong slope; Huber bounds their influence.
    """
    if outliers <= 0:
        return
    mask = rng.random(yb.shape[0]) < outliers
    k = int(np.count_nonzero(mask))
    if k:
        yb[mask] = -2.0 * signal[mask] + intercept + 5.0 * np.abs(rng.standard_normal(k))


def _check_common(
    n_samples: Any, noise: Any, outliers: Any, chunk_size: Any, n_jobs: Any
) -> tuple[int, float, float, int, int]:
    n = val.as_int("n_samples", n_samples, 1)
    noise = val.as_float("noise", noise, low=0.0)
    outliers = val.as_float("outliers", outliers, low=0.0, high=1.0, high_open=True)
    if chunk_size is None:
        blocks = CHUNK_ROWS // BLOCK_ROWS
    else:
        blocks = -(-val.as_int("chunk_size", chunk_size, 1) // BLOCK_ROWS)
    if n_jobs is None:
        n_jobs = _n_cpus()
    else:
        n_jobs = val.as_int("n_jobs", n_jobs, 1)
    return n, noise, outliers, blocks, n_jobs


def _n_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _run_blocks(
    n: int, blocks_per_chunk: int, n_jobs: int, fill: Callable[[int, int, int], None]
) -> None:
    """Call ``fill(block, lo, hi)`` for every block, chunks of blocks per thread."""
    n_blocks = -(-n // BLOCK_ROWS)

    def chunk(first: int) -> None:
        for b in range(first, min(first + blocks_per_chunk, n_blocks)):
            fill(b, b * BLOCK_ROWS, min((b + 1) * BLOCK_ROWS, n))

    starts = range(0, n_blocks, blocks_per_chunk)
    workers = min(n_jobs, len(starts))
    if workers <= 1:
        for first in starts:
            chunk(first)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastgd-data") as pool:
        for fut in [pool.submit(chunk, first) for first in starts]:
            fut.result()  # re-raises a worker's exception here


def make_linear(
    n_samples: int,
    n_features: int,
    *,
    noise: float = 0.1,
    outliers: float = 0.0,
    seed: int | None = 0,
    dtype: Any = np.float64,
    out: tuple[Any, Any] | None = None,
    chunk_size: int | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A linear regression problem ``y = X @ coef + intercept + noise``.

    Parameters
    ----------
    n_samples, n_features : int
    noise : float
        Standard deviation of the Gaussian noise on y.
    outliers : float
        Fraction of rows (in [0, 1)) whose target is a gross error from a
        contaminating sub-population (``-2 * X @ coef + intercept + 5|z|``).
    seed : int or None
        The data depend only on this (not on ``chunk_size``, ``n_jobs`` or ``out``).
    dtype : float32 or float64
    out : (X, y), optional
        Pre-allocated C-contiguous arrays of shapes ``(n_samples, n_features)``
        and ``(n_samples,)`` in ``dtype`` to write into, e.g. ``np.memmap``
        files for data larger than memory.  They are returned.
    chunk_size : int, optional
        Rows handed to one thread at a time, rounded up to whole blocks of
        :data:`BLOCK_ROWS` (default :data:`CHUNK_ROWS`).  Speed only.
    n_jobs : int, optional
        Threads to generate with (default: the CPUs this process may use).

    Returns
    -------
    X : ndarray, shape (n_samples, n_features)
        Standard normal features.
    y : ndarray, shape (n_samples,)
    coef : ndarray of float64, shape (n_features,)
        The true coefficients, uniform in [-2, 2].
    intercept : float
        The true intercept, uniform in [-1, 1].

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> X, y, coef, b = fastgd.datasets.make_linear(100, 3, seed=1)
    >>> X.shape, y.shape, coef.shape
    ((100, 3), (100,), (3,))
    >>> X2, y2, _, _ = fastgd.datasets.make_linear(100, 3, seed=1, chunk_size=1, n_jobs=2)
    >>> bool(np.array_equal(X, X2) and np.array_equal(y, y2))
    True
    """
    n, noise, outliers, bpc, n_jobs = _check_common(n_samples, noise, outliers, chunk_size, n_jobs)
    p = val.as_int("n_features", n_features, 0)
    s, dt = _seed(seed), _dtype(dtype)
    truth = np.random.default_rng([s, _TRUTH_STREAM])
    coef = truth.uniform(-2.0, 2.0, p)
    intercept = float(truth.uniform(-1.0, 1.0))
    X, y = _outputs(out, ((n, p), (n,)), dt)
    coef_dt = coef.astype(dt)
    icpt_dt, noise_dt = dt(intercept), dt(noise)

    def fill(b: int, lo: int, hi: int) -> None:
        rng = np.random.default_rng([s, _ROWS_STREAM, b])
        Xb, yb = X[lo:hi], y[lo:hi]
        rng.standard_normal(dtype=dt, out=Xb)
        signal = Xb @ coef_dt if p else np.zeros(hi - lo, dtype=dt)
        rng.standard_normal(dtype=dt, out=yb)  # y = signal + intercept + noise*z, in place
        yb *= noise_dt
        yb += signal
        yb += icpt_dt
        _contaminate(rng, yb, signal, intercept, outliers)

    _run_blocks(n, bpc, n_jobs, fill)
    return X, y, coef, intercept


def make_polynomial(
    n_samples: int,
    degree: int,
    *,
    noise: float = 0.1,
    outliers: float = 0.0,
    seed: int | None = 0,
    dtype: Any = np.float64,
    out: tuple[Any, Any] | None = None,
    chunk_size: int | None = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A polynomial ``y = intercept + sum_j coef[j-1] x**j + noise`` in one variable.

    Parameters
    ----------
    n_samples : int
    degree : int
        Number of coefficients (powers 1..degree), >= 1.
    noise, outliers, seed, dtype, chunk_size, n_jobs
        As in :func:`make_linear`.
    out : (x, y), optional
        Pre-allocated C-contiguous arrays of shape ``(n_samples,)`` in ``dtype``
        (e.g. ``np.memmap``) to write into.

    Returns
    -------
    x : ndarray, shape (n_samples,)
        Uniform in [-1, 1).
    y : ndarray, shape (n_samples,)
    coef : ndarray of float64, shape (degree,)
        Ascending powers, uniform in [-2, 2].
    intercept : float

    Examples
    --------
    >>> import fastgd
    >>> x, y, coef, b = fastgd.datasets.make_polynomial(1000, 3, seed=0)
    >>> x.shape, coef.shape
    ((1000,), (3,))
    """
    n, noise, outliers, bpc, n_jobs = _check_common(n_samples, noise, outliers, chunk_size, n_jobs)
    k = val.as_int("degree", degree, 1)
    s, dt = _seed(seed), _dtype(dtype)
    truth = np.random.default_rng([s, _TRUTH_STREAM])
    coef = truth.uniform(-2.0, 2.0, k)
    intercept = float(truth.uniform(-1.0, 1.0))
    x, y = _outputs(out, ((n,), (n,)), dt)
    coef_dt = coef.astype(dt)
    icpt_dt, noise_dt = dt(intercept), dt(noise)

    def fill(b: int, lo: int, hi: int) -> None:
        rng = np.random.default_rng([s, _ROWS_STREAM, b])
        xb, yb = x[lo:hi], y[lo:hi]
        rng.random(dtype=dt, out=xb)  # uniform in [-1, 1)
        xb *= dt(2.0)
        xb -= dt(1.0)
        signal = np.full(hi - lo, coef_dt[k - 1], dtype=dt)
        for j in range(k - 2, -1, -1):  # Horner, in place: (c_k x + c_{k-1}) x + ...
            signal *= xb
            signal += coef_dt[j]
        signal *= xb
        rng.standard_normal(dtype=dt, out=yb)
        yb *= noise_dt
        yb += signal
        yb += icpt_dt
        _contaminate(rng, yb, signal, intercept, outliers)

    _run_blocks(n, bpc, n_jobs, fill)
    return x, y, coef, intercept
