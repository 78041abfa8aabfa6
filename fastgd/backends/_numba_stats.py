"""The numba backend's statistics passes: ``moments`` and ``max_row_norm2``.

Part of ``fastgd.backends._numba`` (which re-exports both); the numpy
reference ``_numpy.moments`` / ``_numpy.max_row_norm2`` is the specification.

* ``moments``, diagonal: blocks of ``_numba.BLOCK_ELEMS`` elements of ``X``,
  each summed into its own row of a float64 buffer (for large inputs by
  Python threads over the serial block kernel, ``_numba._over_blocks``: no
  parallel region to compile), the rows added in block order.  Full: at most eight chunks of rows,
  each with its own ``G``; a chunk copies ``_GRAM_ROWS`` shifted rows at a time,
  extended by ``[1, b_i]``, into a float64 buffer, column-major (and the same
  rows times w), and adds their Gram matrix to its upper triangle in tiles of
  4 x 4 dot products over the rows: s, sxy, sy and syy are entries of it.
  The chunking depends on the problem's size only: the same bits with any
  number of threads.
* Import it through ``_numba`` (whose last line imports this module).
* ``max_row_norm2``: a maximum over rows, per block, then over blocks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from . import _numba as _nb

_jit = _nb._jit
_jit_entry = _nb._jit_entry
_jit_inline = _nb._jit_inline
#: Rows of a block of the full moments pass (its float64 copy stays in L2).
_GRAM_ROWS = 64


# ---------------------------------------------------------------- moments


@njit(**_jit_inline)  # into its one caller: one compiled function less
def _diag_rows(X, y, x0, y0, lo, hi, buf, w):
    """buf = [s, diag G, sxy (d each), sy, syy] += rows lo..hi-1.

    Eight rows at a time: their terms are summed per column first, then into
    ``buf`` (one store per column and eight rows: loads of X do not wait
    behind stores to the sums).
    """
    d = X.shape[1]
    sy = 0.0
    syy = 0.0
    wr = np.ones(8)
    br = np.empty(8)
    i = lo
    while i + 8 <= hi:
        for r in range(8):
            if w is not None:
                wr[r] = np.float64(w[i + r])
            br[r] = np.float64(y[i + r]) - y0
        for j in range(d):
            c = x0[j]
            ss = 0.0
            gg = 0.0
            xy = 0.0
            for r in range(8):
                a = np.float64(X[i + r, j]) - c
                e = wr[r] * a
                ss += e
                gg += e * a
                xy += e * br[r]
            buf[j] += ss
            buf[d + j] += gg
            buf[2 * d + j] += xy
        for r in range(8):
            f = wr[r] * br[r]
            sy += f
            syy += f * br[r]
        i += 8
    for i in range(i, hi):  # noqa: B020 - the tail starts where the unrolled loop stopped
        wi = 1.0 if w is None else np.float64(w[i])
        b = np.float64(y[i]) - y0
        bw = wi * b
        for j in range(d):
            a = np.float64(X[i, j]) - x0[j]
            aw = wi * a
            buf[j] += aw
            buf[d + j] += aw * a
            buf[2 * d + j] += aw * b
        sy += bw
        syy += bw * b
    buf[3 * d] += sy
    buf[3 * d + 1] += syy


@njit(**_jit_entry)  # called from Python
def _diag_blocks(X, y, x0, y0, rb, b0, b1, part, w):
    """Blocks b0..b1-1 of ``rb`` rows, each summed into its own row of ``part``."""
    n = X.shape[0]
    for b in range(b0, b1):
        acc = part[b]
        acc[:] = 0.0
        _diag_rows(X, y, x0, y0, b * rb, min(b * rb + rb, n), acc, w)


@njit(**_jit)
def _gram_tiles(At, Awt, nr, G):
    """G[j, k] += sum_{r < nr} Awt[j, r] At[k, r] for the upper triangle, 4 x 4 tiles."""
    dp = At.shape[0]
    for j in range(0, dp, 4):
        for k in range(j, dp, 4):
            c00 = c01 = c02 = c03 = 0.0
            c10 = c11 = c12 = c13 = 0.0
            c20 = c21 = c22 = c23 = 0.0
            c30 = c31 = c32 = c33 = 0.0
            for r in range(nr):
                a0 = Awt[j, r]
                a1 = Awt[j + 1, r]
                a2 = Awt[j + 2, r]
                a3 = Awt[j + 3, r]
                b0 = At[k, r]
                b1 = At[k + 1, r]
                b2 = At[k + 2, r]
                b3 = At[k + 3, r]
                c00 += a0 * b0
                c01 += a0 * b1
                c02 += a0 * b2
                c03 += a0 * b3
                c10 += a1 * b0
                c11 += a1 * b1
                c12 += a1 * b2
                c13 += a1 * b3
                c20 += a2 * b0
                c21 += a2 * b1
                c22 += a2 * b2
                c23 += a2 * b3
                c30 += a3 * b0
                c31 += a3 * b1
                c32 += a3 * b2
                c33 += a3 * b3
            G[j, k] += c00
            G[j, k + 1] += c01
            G[j, k + 2] += c02
            G[j, k + 3] += c03
            G[j + 1, k] += c10
            G[j + 1, k + 1] += c11
            G[j + 1, k + 2] += c12
            G[j + 1, k + 3] += c13
            G[j + 2, k] += c20
            G[j + 2, k + 1] += c21
            G[j + 2, k + 2] += c22
            G[j + 2, k + 3] += c23
            G[j + 3, k] += c30
            G[j + 3, k + 1] += c31
            G[j + 3, k + 2] += c32
            G[j + 3, k + 3] += c33


@njit(**_jit_inline)  # into its one caller: one compiled function less
def _full_rows(X, y, x0, y0, lo, hi, G, At, Awt, w):
    """G (dp x dp, upper triangle) += the Gram matrix of rows lo..hi-1 extended by
    ``[1, b_i]``: ``G[:d, :d]``, then s, sxy, sy, syy in columns d and d + 1.

    ``At``, ``Awt``: (dp, >= _GRAM_ROWS) scratch whose padding rows are 0.
    """
    d = X.shape[1]
    blo = lo
    while blo < hi:
        nr = min(_GRAM_ROWS, hi - blo)
        for r in range(nr):
            i = blo + r
            wi = 1.0 if w is None else np.float64(w[i])
            b = np.float64(y[i]) - y0
            for j in range(d):
                a = np.float64(X[i, j]) - x0[j]
                At[j, r] = a
                Awt[j, r] = wi * a
            At[d, r] = 1.0
            Awt[d, r] = wi
            At[d + 1, r] = b
            Awt[d + 1, r] = wi * b
        _gram_tiles(At, Awt, nr, G)
        blo += nr


@njit(**_jit_entry)  # called from Python
def _full_chunks(X, y, x0, y0, c0, c1, Gs, w):
    """Chunks c0..c1-1 of the ``Gs.shape[0]`` chunks of rows, each into its own ``Gs[c]``."""
    n = X.shape[0]
    nch = Gs.shape[0]
    dp = Gs.shape[1]
    # rows of _GRAM_ROWS + 8 doubles: a power-of-two stride would put a row's
    # column of writes into a few cache sets (conflict misses in L1)
    At = np.zeros((dp, _GRAM_ROWS + 8))
    Awt = np.zeros((dp, _GRAM_ROWS + 8))
    for c in range(c0, c1):
        Gs[c, :, :] = 0.0
        _full_rows(X, y, x0, y0, (c * n) // nch, ((c + 1) * n) // nch, Gs[c], At, Awt, w)


def _moments_full(
    X: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: float, par: bool, w: Any
) -> tuple:
    n, d = X.shape
    dp = (d + 2 + 3) // 4 * 4
    nch = max(1, min(8, n * (d * (d + 1) // 2 + 2 * d + 2) // (1 << 15), n))
    Gs = np.empty((nch, dp, dp))
    _nb._over_blocks(lambda c0, c1: _full_chunks(X, y, x0, y0, c0, c1, Gs, w), nch, par, 1)
    T = Gs[0].copy()
    for c in range(1, nch):  # in chunk order
        T += Gs[c]
    G = np.triu(T[:d, :d])
    G = G + np.triu(G, 1).T
    return T[:d, d].copy(), G, T[:d, d + 1].copy(), float(T[d, d + 1]), float(T[d + 1, d + 1])


def _moments_diag(
    X: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: float, par: bool, w: Any
) -> tuple:
    n, d = X.shape
    rb = max(1, _nb.BLOCK_ELEMS // max(1, d))
    nb = max(1, (n + rb - 1) // rb)
    part = np.empty((nb, _nb._padded(3 * d + 2, 8)))
    _nb._over_blocks(lambda b0, b1: _diag_blocks(X, y, x0, y0, rb, b0, b1, part, w), nb, par)
    T = part[0].copy()
    for b in range(1, nb):  # in block order
        T += part[b]
    return T[:d], T[d : 2 * d], T[2 * d : 3 * d], float(T[3 * d]), float(T[3 * d + 1])


def moments(
    X: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: float, full: bool, w: np.ndarray | None = None
) -> tuple:
    """Sums over the rows of the rows and of y shifted by an origin, in float64.

    With ``a_i = X[i] - x0`` and ``b_i = y[i] - y0`` (differences in float64)
    and ``w_i`` the weights (1 when ``w`` is None): ``s = sum w_i a_i``,
    ``G = sum w_i a_i a_i^T`` (``(d, d)`` when ``full``, else its diagonal),
    ``sxy = sum w_i a_i b_i``, ``sy = sum w_i b_i``, ``syy = sum w_i b_i**2``.
    One (parallel) read of X.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0, 2.0], [3.0, 5.0]]); y = np.array([1.0, 2.0])
    >>> s, G, sxy, sy, syy = _numba.moments(X, y, np.zeros(2), 0.0, True)
    >>> s.tolist(), G.tolist(), sxy.tolist(), sy, syy
    ([4.0, 7.0], [[10.0, 17.0], [17.0, 29.0]], [7.0, 12.0], 3.0, 5.0)
    """
    x0 = np.ascontiguousarray(x0, dtype=np.float64)
    if x0.shape != (X.shape[1],):
        raise ValueError(f"x0 must have shape ({X.shape[1]},), got {x0.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y has {y.shape} rows, X has {X.shape[0]}")
    args = (_nb._ro(X), _nb._ro(y), x0, float(y0), _nb._w(w, X))
    with _nb._Parallel(X.size):
        return (_moments_full if full else _moments_diag)(*args[:4], bool(_nb._large(X)), args[4])


# ---------------------------------------------------------------- max_row_norm2


@njit(**_jit_inline)  # into its one caller: one compiled function less
def _rn2_rows(model, X, basis, pre, kind, icpt, lo, hi, a, w):
    """(max over rows lo..hi-1 of w_i |T^T a_i|**2, whether a row gave NaN)."""
    m = pre.shape[1]
    p = m - 1
    best = 0.0
    nan = False
    for i in range(lo, hi):
        if model == 0 and kind < 2:  # straight from the row: no copy
            v = 0.0
            if kind == 0:
                for j in range(p):
                    z = np.float64(X[i, j])
                    v += z * z
            else:
                for j in range(p):
                    z = pre[0, j] * np.float64(X[i, j]) - pre[1, j] * icpt
                    v += z * z
            v += icpt * icpt
            if w is not None:
                v = v * np.float64(w[i])
            if v > best:
                best = v
            elif v != v:
                nan = True
            continue
        if model == 0:
            for j in range(p):
                a[j] = np.float64(X[i, j])
        else:
            u = np.float64(_nb._u(X, i, basis))
            t = u
            for j in range(p):
                a[j] = t
                t = t * u
        a[p] = icpt
        if kind == 0:
            v = icpt * icpt
            for j in range(p):
                v += a[j] * a[j]
        elif kind == 1:
            v = 0.0
            for j in range(p):
                z = pre[0, j] * a[j] - pre[1, j] * icpt
                v += z * z
            v += icpt * icpt
        else:
            v = 0.0
            for k in range(m):
                z = 0.0
                for j in range(m):
                    z += a[j] * pre[j, k]
                v += z * z
        if w is not None:
            v = v * np.float64(w[i])
        if v > best:
            best = v
        elif v != v:
            nan = True
    return best, nan


@njit(**_jit_entry)  # called from Python
def _rn2_blocks(model, X, basis, pre, kind, icpt, rb, b0, b1, part, w):
    """``_rn2_rows`` of blocks b0..b1-1 of ``rb`` rows: part[b] = (max, NaN seen)."""
    n = X.shape[0]
    a = np.empty(pre.shape[1])
    for b in range(b0, b1):
        best, nan = _rn2_rows(model, X, basis, pre, kind, icpt, b * rb, min(b * rb + rb, n), a, w)
        part[b, 0] = best
        part[b, 1] = 1.0 if nan else 0.0


def max_row_norm2(
    model: int,
    X: np.ndarray,
    basis: Any,
    pre: np.ndarray,
    fit_icpt: bool,
    w: np.ndarray | None = None,
) -> float:
    """``max_i w_i |T^T a_i|**2`` over the design rows ``a_i = [features, 1 or 0]``.

    Features: the row of X (model 0) or ``u**1 .. u**p`` (model 1, ``u = (x -
    shift) * scale`` in the data dtype, powers in float64, ``p = pre.shape[1]
    - 1``); the last entry 1 when ``fit_icpt``, else 0.  ``pre`` (float64,
    2-D): ``(0, m)`` T = I; ``(2, m)`` centre and scale; ``(2m, m)`` dense,
    ``T = pre[:m]``.  One (parallel) read; NaN when a row gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0, 2.0], [3.0, -1.0]])
    >>> _numba.max_row_norm2(0, X, 1.0, np.empty((0, 3)), True)
    11.0
    """
    pre = np.ascontiguousarray(pre, dtype=np.float64)
    m = pre.shape[1]
    kind = {0: 0, 2: 1, 2 * m: 2}.get(pre.shape[0])
    if kind is None or m < 1:
        raise ValueError(
            f"pre must have 0, 2 or 2 (p + 1) rows and p + 1 >= 1 columns, got shape {pre.shape}"
        )
    if model == 0 and X.shape[1] != m - 1:
        raise ValueError(
            f"the linear model needs pre.shape[1] == X.shape[1] + 1, got {m} "
            f"for {X.shape[1]} columns"
        )
    if model != 0 and X.shape[1] != 1:
        raise ValueError(f"the polynomial model needs X of shape (n, 1), got {X.shape[1]} columns")
    if kind == 0:
        pre = np.zeros((2, m))  # one array type; never read
    args = (
        int(model),
        _nb._ro(X),
        _nb._basis(basis),
        pre,
        kind,
        1.0 if fit_icpt else 0.0,
        _nb._w(w, X),
    )
    rb = max(1, _nb.BLOCK_ELEMS // max(1, X.shape[1]))
    nb = max(1, (X.shape[0] + rb - 1) // rb)
    part = np.zeros((nb, 2))
    with _nb._Parallel(X.size):
        _nb._over_blocks(
            lambda b0, b1: _rn2_blocks(*args[:6], rb, b0, b1, part, args[6]), nb, _nb._large(X)
        )
    return math.nan if part[:, 1].any() else float(part[:, 0].max())
