"""The pure-numpy reference backend: the executable specification.

Design
------
Written for clarity, not speed: every compiled backend (``_numba.py``,
``_kernels.pyx``) has the same sections in the same order, the same function
names and argument order, and is tested against this file.  See
``fastgd/backends/__init__.py`` for the shapes and dtypes of the arguments.

Sections: input scan -> scalar losses -> model prediction -> fused
objective/gradient over rows -> update rules -> schedule -> epoch loop ->
minimize loop.

Rows are processed in blocks of ``BLOCK`` so that no temporary of length n is
ever allocated (a 1e7-row fit stays within a few MB of X itself).  Sums over
rows accumulate in float64; parameters and gradients are stored in the data
dtype, so float32 stays float32 end to end.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

BLOCK = 1 << 14

# ---------------------------------------------------------------- input scan


def all_finite(a: np.ndarray) -> bool:
    """True when no element of the C-contiguous float array ``a`` is NaN or +-inf.

    The validation layer calls this before any kernel; on ``False`` it scans
    again to name the first bad position.
    """
    flat = a.reshape(-1)
    step = BLOCK * 4  # a 64 KB boolean temporary
    for lo in range(0, flat.shape[0], step):
        if not np.isfinite(flat[lo:lo + step]).all():
            return False
    return True


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
# model 1: poly    pred = b + sum_j coef[j-1] u**j, u = x * xscale, by Horner


def predict_rows(model: int, Xb: np.ndarray, theta: np.ndarray, xscale: float) -> np.ndarray:
    """Predictions for a block of rows."""
    p = theta.shape[0] - 1
    if model == 0:
        return Xb @ theta[:p] + theta[p]
    u = Xb[:, 0] * Xb.dtype.type(xscale)
    pred = np.zeros_like(u)
    for j in range(p - 1, -1, -1):  # Horner: ((c_k u + c_{k-1}) u + ... + c_1) u
        pred = (pred + theta[j]) * u
    return pred + theta[p]


def _accumulate_grad(model: int, Xb: np.ndarray, s: np.ndarray, xscale: float,
                     acc: np.ndarray) -> None:
    """acc[:p] += sum_i s_i dpred_i/dcoef, acc[p] += sum_i s_i (float64 acc)."""
    p = acc.shape[0] - 1
    if model == 0:
        acc[:p] += Xb.T @ s
    else:
        u = Xb[:, 0] * Xb.dtype.type(xscale)
        pw = u.copy()
        for j in range(p):  # running power u**(j+1)
            acc[j] += np.einsum("i,i->", pw, s)
            pw *= u
    acc[p] += np.sum(s, dtype=np.float64)


def _finish(acc: np.ndarray, m: int, theta: np.ndarray, l2w: np.ndarray, fit_icpt: int,
            grad: np.ndarray) -> None:
    """grad = acc / m + l2w * theta, intercept slot zero when not fitted."""
    grad[:] = acc / m + l2w * theta
    if not fit_icpt:
        grad[-1] = 0


def _penalty(theta: np.ndarray, l2w: np.ndarray) -> float:
    return 0.5 * float(np.dot(l2w.astype(np.float64), theta.astype(np.float64) ** 2))


def objective_grad(model: int, loss: int, X: np.ndarray, y: np.ndarray, theta: np.ndarray,
                   xscale: float, delta: float, l2w: np.ndarray, fit_icpt: int,
                   grad: np.ndarray) -> float:
    """Objective and gradient over all rows, one sweep over the row blocks."""
    n = X.shape[0]
    f = 0.0
    acc = np.zeros(theta.shape[0], dtype=np.float64)
    for lo in range(0, n, BLOCK):
        Xb, yb = X[lo:lo + BLOCK], y[lo:lo + BLOCK]
        r = predict_rows(model, Xb, theta, xscale) - yb
        f += float(np.sum(rho(loss, r, delta), dtype=np.float64))
        _accumulate_grad(model, Xb, psi(loss, r, delta), xscale, acc)
    _finish(acc, n, theta, l2w, fit_icpt, grad)
    return f / n + _penalty(theta, l2w)


def objective(model: int, loss: int, X: np.ndarray, y: np.ndarray, theta: np.ndarray,
              xscale: float, delta: float, l2w: np.ndarray) -> float:
    """Objective over all rows."""
    n = X.shape[0]
    f = 0.0
    for lo in range(0, n, BLOCK):
        r = predict_rows(model, X[lo:lo + BLOCK], theta, xscale) - y[lo:lo + BLOCK]
        f += float(np.sum(rho(loss, r, delta), dtype=np.float64))
    return f / n + _penalty(theta, l2w)


def batch_grad(model: int, loss: int, X: np.ndarray, y: np.ndarray, theta: np.ndarray,
               xscale: float, delta: float, l2w: np.ndarray, fit_icpt: int,
               idx: np.ndarray, start: int, stop: int, grad: np.ndarray) -> None:
    """Gradient over the rows ``idx[start:stop]`` (mean over them + penalty)."""
    rows = idx[start:stop]
    Xb, yb = X[rows], y[rows]
    r = predict_rows(model, Xb, theta, xscale) - yb
    acc = np.zeros(theta.shape[0], dtype=np.float64)
    _accumulate_grad(model, Xb, psi(loss, r, delta), xscale, acc)
    _finish(acc, stop - start, theta, l2w, fit_icpt, grad)


# ---------------------------------------------------------------- update rules
# hp = [momentum, beta1, beta2, eps, rho]; state rows: 0 = v / s / m, 1 = Adam's v.


def update(opt: int, theta: np.ndarray, grad: np.ndarray, state: np.ndarray, lr: float,
           hp: np.ndarray, t: int) -> None:
    """One step of update rule ``opt`` on ``theta`` in place (torch's conventions)."""
    g = grad
    if opt == 0:    # gd
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
    else:           # adam, with bias correction of both moments
        m, v = state[0], state[1]
        m *= hp[1]
        m += (1.0 - hp[1]) * g
        v *= hp[2]
        v += (1.0 - hp[2]) * (g * g)
        bc1 = 1.0 - hp[1] ** t
        bc2 = 1.0 - hp[2] ** t
        theta -= lr * (m / bc1) / (np.sqrt(v / bc2) + hp[3])


# ---------------------------------------------------------------- schedule


def schedule(sched: int, lr0: float, sched_hp: np.ndarray, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``."""
    if sched == 0:
        return lr0
    if sched == 1:
        return lr0 / (epoch + 1.0) ** sched_hp[0]
    return lr0 * sched_hp[1] ** epoch


# ---------------------------------------------------------------- epoch loop


def _all_finite(theta: np.ndarray) -> bool:
    return bool(np.isfinite(theta).all())


def _converged(theta: np.ndarray, theta_prev: np.ndarray, tol: float) -> bool:
    """The stopping rule: max|dtheta| <= tol * max(1, max|theta|)."""
    step = float(np.max(np.abs(theta - theta_prev)))
    scale = max(1.0, float(np.max(np.abs(theta))))
    return step <= tol * scale


def run(model: int, loss: int, X: np.ndarray, y: np.ndarray, theta: np.ndarray,
        xscale: float, delta: float, l2w: np.ndarray, fit_icpt: int,
        opt: int, hp: np.ndarray, state: np.ndarray, t0: int,
        sched: int, lr0: float, sched_hp: np.ndarray, epoch0: int, n_epochs: int,
        batch_size: int, order: np.ndarray, tol: float, need_obj: int,
        grad: np.ndarray, f0: float,
        hist_loss: np.ndarray, hist_params: np.ndarray) -> tuple[int, int, int, float]:
    """Run epochs ``epoch0 .. epoch0+n_epochs-1``; returns ``(n_done, status, t, f)``.

    ``f0`` is NaN on the first call; a later chunk passes the ``f`` the
    previous one returned, and full batch then reuses ``grad`` (the gradient
    at ``theta`` it left behind) instead of a second pass over the rows.
    ``f`` is the objective at the returned ``theta`` (0 for stochastic
    batches without ``need_obj``).

    The objective at the entry point is written to ``hist_loss[epoch0]`` and
    after each completed epoch ``e`` to ``hist_loss[e+1]`` (``hist_loss`` is
    non-empty only with ``need_obj``; full batch always has the objective,
    from the fused pass).  A non-finite objective or parameter ends the run
    with status 2 and ``theta`` restored to the start of the failing epoch.
    Stopping: ``max|theta - theta_prev| <= tol * max(1, max|theta|)``.
    """
    n = X.shape[0]
    full = batch_size == 0
    rec_loss = hist_loss.shape[0] > 0
    rec_params = hist_params.shape[0] > 0
    theta_prev = np.empty_like(theta)
    t = t0

    if not math.isnan(f0):
        f = f0
    elif full:
        f = objective_grad(model, loss, X, y, theta, xscale, delta, l2w, fit_icpt, grad)
    elif need_obj:
        f = objective(model, loss, X, y, theta, xscale, delta, l2w)
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
            update(opt, theta, grad, state, lr, hp, t)
            f = objective_grad(model, loss, X, y, theta, xscale, delta, l2w, fit_icpt, grad)
        else:
            idx = order[k]
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                batch_grad(model, loss, X, y, theta, xscale, delta, l2w, fit_icpt,
                           idx, start, stop, grad)
                t += 1
                update(opt, theta, grad, state, lr, hp, t)
            if need_obj:
                f = objective(model, loss, X, y, theta, xscale, delta, l2w)
        if not (_all_finite(theta) and math.isfinite(f)):
            theta[:] = theta_prev
            status = 2
            break
        n_done += 1
        if rec_loss:
            hist_loss[e + 1] = f
        if rec_params:
            hist_params[e + 1] = theta
        if _converged(theta, theta_prev, tol):
            status = 1
            break
    return n_done, status, t, f


# ---------------------------------------------------------------- minimize loop


def minimize_run(fun: Callable, grad: Callable, x: np.ndarray, opt: int, hp: np.ndarray,
                 state: np.ndarray, sched: int, lr0: float, sched_hp: np.ndarray,
                 max_iter: int, tol: float, hist_f: np.ndarray,
                 hist_x: np.ndarray) -> tuple[int, int, float]:
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
        if _converged(x, x_prev, tol):
            status = 1
            break
    return n_done, status, f
