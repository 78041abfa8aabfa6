"""Synthetic regression data, generated in fixed blocks of rows.

Every block of ``BLOCK_ROWS`` rows draws from its own generator, seeded from
``(seed, block index)``, so the data depend only on the seed: not on how many
rows are generated at a time, nor on whether they go to memory or to a
``np.memmap`` passed as ``out=``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validation as val

BLOCK_ROWS = 1 << 15
_TRUTH_STREAM = 0
_ROWS_STREAM = 1


def _seed(seed: Any) -> int:
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    return val.as_int("seed", seed, 0)


def _dtype(dtype: Any) -> type:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt.type


def _target(name: str, out: Any, shape: tuple[int, ...], dt: type) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dt)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dt:
        raise ValueError(f"{name} must be an ndarray (or np.memmap) of shape {shape} and dtype "
                         f"{np.dtype(dt).name}, got "
                         f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out).__name__)}")
    if not (out.flags.writeable and out.flags.c_contiguous):
        raise ValueError(f"{name} must be writeable and C-contiguous")
    return out


def _contaminate(rng: np.random.Generator, yb: np.ndarray, signal: np.ndarray, intercept: float,
                 outliers: float) -> None:
    """Replace a fraction of targets by a contaminating sub-population.

    Outlying rows get ``-2*signal + intercept + 5*|z|``: gross errors that pull
    a least-squares fit towards the wrong slope; Huber bounds their influence.
    """
    if outliers <= 0:
        return
    mask = rng.random(yb.shape[0]) < outliers
    k = int(mask.sum())
    if k:
        yb[mask] = -2.0 * signal[mask] + intercept + 5.0 * np.abs(rng.standard_normal(k))


def _check_common(n_samples: Any, noise: Any, outliers: Any) -> tuple[int, float, float]:
    n = val.as_int("n_samples", n_samples, 1)
    noise = val.as_float("noise", noise, low=0.0)
    outliers = val.as_float("outliers", outliers, low=0.0, high=1.0, high_open=True)
    return n, noise, outliers


def make_linear(n_samples: int, n_features: int, *, noise: float = 0.1, outliers: float = 0.0,
                seed: int | None = 0, dtype: Any = np.float64, out: tuple[Any, Any] | None = None
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
        The data depend only on this (not on how they are written).
    dtype : float32 or float64
    out : (X, y), optional
        Pre-allocated arrays (e.g. ``np.memmap``) to write into.

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
    >>> import fastgd
    >>> X, y, coef, b = fastgd.datasets.make_linear(100, 3, seed=1)
    >>> X.shape, y.shape, coef.shape
    ((100, 3), (100,), (3,))
    """
    n, noise, outliers = _check_common(n_samples, noise, outliers)
    p = val.as_int("n_features", n_features, 0)
    s, dt = _seed(seed), _dtype(dtype)
    truth = np.random.default_rng([s, _TRUTH_STREAM])
    coef = truth.uniform(-2.0, 2.0, p)
    intercept = float(truth.uniform(-1.0, 1.0))
    X = _target("out[0]", None if out is None else out[0], (n, p), dt)
    y = _target("out[1]", None if out is None else out[1], (n,), dt)
    coef_dt = coef.astype(dt)
    for b, lo in enumerate(range(0, n, BLOCK_ROWS)):
        rng = np.random.default_rng([s, _ROWS_STREAM, b])
        hi = min(lo + BLOCK_ROWS, n)
        Xb = X[lo:hi]
        rng.standard_normal(dtype=dt, out=Xb)
        signal = Xb @ coef_dt
        yb = signal + dt(intercept) + dt(noise) * rng.standard_normal(hi - lo, dtype=dt)
        _contaminate(rng, yb, signal, intercept, outliers)
        y[lo:hi] = yb
    return X, y, coef, intercept


def make_polynomial(n_samples: int, degree: int, *, noise: float = 0.1, outliers: float = 0.0,
                    seed: int | None = 0, dtype: Any = np.float64,
                    out: tuple[Any, Any] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A polynomial ``y = intercept + sum_j coef[j-1] x**j + noise`` in one variable.

    Parameters
    ----------
    n_samples : int
    degree : int
        Number of coefficients (powers 1..degree), >= 1.
    noise, outliers, seed, dtype, out
        As in :func:`make_linear`.

    Returns
    -------
    x : ndarray, shape (n_samples,)
        Uniform in [-1, 1].
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
    n, noise, outliers = _check_common(n_samples, noise, outliers)
    k = val.as_int("degree", degree, 1)
    s, dt = _seed(seed), _dtype(dtype)
    truth = np.random.default_rng([s, _TRUTH_STREAM])
    coef = truth.uniform(-2.0, 2.0, k)
    intercept = float(truth.uniform(-1.0, 1.0))
    x = _target("out[0]", None if out is None else out[0], (n,), dt)
    y = _target("out[1]", None if out is None else out[1], (n,), dt)
    cc = np.r_[0.0, coef]
    for b, lo in enumerate(range(0, n, BLOCK_ROWS)):
        rng = np.random.default_rng([s, _ROWS_STREAM, b])
        hi = min(lo + BLOCK_ROWS, n)
        xb = rng.uniform(-1.0, 1.0, hi - lo).astype(dt)
        signal = np.polynomial.polynomial.polyval(xb, cc).astype(dt)
        yb = signal + dt(intercept) + dt(noise) * rng.standard_normal(hi - lo, dtype=dt)
        _contaminate(rng, yb, signal, intercept, outliers)
        x[lo:hi] = xb
        y[lo:hi] = yb
    return x, y, coef, intercept
