"""The pure-numpy reference backend: the executable specification.

Design
------
Written for clarity, not speed: every compiled backend (``_numba.py``,
``_kernels.pyx``) has the same sections in the same order, the same function
names and argument order, and is tested against this file.  See
``fastgd/backends/__init__.py`` for the shapes and dtypes of the arguments.

Sections: input scan -> scalar losses -> model prediction -> fused
objective/gradient over rows -> update rules -> preconditioned step ->
schedule -> epoch loop -> minimize loop.

Rows are processed in blocks of ``BLOCK`` so that no temporary of length n is
ever allocated (a 1e7-row fit stays within a few MB of X itself).  Sums over
rows accumulate in float64; parameters and gradients are stored in the data
dtype, so float32 stays float32 end to end.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

BLOCK = 1 << 14
_NO_PRE = np.empty((0, 0))

# ---------------------------------------------------------------- input scan


def all_finite(a: np.ndarray) -> bool:
    """True when no element of the C-contiguous float array ``a`` is NaN or +-inf.

    The validation layer calls this before any kernel; on ``False`` it scans
    again to name the first bad position.
    """
    flat = a.reshape(-1)
    step = BLOCK * 4  # a 64 KB boolean temporary
    for lo in range(0, flat.shape[0], step):
        if not np.isfinite(flat[lo : lo + step]).all():
            return False
    return True


def value_range(a: np.ndarray) -> tuple[float, float]:
    """``(min(a), max(a))`` of a C-contiguous 1-D float array; NaN for both when
    ``a`` holds a NaN (infinities are values)."""
    lo, hi = float(np.min(a)), float(np.max(a))
    if np.isnan(lo) or np.isnan(hi):
        return math.nan, math.nan
    return lo, hi


# ---------------------------------------------------------------- losses
# loss 0: mse    rho = r**2                 psi = 2 r
# loss 1: huber  rho = r**2/2 (|r|<=d)      psi = clip(r, -d, d)
#                d (|r| - d/2) otherwise


def rho(loss: int, r: np.ndarray, delta: float) -> np.ndarray:
    """Loss of the residuals ``r`` (elementwise)."""
    if loss == 0:
        return r * r
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def psi(loss: int, r: np.ndarray, delta: float) -> np.ndarray:
    """Derivative of the loss at ``r`` (elementwise)."""
    if loss == 0:
        return 2.0 * r
    return np.clip(r, -delta, delta)


# ---------------------------------------------------------------- model
# model 0: linear  pred = X @ coef + b
# model 1: poly    pred = b + sum_j coef[j-1] u**j, by Horner, with
#                  u = (x - basis[0]) * basis[1] formed in the data dtype


def _u(Xb: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The polynomial model's input ``u = (x - shift) * scale`` in the data dtype."""
    dt = Xb.dtype.type
    return (Xb[:, 0] - dt(basis[0])) * dt(basis[1])


def predict_rows(model: int, Xb: np.ndarray, theta: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Predictions for a block of rows."""
    p = theta.shape[0] - 1
    if model == 0:
        return Xb @ theta[:p] + theta[p]
    u = _u(Xb, basis)
    pred = np.zeros_like(u)
    for j in range(p - 1, -1, -1):  # Horner: ((c_k u + c_{k-1}) u + ... + c_1) u
        pred = (pred + theta[j]) * u
    return pred + theta[p]


def _accumulate_grad(
    model: int, Xb: np.ndarray, s: np.ndarray, basis: np.ndarray, acc: np.ndarray
) -> None:
    """acc[:p] += sum_i s_i dpred_i/dcoef, acc[p] += sum_i s_i (float64 acc)."""
    p = acc.shape[0] - 1
    if model == 0:
        acc[:p] += Xb.T @ s
    else:
        u = _u(Xb, basis)
        pw = u.copy()
        for j in range(p):  # running power u**(j+1)
            acc[j] += np.einsum("i,i->", pw, s)
            pw *= u
    acc[p] += np.sum(s, dtype=np.float64)


def _penalty_grad(l2w: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The penalty's gradient in float64: ``l2w*theta`` (diagonal) or ``Q @ theta`` (dense).

    ``l2w`` has ``p + 1`` entries (diagonal weights) or ``(p + 1)**2`` (a dense
    symmetric matrix ``Q``, row major): ``Q[j] @ theta`` sums over ``k``
    ascending, in float64.
    """
    m = theta.shape[0]
    if l2w.shape[0] == m:
        return (l2w * theta).astype(np.float64)  # the product in the data dtype
    Q = l2w.reshape(m, m).astype(np.float64)
    th = theta.astype(np.float64)
    return np.array([_dot_asc(Q[j], th) for j in range(m)])


def _dot_asc(a: np.ndarray, b: np.ndarray) -> float:
    """sum_k a[k]*b[k] in float64, k ascending (the compiled backends' order)."""
    s = 0.0
    for k in range(a.shape[0]):
        s += float(a[k]) * float(b[k])
    return s


def _finish(
    acc: np.ndarray, m: int, theta: np.ndarray, l2w: np.ndarray, fit_icpt: int, grad: np.ndarray
) -> None:
    """grad = acc / m + penalty gradient, intercept slot zero when not fitted."""
    grad[:] = acc / m + _penalty_grad(l2w, theta)
    if not fit_icpt:
        grad[-1] = 0


def _penalty(theta: np.ndarray, l2w: np.ndarray) -> float:
    """0.5 * sum(l2w*theta**2) (diagonal) or 0.5 * theta @ Q @ theta (dense)."""
    m = theta.shape[0]
    th = theta.astype(np.float64)
    if l2w.shape[0] == m:
        return 0.5 * float(np.dot(l2w.astype(np.float64), th**2))
    Q = l2w.reshape(m, m).astype(np.float64)
    s = 0.0
    for j in range(m):
        s += th[j] * _dot_asc(Q[j], th)
    return 0.5 * s


# Sample weights ``w`` (None, or (n,) in the data dtype): every per-row term is
# multiplied by w_i, formed in the data dtype (rho(r_i) * w_i, psi(r_i) * w_i),
# and the sums are still divided by the number of rows.  The Python layer
# passes weights normalised to mean 1, so that the objective is
# sum_i w_i rho(r_i) / sum_i w_i and a mini-batch's gradient is an unbiased
# estimate of the full one; the kernels only multiply.


def _weighted(v: np.ndarray, w: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """Per-row terms ``v`` of rows ``lo:hi`` times their weights (in the data dtype)."""
    return v if w is None else v * w[lo:hi]


def objective_grad(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    grad: np.ndarray,
    w: np.ndarray | None = None,
) -> float:
    """Objective and gradient over all rows, one sweep over the row blocks."""
    n = X.shape[0]
    f = 0.0
    acc = np.zeros(theta.shape[0], dtype=np.float64)
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        Xb, yb = X[lo:hi], y[lo:hi]
        r = predict_rows(model, Xb, theta, basis) - yb
        f += float(np.sum(_weighted(rho(loss, r, delta), w, lo, hi), dtype=np.float64))
        _accumulate_grad(model, Xb, _weighted(psi(loss, r, delta), w, lo, hi), basis, acc)
    _finish(acc, n, theta, l2w, fit_icpt, grad)
    return f / n + _penalty(theta, l2w)


def objective(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    w: np.ndarray | None = None,
) -> float:
    """Objective over all rows."""
    n = X.shape[0]
    f = 0.0
    for lo in range(0, n, BLOCK):
        hi = min(lo + BLOCK, n)
        r = predict_rows(model, X[lo:hi], theta, basis) - y[lo:hi]
        f += float(np.sum(_weighted(rho(loss, r, delta), w, lo, hi), dtype=np.float64))
    return f / n + _penalty(theta, l2w)


def batch_grad(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    idx: np.ndarray,
    start: int,
    stop: int,
    grad: np.ndarray,
    w: np.ndarray | None = None,
) -> None:
    """Gradient over the rows ``idx[start:stop]`` (mean over them + penalty)."""
    _batch_grad_loss(
        model, loss, X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w
    )


def _batch_grad_loss(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    idx: np.ndarray,
    start: int,
    stop: int,
    grad: np.ndarray,
    w: np.ndarray | None = None,
) -> float:
    """``batch_grad``, and the float64 sum of the rows' (weighted) losses
    ``w_i rho(r_i)`` at this ``theta``, from the same residuals."""
    rows = idx[start:stop]
    Xb, yb = X[rows], y[rows]
    r = predict_rows(model, Xb, theta, basis) - yb
    s = psi(loss, r, delta)
    f = rho(loss, r, delta)
    if w is not None:
        s = s * w[rows]
        f = f * w[rows]
    acc = np.zeros(theta.shape[0], dtype=np.float64)
    _accumulate_grad(model, Xb, s, basis, acc)
    _finish(acc, stop - start, theta, l2w, fit_icpt, grad)
    return float(np.sum(f, dtype=np.float64))


def lsq_stats(
    model: int, X: np.ndarray, y: np.ndarray, basis: np.ndarray, p: int, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``G = A^T W A``, ``c = A^T W y`` and ``S = y^T W y`` in float64, one pass over the rows.

    ``A`` is the design in the kernel's coordinates, rows ``a_i = [features, 1]``
    (poly: ``[u**1, ..., u**p, 1]`` with ``u`` as in :func:`predict_rows`, its
    powers in float64); ``W = diag(w)`` (the identity when ``w`` is None), the
    weights converted to float64.  Sums, not means.  Non-finite data give
    non-finite statistics (``S`` and the intercept column see every ``x`` and ``y``).
    """
    m = p + 1
    G = np.zeros((m, m))
    c = np.zeros(m)
    S = 0.0
    rows = max(16, (BLOCK * 2) // (m + 2))  # the design block stays within ~256 KB
    for lo in range(0, X.shape[0], rows):
        Xb, yb = X[lo : lo + rows], y[lo : lo + rows].astype(np.float64)
        if model == 0:
            A = np.empty((Xb.shape[0], m))
            A[:, :p] = Xb
        else:
            u = _u(Xb, basis).astype(np.float64)
            A = np.empty((u.shape[0], m))
            A[:, 0] = u
            for j in range(1, p):
                A[:, j] = A[:, j - 1] * u
        A[:, p] = 1.0
        if w is None:
            G += A.T @ A
            c += A.T @ yb
            S += float(yb @ yb)
        else:
            wb = w[lo : lo + rows].astype(np.float64)
            G += A.T @ (A * wb[:, None])
            c += A.T @ (wb * yb)
            S += float(yb @ (wb * yb))
    return G, c, S


def moments(
    X: np.ndarray, y: np.ndarray, x0: np.ndarray, y0: float, full: bool, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Sums over the rows of the rows and of y shifted by an origin, in float64.

    With ``a_i = X[i] - x0`` and ``b_i = y[i] - y0`` (differences in float64;
    ``x0`` a float64 row, e.g. the first one, so that an offset far from 0
    does not cancel the second moments away) and ``w_i`` the weights (1 when
    ``w`` is None, else converted to float64)::

        s = sum w_i a_i                      (d,)
        G = sum w_i a_i a_i^T                (d, d) when ``full``, else its diagonal (d,)
        sxy = sum w_i a_i b_i                (d,)
        sy = sum w_i b_i,  syy = sum w_i b_i**2

    Returns ``(s, G, sxy, sy, syy)``.  One pass over the rows, in blocks.
    """
    n, d = X.shape
    x0 = np.asarray(x0, dtype=np.float64)
    s = np.zeros(d)
    G = np.zeros((d, d)) if full else np.zeros(d)
    sxy = np.zeros(d)
    sy = syy = 0.0
    # blocks of float64 temporaries of at most 2 MB and 1/64 of X (no hidden copy of X)
    budget = max(1 << 16, min(1 << 21, X.nbytes // 64))
    rows = max(16, budget // (8 * (2 * d + 3)))
    for lo in range(0, n, rows):
        A = X[lo : lo + rows].astype(np.float64)
        A -= x0
        b = y[lo : lo + rows].astype(np.float64)
        b -= y0
        if w is None:
            Aw, bw = A, b
        else:
            wb = w[lo : lo + rows].astype(np.float64)
            Aw, bw = A * wb[:, None], b * wb
        s += Aw.sum(axis=0)
        G += Aw.T @ A if full else np.einsum("ij,ij->j", Aw, A)
        sxy += Aw.T @ b
        sy += float(bw.sum())
        syy += float(bw @ b)
    return s, G, sxy, sy, syy


def max_row_norm2(
    model: int,
    X: np.ndarray,
    basis: np.ndarray,
    pre: np.ndarray,
    fit_icpt: bool,
    w: np.ndarray | None = None,
) -> float:
    """``max_i w_i |T^T a_i|**2`` over the design rows in the kernel's coordinates.

    ``a_i = [features, 1]`` (``[features, 0]`` when not ``fit_icpt``): the row
    of X (model 0) or ``u**1 .. u**p`` (model 1: ``u`` as in
    :func:`predict_rows`, its powers in float64; ``p = pre.shape[1] - 1``).
    ``T`` from ``pre`` (see :func:`step`): ``(0, m)`` the identity; ``(2, m)``
    centre and scale, ``T^T a = [pre[0, j] a_j - pre[1, j] a_p (j < p), a_p]``;
    ``(2m, m)`` dense, ``T = pre[:m]``.  The largest per-sample curvature
    (weights of mean 1), for the step size of stochastic batches.  NaN when
    a row gives NaN; 0 for no rows.
    """
    pre = np.asarray(pre, dtype=np.float64)
    m = pre.shape[1]
    p = m - 1
    best = 0.0
    budget = max(1 << 16, min(1 << 21, X.nbytes // 64))
    rows = max(16, budget // (8 * (3 * m + 2)))
    for lo in range(0, X.shape[0], rows):
        Xb = X[lo : lo + rows]
        A = np.empty((Xb.shape[0], m))
        if model == 0:
            A[:, :p] = Xb
        else:
            u = _u(Xb, basis).astype(np.float64)
            if p:
                A[:, 0] = u
            for j in range(1, p):
                A[:, j] = A[:, j - 1] * u
        A[:, p] = 1.0 if fit_icpt else 0.0
        if pre.shape[0] == 2:
            Z = A[:, :p] * pre[0, :p] - pre[1, :p] * A[:, p:]
            v = np.einsum("ij,ij->i", Z, Z) + A[:, p] ** 2
        else:
            Z = A @ pre[:m] if pre.shape[0] else A
            v = np.einsum("ij,ij->i", Z, Z)
        if w is not None:
            v = v * w[lo : lo + rows].astype(np.float64)
        if np.isnan(v).any():
            return math.nan
        if v.size:
            best = max(best, float(v.max()))
    return best


# ---------------------------------------------------------------- update rules
# hp = [momentum, beta1, beta2, eps, rho]; state rows: 0 = v / s / m, 1 = Adam's v.


def update(
    opt: int,
    theta: np.ndarray,
    grad: np.ndarray,
    state: np.ndarray,
    lr: float,
    hp: np.ndarray,
    t: int,
) -> None:
    """One step of update rule ``opt`` on ``theta`` in place (torch's conventions)."""
    g = grad
    if opt == 0:  # gd
        theta -= lr * g
    elif opt == 1:  # momentum (heavy ball, torch SGD with dampening 0)
        v = state[0]
        v *= hp[0]
        v += g
        theta -= lr * v
    elif opt == 2:  # nesterov (torch's form)
        v = state[0]
        v *= hp[0]
        v += g
        theta -= lr * (g + hp[0] * v)
    elif opt == 3:  # adagrad
        s = state[0]
        s += g * g
        theta -= lr * g / (np.sqrt(s) + hp[3])
    elif opt == 4:  # rmsprop
        s = state[0]
        s *= hp[4]
        s += (1.0 - hp[4]) * (g * g)
        theta -= lr * g / (np.sqrt(s) + hp[3])
    else:  # adam, with bias correction of both moments
        m, v = state[0], state[1]
        m *= hp[1]
        m += (1.0 - hp[1]) * g
        v *= hp[2]
        v += (1.0 - hp[2]) * (g * g)
        bc1 = 1.0 - hp[1] ** t
        bc2 = 1.0 - hp[2] ** t
        theta -= lr * (m / bc1) / (np.sqrt(v / bc2) + hp[3])


# ---------------------------------------------------------------- preconditioned step
# The optimizer runs on internal parameters z with theta = T z (theta: the
# kernel's parameters, in which predictions and gradients are formed).  A
# step maps the gradient g' = T^T g, lets the update rule move a zero vector
# by delta (state slots live in internal coordinates), then theta += T delta.
# Only T acts on theta: z itself is never stored.  ``pre`` (float64, 2-D):
#   (0, p+1)          no preconditioning: the update rule acts on theta.
#   (2, p+1)          centre-and-scale (linear model), rows a and b:
#                       theta_j = a_j z_j (j < p),  theta_p = z_p - sum_j b_j z_j
#   (2(p+1), p+1)     dense: rows 0..p are T, rows p+1..2p+1 are T^-1.
# Every sum below runs in float64 over its index ascending.


def pre_kind(pre: np.ndarray) -> int:
    """0 none, 1 centre-and-scale, 2 dense."""
    if pre.shape[0] == 0:
        return 0
    return 1 if pre.shape[0] == 2 else 2


def pre_grad(pre: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """T^T grad in float64."""
    m = grad.shape[0]
    p = m - 1
    g = grad.astype(np.float64)
    out = np.empty(m)
    if pre_kind(pre) == 1:
        for j in range(p):
            out[j] = pre[0, j] * g[j] - pre[1, j] * g[p]
        out[p] = g[p]
    else:
        for k in range(m):
            s = 0.0
            for j in range(m):
                s += pre[j, k] * g[j]
            out[k] = s
    return out


def pre_apply(pre: np.ndarray, theta: np.ndarray, delta: np.ndarray) -> None:
    """theta += T delta (float64 sums, stored in the data dtype)."""
    m = theta.shape[0]
    p = m - 1
    d = delta.astype(np.float64)
    if pre_kind(pre) == 1:
        s = 0.0
        for j in range(p):
            theta[j] = float(theta[j]) + pre[0, j] * d[j]
            s += pre[1, j] * d[j]
        theta[p] = float(theta[p]) + (d[p] - s)
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[j, k] * d[k]
            theta[j] = float(theta[j]) + s


def pre_internal(pre: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """z = T^-1 theta in float64 (``theta`` itself when there is no preconditioning)."""
    m = theta.shape[0]
    p = m - 1
    th = theta.astype(np.float64)
    kind = pre_kind(pre)
    if kind == 0:
        return th
    z = np.empty(m)
    if kind == 1:
        s = 0.0
        for j in range(p):
            z[j] = th[j] / pre[0, j]
            s += pre[1, j] * z[j]
        z[p] = th[p] + s
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[m + j, k] * th[k]
            z[j] = s
    return z


def step(
    opt: int,
    theta: np.ndarray,
    grad: np.ndarray,
    state: np.ndarray,
    lr: float,
    hp: np.ndarray,
    t: int,
    pre: np.ndarray,
) -> None:
    """One step of update rule ``opt``, preconditioned by ``pre``; ``grad`` is scratch."""
    if pre_kind(pre) == 0:
        update(opt, theta, grad, state, lr, hp, t)
        return
    grad[:] = pre_grad(pre, grad)  # stored in the data dtype, as the state is
    delta = np.zeros_like(theta)
    update(opt, delta, grad, state, lr, hp, t)
    pre_apply(pre, theta, delta)


# ---------------------------------------------------------------- schedule


def schedule(sched: int, lr0: float, sched_hp: np.ndarray, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``.

    ``sched_hp = [power_t, gamma]`` or ``[power_t, gamma, offset]``: the
    schedule counts epochs from ``offset`` (a fit continuing an earlier one
    passes the epochs already run), so epoch ``e`` takes ``lr0`` (constant),
    ``lr0 / (e + offset + 1)**power_t`` (invscaling) or
    ``lr0 * gamma**(e + offset)`` (exponential).
    """
    if sched == 0:
        return lr0
    e = epoch + (float(sched_hp[2]) if sched_hp.shape[0] > 2 else 0.0)
    if sched == 1:
        return lr0 / (e + 1.0) ** sched_hp[0]
    return lr0 * sched_hp[1] ** e


# ---------------------------------------------------------------- epoch loop


def _all_finite(theta: np.ndarray) -> bool:
    return bool(np.isfinite(theta).all())


def _converged(theta: np.ndarray, theta_prev: np.ndarray, tol: float, pre: np.ndarray) -> bool:
    """The stopping rule, in internal coordinates z = T^-1 theta:
    max|z - z_prev| <= tol * max(1, max|z|).  Without preconditioning the
    difference is taken in the data dtype."""
    if pre_kind(pre) == 0:
        step_ = float(np.max(np.abs(theta - theta_prev)))
        return step_ <= tol * max(1.0, float(np.max(np.abs(theta))))
    z = pre_internal(pre, theta)
    zp = pre_internal(pre, theta_prev)
    step_ = float(np.max(np.abs(z - zp)))
    scale = max(1.0, float(np.max(np.abs(z))))
    return step_ <= tol * scale


def stochastic_epoch(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    opt: int,
    hp: np.ndarray,
    state: np.ndarray,
    t: int,
    lr: float,
    idx: np.ndarray,
    batch_size: int,
    grad: np.ndarray,
    pre: np.ndarray,
    w: np.ndarray | None = None,
) -> tuple[int, float]:
    """One epoch of batches of ``batch_size`` rows in the order ``idx``.

    Returns the step count and the float64 sum of the rows' (weighted) losses,
    each at the parameters its batch stepped from (see ``run``'s progressive loss).
    """
    n = X.shape[0]
    lsum = 0.0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        lsum += _batch_grad_loss(
            model, loss, X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w
        )
        t += 1
        step(opt, theta, grad, state, lr, hp, t, pre)
    return t, lsum


def run(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    opt: int,
    hp: np.ndarray,
    state: np.ndarray,
    t0: int,
    sched: int,
    lr0: float,
    sched_hp: np.ndarray,
    epoch0: int,
    n_epochs: int,
    batch_size: int,
    order: np.ndarray,
    tol: float,
    need_obj: int,
    grad: np.ndarray,
    f0: float,
    hist_loss: np.ndarray,
    hist_params: np.ndarray,
    pre: np.ndarray | None = None,
    stats: tuple | None = None,
    w: np.ndarray | None = None,
    kernels: Any = None,
) -> tuple[int, int, int, float]:
    """Run epochs ``epoch0 .. epoch0+n_epochs-1``; returns ``(n_done, status, t, f)``.

    ``f0`` is NaN on the first call; a later chunk passes the ``f`` the
    previous one returned, and full batch then reuses ``grad`` (the gradient
    at ``theta`` it left behind) instead of a second pass over the rows.
    ``f`` is the objective at the returned ``theta`` -- except for stochastic
    batches without ``need_obj``, which compute no objective (and ignore
    ``f0``): their ``f`` is the last completed epoch's *progressive loss*,
    the mean over the rows of ``w_i rho(r_i)`` with each residual taken just
    before the step that uses it (the residuals the steps compute anyway;
    float64 sum in visiting order, divided by n; no penalty; NaN when no
    epoch completed).  It is not the objective at ``theta``, and it never
    decides divergence; the epoch visits every row once, so a finite value
    with finite parameters proves every value of ``X``, ``y`` (and ``w``)
    finite -- what lets the caller skip a pass that would prove it.

    The objective at the entry point is written to ``hist_loss[epoch0]`` and
    after each completed epoch ``e`` to ``hist_loss[e+1]`` (``hist_loss`` is
    non-empty only with ``need_obj``; full batch always has the objective,
    from the fused pass).  A non-finite objective or parameter ends the run
    with status 2 and ``theta`` restored to the start of the failing epoch.
    Stopping: ``max|z - z_prev| <= tol * max(1, max|z|)`` in the internal
    coordinates ``z = T^-1 theta`` of ``pre`` (None: no preconditioning, z = theta);
    every step goes through :func:`step`.  ``stats`` (``lsq_stats`` of these
    arrays, already computed) lets a compiled backend's least-squares shortcut
    skip its own pass; the reference, which has no shortcut, ignores it.
    ``w``: sample weights (see :func:`objective_grad`), in every pass.  The
    schedule's epoch is ``e + sched_hp[2]`` (see :func:`schedule`).
    ``kernels``: where the passes over the data run -- an object with this
    module's ``objective_grad``, ``objective`` and ``stochastic_epoch`` (None:
    this module's, on in-memory arrays; ``fastgd._dask`` passes its chunked
    ones, so that a dask array's fit walks this same loop).
    """
    k_ = sys.modules[__name__] if kernels is None else kernels
    if pre is None:
        pre = np.empty((0, theta.shape[0]))
    n = X.shape[0]
    full = batch_size == 0
    rec_loss = hist_loss.shape[0] > 0
    rec_params = hist_params.shape[0] > 0
    theta_prev = np.empty_like(theta)
    t = t0
    progressive = not full and not need_obj
    prog = math.nan

    if not math.isnan(f0) and not progressive:
        f = f0
    elif full:
        f = k_.objective_grad(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w)
    elif need_obj:
        f = k_.objective(model, loss, X, y, theta, basis, delta, l2w, w)
    else:
        f = 0.0
    if not math.isfinite(f):
        return 0, 2, t, f
    if rec_loss:
        hist_loss[epoch0] = f
    if rec_params:
        hist_params[epoch0] = theta

    n_done, status = 0, 0
    for k in range(n_epochs):
        e = epoch0 + k
        lr = schedule(sched, lr0, sched_hp, e)
        theta_prev[:] = theta
        if full:
            t += 1
            step(opt, theta, grad, state, lr, hp, t, pre)
            f = k_.objective_grad(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w)
        else:
            t, lsum = k_.stochastic_epoch(
                model,
                loss,
                X,
                y,
                theta,
                basis,
                delta,
                l2w,
                fit_icpt,
                opt,
                hp,
                state,
                t,
                lr,
                order[k],
                batch_size,
                grad,
                pre,
                w,
            )
            if need_obj:
                f = k_.objective(model, loss, X, y, theta, basis, delta, l2w, w)
        if not (_all_finite(theta) and math.isfinite(f)):
            theta[:] = theta_prev
            status = 2
            break
        n_done += 1
        if progressive:
            prog = lsum / n
        if rec_loss:
            hist_loss[e + 1] = f
        if rec_params:
            hist_params[e + 1] = theta
        if _converged(theta, theta_prev, tol, pre):
            status = 1
            break
    return n_done, status, t, (prog if progressive else f)


# ---------------------------------------------------------------- minimize loop


def minimize_run(
    fun: Callable,
    grad: Callable,
    x: np.ndarray,
    opt: int,
    hp: np.ndarray,
    state: np.ndarray,
    sched: int,
    lr0: float,
    sched_hp: np.ndarray,
    max_iter: int,
    tol: float,
    hist_f: np.ndarray,
    hist_x: np.ndarray,
) -> tuple[int, int, float]:
    """Minimize ``fun`` from ``x`` (in place); returns ``(n_done, status, f)``.

    One step per iteration; the same stopping and divergence rules as ``run``.
    ``fun`` and ``grad`` were checked on ``x`` by the caller.
    """
    x_prev = np.empty_like(x)
    f = float(fun(x))
    if not math.isfinite(f):
        return 0, 2, f
    if hist_f.shape[0] > 0:
        hist_f[0] = f
    if hist_x.shape[0] > 0:
        hist_x[0] = x
    n_done, status = 0, 0
    for k in range(max_iter):
        lr = schedule(sched, lr0, sched_hp, k)
        g = np.asarray(grad(x), dtype=x.dtype)
        x_prev[:] = x
        update(opt, x, g, state, lr, hp, k + 1)
        f_new = float(fun(x)) if _all_finite(x) else math.nan
        if not math.isfinite(f_new):
            x[:] = x_prev
            status = 2
            break
        f = f_new
        n_done += 1
        if hist_f.shape[0] > 0:
            hist_f[k + 1] = f
        if hist_x.shape[0] > 0:
            hist_x[k + 1] = x
        if _converged(x, x_prev, tol, _NO_PRE):
            status = 1
            break
    return n_done, status, f
