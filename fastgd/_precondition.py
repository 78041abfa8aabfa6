"""The coordinates a fit runs in, and the safe automatic step size.

A fit has three sets of parameters:

* the **user's**: ``coef`` (features, or ascending powers ``x**1 .. x**k``) and
  ``intercept``, in which results, ``history.params`` and callbacks are given;
* the **kernel's** ``theta``: what predictions and gradients are formed from.
  Linear model: the user's own.  Polynomial model: the coefficients of the
  powers of ``u = (x - shift) * scale`` (``basis = [shift, scale]``);
* the **internal** ``z`` with ``theta = T z``: what the update rule moves
  (``pre``, see ``fastgd.backends._numpy.step``).

``precondition="none"`` is textbook gradient descent: ``T = I``; for the
polynomial model ``shift = 0`` and ``scale = 1/max|x|`` (x rescaled into
[-1, 1], powers of the rescaled x).  ``precondition="auto"`` makes the
Hessian of the objective in ``z`` close to a multiple of the identity:

* linear model: each column centred and scaled (``z_j = s_j coef_j``,
  ``z_p = intercept + sum_j m_j coef_j``), with ``m_j`` the column mean and
  ``s_j = sqrt(var_j + l2/c)`` (the Jacobi scaling of the Hessian; ``c`` the
  loss curvature).  Folded into every step in O(d): X is never copied.
  Without an intercept, columns are scaled by their root mean square only.
* polynomial model: x mapped onto [-1, 1] (centre *and* scale), then the
  orthonormal polynomials of the data: the scaled Legendre polynomials,
  orthonormalised against the data's own Gram matrix (from one compiled pass
  of moments), so ``T^T H T = c I`` up to rounding.

The statistics come from one pass over the data; the step size follows from
them (``auto_lr``).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _registry as reg
from ._problem import Problem
from .backends import _numpy

_BLAS: list = []


@contextlib.contextmanager
def small_algebra() -> Iterator[None]:
    """Dense algebra on (p + 1)-sized matrices, on one BLAS thread.

    After a compiled backend's OpenMP pass, a threaded BLAS call on a 101 x 101
    matrix took ~160 ms instead of ~1 ms on a 2-core machine (its pool's threads
    and the OpenMP team fight over the cores); one thread is as fast as any
    for matrices this small.  Data passes never run inside this.
    """
    # The controller lists the BLAS libraries loaded when it was made (~2.5 ms to
    # make): made again only when modules were imported since (e.g. scipy's own BLAS).
    if not _BLAS or _BLAS[0][0] != len(sys.modules):
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS[:] = [(len(sys.modules), ThreadpoolController())]
        except Exception:  # noqa: BLE001 - threadpoolctl missing or failing: run as is
            _BLAS[:] = [(len(sys.modules), None)]
    ctl = _BLAS[0][1]
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield


PRECONDITIONS = ("auto", "none")
#: Caps on the distance scale of the adaptive rules' ``lr="auto"``, in units of
#: the least-squares residual RMS ``sigma`` (see :func:`auto_lr`).  Measured on
#: tests/test_conditioning.py's designs (up to degree 10 on [0, 20], where the
#: distance to travel is ~800 sigma): adagrad's effective step at the optimum is
#: lr / sqrt(number of steps it took to get there), too large for Huber (whose
#: clipped gradients accumulate slowly) above ~30 sigma; rmsprop, with no
#: first-moment average, keeps moving by ~lr per step at the optimum, and at
#: 3000 full-batch epochs needs 0.2-0.9 sigma there (travel below, oscillation above).
_ADAGRAD_CAP = 200.0
_RMSPROP_CAP = 50.0


@dataclass
class Coordinates:
    """Everything that maps between the user's, the kernel's and the internal parameters."""

    precondition: str
    #: ``[shift, scale]`` of the polynomial input (``[0, 1]`` for the linear model).
    basis: np.ndarray
    #: The kernels' preconditioner record (``fastgd.backends`` interface).
    pre: np.ndarray
    #: Penalty in the kernel's coordinates, data dtype (diagonal or dense).
    l2w: np.ndarray
    #: user = M @ theta (both ordered ``[coef..., intercept]``), float64.
    M: np.ndarray
    #: T (internal -> kernel) as a dense float64 matrix, for the step size.
    T: np.ndarray
    #: Hessian of the objective in the internal coordinates divided by the loss
    #: curvature ``c``: ``T^T (A^T A / n + Q / c) T`` (intercept row and column
    #: only when it is fitted), when the statistics pass computed it.
    Hz: np.ndarray | None
    #: mean and standard deviation of y (from the same statistics pass; NaN
    #: when it did not see y).
    y_mean: float
    y_std: float
    #: mean of each feature over the rows (kernel coordinates), float64.
    feature_mean: np.ndarray
    #: The penalised least-squares solution in internal coordinates and the
    #: root mean square of its residuals (from the same statistics; None/NaN
    #: when not gathered): the scale of the adaptive rules' ``lr="auto"``.
    z_ls: np.ndarray | None = None
    sigma_ls: float = math.nan
    #: The statistics pass saw only finite sums (so the data are finite).
    stats_finite: bool = False
    #: ``lsq_stats`` in the kernel's coordinates, handed to ``run`` so that its
    #: least-squares shortcut does not pass over the data again: the polynomial
    #: model's, and the linear model's when the statistics pass gathered the
    #: whole covariance matrix (the Gram matrix is then already paid for).
    stats: tuple | None = None

    def finite(self, dt: type) -> bool:
        """Every array finite (the basis also in the data dtype, where u is formed)."""
        arrays = [self.basis, self.pre, self.M, self.T, self.l2w, self.feature_mean]
        if self.Hz is not None:
            arrays.append(self.Hz)
        return (
            all(bool(np.isfinite(a).all()) for a in arrays)
            and bool(np.isfinite(self.basis.astype(dt)).all())
            and (self.pre.shape[0] != 2 or bool((self.pre[0] != 0).all()))
        )

    def to_internal(self, theta: np.ndarray) -> np.ndarray:
        """z = T^-1 theta in float64."""
        th = np.asarray(theta, dtype=np.float64)
        if self.pre.shape[0] == 0:
            return th
        if self.pre.shape[0] == 2:
            p = th.shape[0] - 1
            z = th.copy()
            z[:p] = th[:p] / self.pre[0, :p]
            z[p] = th[p] + float(self.pre[1, :p] @ z[:p])
            return z
        m = th.shape[0]
        return self.pre[m:] @ th

    def to_user(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """``(coef, intercept)`` in the user's basis, in float64."""
        v = self.M @ np.asarray(theta, dtype=np.float64)
        return v[:-1], float(v[-1])

    def to_user_rows(self, thetas: np.ndarray) -> np.ndarray:
        """Rows of kernel parameters (history) as rows of user parameters, float64."""
        return np.asarray(thetas, dtype=np.float64) @ self.M.T

    def from_user(self, coef: np.ndarray, intercept: float) -> np.ndarray:
        """Kernel parameters of the user's ``(coef, intercept)``, in float64."""
        v = np.r_[np.asarray(coef, dtype=np.float64), intercept]
        if not v.any():
            return v
        d = np.diag(self.M)
        if np.array_equal(self.M, np.diag(d)):  # linear, or a polynomial without shift
            with np.errstate(divide="ignore", invalid="ignore"):
                return v / d  # a vanishing power scale gives inf: the fit reports divergence
        try:
            return np.linalg.solve(self.M, v)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(self.M, v, rcond=None)[0]


# ---------------------------------------------------------------- statistics


def _linear_stats(
    be: Any, X: np.ndarray, y: np.ndarray, fit_icpt: bool, full: bool, w: np.ndarray | None = None
) -> tuple[Any, ...]:
    """Moments of the columns of X and of y in float64: one pass, the backend's
    ``moments`` kernel.

    Rows are taken relative to the first row (so an offset far from 0 does not
    cancel the variance away).  Returns ``(mean, cov, y_mean, cov_xy, var_y)``:
    ``cov`` is the full covariance matrix when ``full`` (the step size of full
    batches and the adaptive rules need it) or its diagonal.  Without an
    intercept the moments are uncentred (``mean`` and ``y_mean`` are 0).
    ``w``: sample weights of mean 1 (the problem's): weighted moments, each
    sum divided by ``n`` as the kernels' objective is.  A sixth value: with
    ``full``, the same sums as the kernels' ``lsq_stats`` of the linear model
    (``(G, c, S)`` over the design rows ``[x, 1]``), which ``run``'s
    least-squares shortcut takes instead of a pass of its own; else None.
    """
    n, d = X.shape
    x0 = np.array(X[0], dtype=np.float64) if fit_icpt else np.zeros(d)  # (a dask row: computed)
    y0 = float(y[0]) if fit_icpt else 0.0
    s, G, sxy, sy, syy = _moments_fn(be)(X, y, x0, y0, full, w)
    lsq = None
    if full and not getattr(be, "CHUNKED", False):  # (a dask fit's run takes no statistics)
        lsq = _raw_sums(x0, y0, s, G, sxy, sy, syy, n if w is None else _total(w))
    ms, my = s / n, sy / n
    if fit_icpt:
        cov = G / n - (np.outer(ms, ms) if full else ms * ms)
        return x0 + ms, cov, y0 + my, sxy / n - ms * my, syy / n - my * my, lsq
    return np.zeros(d), G / n, 0.0, sxy / n, syy / n, lsq


def _total(w: np.ndarray) -> float:
    """``sum(w)`` in float64."""
    return float(np.sum(w, dtype=np.float64))


def _raw_sums(
    x0: np.ndarray,
    y0: float,
    s: np.ndarray,
    G: np.ndarray,
    sxy: np.ndarray,
    sy: float,
    syy: float,
    W: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """``lsq_stats`` of the linear model -- ``G = sum w a a^T``, ``c = sum w y a``,
    ``S = sum w y**2`` over ``a = [x, 1]`` -- from sums taken relative to
    ``(x0, y0)`` (``s = sum w u``, ``G = sum w u u^T``, ``sxy = sum w u v``,
    ``sy = sum w v``, ``syy = sum w v**2`` with ``u = x - x0``, ``v = y - y0``)
    and ``W = sum w``."""
    d = s.shape[0]
    A = np.empty((d + 1, d + 1))
    sx = s + W * x0  # sum w x
    A[:d, :d] = G + np.outer(x0, s) + np.outer(s, x0) + W * np.outer(x0, x0)
    A[:d, d] = A[d, :d] = sx
    A[d, d] = W
    c = np.empty(d + 1)
    c[:d] = sxy + y0 * s + x0 * sy + W * y0 * x0
    c[d] = sy + W * y0
    return A, c, float(syy + 2.0 * y0 * sy + W * y0 * y0)


def _moments_fn(be):
    """The backend's ``moments`` kernel (the numpy reference for a module without one)."""
    fn = getattr(be, "moments", None)
    return fn if fn is not None else _numpy.moments


def _poly_range(x: np.ndarray, be: Any = None) -> tuple[float, float]:
    """``(min(x), max(x))`` (NaN when x holds one): the backend's one-pass kernel."""
    fn = getattr(be, "value_range", None)
    if getattr(be, "CHUNKED", False):  # a dask array: one map over its chunks
        return be.value_range(x)
    if fn is not None and x.flags.c_contiguous:
        lo, hi = fn(x)
        return float(lo), float(hi)
    return float(np.min(x)), float(np.max(x))


def poly_scale_none(x: np.ndarray, degree: int, dt: type, be: Any = None) -> float:
    """``precondition="none"``: the multiplier mapping x into [-1, 1] (no shift)."""
    lo, hi = _poly_range(x, be)
    m = max(hi, -lo)
    s = 1.0 / m if m > 0 else 1.0
    # tiny |x|: keep scale**(2*degree) (user conversion, penalty) finite
    return min(s, float(np.finfo(dt).max * 1e-6) ** (1.0 / (2 * degree)))


def _legendre_to_power(p: int) -> np.ndarray:
    """C with columns the scaled Legendre polynomials sqrt(2k+1) P_k (k = 0..p) as
    power coefficients, in the kernel's order ``[u**1, ..., u**p, 1]``."""
    C = np.zeros((p + 1, p + 1))
    for k in range(p + 1):
        e = np.zeros(k + 1)
        e[k] = 1.0
        pc = np.polynomial.legendre.leg2poly(e) * math.sqrt(2 * k + 1)  # ascending powers
        col = np.zeros(p + 1)
        col[p] = pc[0]
        col[:k] = pc[1 : k + 1]
        C[:, k] = col
    return C


def _whiten(H: np.ndarray, B: np.ndarray | None = None, floor: float = 1e-8) -> np.ndarray:
    """T with T^T H T = I on the well-determined directions (B: a starting basis).

    ``H`` symmetric PSD.  Eigenvalues are taken as at least ``floor`` times the
    largest, so T amplifies the rounding of each step by at most
    ``floor**-0.5`` (1e4 for float64 data, ~300 for float32): a singular or
    nearly singular design (fewer distinct x than coefficients) is not blown up.
    """
    if B is not None:
        H = B.T @ H @ B
    w, V = np.linalg.eigh(0.5 * (H + H.T))
    top = float(w[-1]) if w.size and w[-1] > 0 else 1.0
    scale = 1.0 / np.sqrt(np.maximum(w, floor * top))
    T = V * scale
    return T if B is None else B @ T


def _power_shift_matrix(p: int, shift: float, scale: float) -> np.ndarray:
    """M: user coefficients of x**k from the coefficients of u**j, u = (x - shift)*scale.

    Both vectors in the order ``[1..p powers, constant]``.
    """
    M = np.zeros((p + 1, p + 1))
    # u**j = scale**j * sum_k C(j, k) x**k (-shift)**(j-k)
    sc, sh = np.float64(scale), np.float64(-shift)  # overflow gives inf, not an exception
    for j in range(1, p + 1):
        sj = sc**j
        for k in range(j + 1):
            v = sj * math.comb(j, k) * sh ** (j - k)
            M[(k - 1) if k > 0 else p, j - 1] += v
    M[p, p] = 1.0
    return M


# ---------------------------------------------------------------- the coordinates


def choose_coordinates(prob: Problem, precondition: str, full_stats: bool) -> Coordinates:
    """The basis, preconditioner and penalty of a fit (see :func:`_choose`).

    ``"auto"`` falls back to ``"none"`` (and says so in
    ``Coordinates.precondition``, hence ``FitResult.precondition``) when the
    data's statistics are not finite in float64 or the data type -- values
    near the ends of the floating-point range -- so that no fit fails for
    want of a preconditioner.
    """
    if precondition == "auto":
        xrange = None
        if prob.model == 1:  # the range of x maps it onto [-1, 1]: NaN/inf must not reach it
            xrange = _poly_range(prob.X[:, 0], prob.be)
            if not (math.isfinite(xrange[0]) and math.isfinite(xrange[1])) and prob.unscanned:
                prob.scan()
        try:
            with np.errstate(all="ignore"):
                coords = _choose(prob, "auto", full_stats, xrange)
        except (np.linalg.LinAlgError, OverflowError, ZeroDivisionError, ValueError):
            coords = None
        if coords is not None and coords.stats_finite and coords.finite(prob.dt):
            prob.unscanned = False  # finite sums of the squares of every value: finite data
            return coords
        if prob.unscanned:
            prob.scan()  # the statistics did not prove the data finite: raises if they are not
    with np.errstate(all="ignore"):
        return _choose(prob, "none", full_stats)


def _choose(
    prob: Problem, precondition: str, full_stats: bool, xrange: tuple[float, float] | None = None
) -> Coordinates:
    """The basis, preconditioner and penalty of a fit: one statistics pass over the data.

    ``full_stats``: the step size will need the Hessian or the least-squares
    solution (``lr="auto"`` for full or mini-batches, or an adaptive rule), so
    the linear statistics pass gathers the whole covariance matrix rather than
    its diagonal.  ``precondition="none"`` needs no pass
    for the linear model (the step size may still ask for one, in
    :func:`auto_lr`).
    """
    p, dt = prob.p, prob.dt
    c = prob.loss.curvature
    l2 = prob.l2
    m = p + 1
    eye = np.eye(m)
    if prob.model == 0:
        basis = np.array([0.0, 1.0])
        l2w = np.r_[np.full(p, l2), 0.0].astype(dt)
        if precondition == "none":
            return Coordinates(
                "none",
                basis,
                np.empty((0, m)),
                l2w,
                eye,
                eye,
                None,
                math.nan,
                math.nan,
                np.zeros(p),
            )
        full = full_stats
        mean, cov, y_mean, cov_xy, var_y, lsq = _linear_stats(
            prob.be, prob.X, prob.y, prob.fit_icpt, full, prob.w
        )
        with small_algebra():
            var = np.diag(cov) if full else cov
            s2 = np.maximum(var, 0.0) + l2 / c
            a = np.where(s2 > 0, 1.0 / np.sqrt(np.where(s2 > 0, s2, 1.0)), 1.0)
            pre = np.zeros((2, m))
            pre[0, :p] = a
            pre[0, p] = 1.0
            pre[1, :p] = a * mean  # z_p = theta_p + sum_j mean_j theta_j
            T = np.eye(m)
            T[np.arange(p), np.arange(p)] = a
            T[p, :p] = -pre[1, :p]
            Hz, z_ls, sigma = None, None, math.nan
            if full:  # centred (or, without intercept, raw) moments, scaled: no cancellation
                Hz = np.zeros((m, m))
                Hz[:p, :p] = (cov + (l2 / c) * np.eye(p)) * np.outer(a, a)
                Hz[p, p] = 1.0
                rhs = a * cov_xy
                z_ls = np.zeros(m)
                z_ls[:p] = np.linalg.lstsq(Hz[:p, :p], rhs, rcond=None)[0]
                z_ls[p] = y_mean
                zc = z_ls[:p]
                sigma = math.sqrt(
                    max(
                        var_y - 2.0 * float(zc @ rhs) + float(zc @ ((cov * np.outer(a, a)) @ zc)),
                        0.0,
                    )
                )
                if not prob.fit_icpt:
                    Hz = Hz[:p, :p]
            finite = bool(
                np.isfinite(mean).all()
                and np.isfinite(cov).all()
                and np.isfinite(cov_xy).all()
                and math.isfinite(y_mean)
                and math.isfinite(var_y)
            )
            return Coordinates(
                "auto",
                basis,
                pre,
                l2w,
                eye,
                T,
                Hz,
                y_mean,
                math.sqrt(max(var_y, 0.0)),
                mean,
                z_ls,
                sigma,
                finite,
                lsq,
            )

    # polynomial model
    x = prob.X[:, 0]
    if precondition == "none":
        s = poly_scale_none(x, p, dt, prob.be)
        basis = np.array([0.0, s])
        factors = s ** np.arange(1.0, p + 1)
        M = np.diag(np.r_[factors, 1.0])
        l2w = np.r_[l2 * factors**2, 0.0].astype(dt)
        return Coordinates(
            "none", basis, np.empty((0, m)), l2w, M, eye, None, math.nan, math.nan, np.zeros(p)
        )
    lo, hi = xrange if xrange is not None else _poly_range(x, prob.be)
    if prob.fit_icpt:
        shift = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo)
    else:  # a shift would add a constant term to the model: scale only
        shift, half = 0.0, max(hi, -lo)
    scale = 1.0 / half if half > 0 and math.isfinite(1.0 / half) else 1.0
    basis = np.array([shift, scale])
    M = _power_shift_matrix(p, shift, scale)
    # penalty on the user's coefficients: 0.5 l2 |M_c theta|^2 (intercept row excluded)
    Mc = M[:p]
    Q = l2 * (Mc.T @ Mc)
    l2w = (Q.reshape(-1) if l2 > 0 else np.zeros(m)).astype(dt)
    G, cy, S = prob.be.lsq_stats(1, prob.X, prob.y, basis, p, w=prob.w)
    n = prob.n
    finite = bool(np.isfinite(G).all() and np.isfinite(cy).all() and math.isfinite(S))
    if not finite:
        raise OverflowError("non-finite statistics")
    with small_algebra():
        H = G / n + Q / c
        floor = 1e-5 if prob.dt is np.float32 else 1e-8
        if prob.fit_icpt:
            T = _whiten(H, _legendre_to_power(p), floor)
        else:
            T = np.eye(m)
            T[:p, :p] = _whiten(H[:p, :p], floor=floor)
        pre = np.vstack([T, np.linalg.inv(T)])
        Hz = T.T @ H @ T
        if not prob.fit_icpt:
            Hz = Hz[:p, :p]
        y_mean = float(cy[p] / n)
        y_std = math.sqrt(max(S / n - y_mean * y_mean, 0.0))
        # the penalised least-squares solution, solved in the orthonormal basis
        rhs = cy / n
        if not prob.fit_icpt:
            rhs = rhs.copy()
            rhs[p] = 0.0
        Tt_rhs = T.T @ rhs
        # Minimum norm over the directions the data see: a floored direction has an
        # eigenvalue below 1 in Hz, one the data do not see (fewer distinct x than
        # coefficients) only rounding -- which lstsq's default cutoff would divide by.
        z_ls = np.linalg.lstsq(Hz if prob.fit_icpt else T.T @ H @ T, Tt_rhs, rcond=1e-6)[0]
        if not prob.fit_icpt:
            z_ls[p] = 0.0
        kap = T @ z_ls
        sigma = math.sqrt(max(S / n - 2.0 * float(kap @ rhs) + float(kap @ (G / n) @ kap), 0.0))
        return Coordinates(
            "auto",
            basis,
            pre,
            l2w,
            M,
            T,
            Hz,
            y_mean,
            y_std,
            G[p, :p] / n,
            z_ls,
            sigma,
            finite,
            (G, cy, S),
        )


# ---------------------------------------------------------------- the step size


@small_algebra()
def _lambda_max(A: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric PSD matrix (inf/NaN propagate)."""
    if A.shape[0] == 0:
        return 0.0
    if not np.isfinite(A).all():
        return math.inf if not np.isnan(A).any() else math.nan
    return float(np.linalg.eigvalsh(0.5 * (A + A.T))[-1])


def _hessian_none(prob: Problem, coords: Coordinates) -> np.ndarray:
    """A^T A / n + Q / c in the kernel's coordinates (``precondition="none"``).

    The pass that gathers it also gives every sum of the kernels' ``lsq_stats``;
    they are kept in ``coords.stats`` (in memory) for ``run``'s least-squares
    shortcut, which then takes no pass of its own.
    """
    p = prob.p
    if prob.model == 1:
        Gs, cs, S = prob.be.lsq_stats(1, prob.X, prob.y, coords.basis, p, w=prob.w)
        stats = (Gs, cs, S)
    else:  # G and the column sums from one pass (origin 0: the raw moments)
        s, G2, sxy, sy, syy = _moments_fn(prob.be)(prob.X, prob.y, np.zeros(p), 0.0, True, prob.w)
        W = prob.n if prob.w is None else _total(prob.w)
        stats = _raw_sums(np.zeros(p), 0.0, s, G2, sxy, sy, syy, W)
    if not getattr(prob.be, "CHUNKED", False):
        coords.stats = stats
    G = stats[0] / prob.n
    G[np.arange(p), np.arange(p)] += coords.l2w[:p].astype(np.float64) / prob.loss.curvature
    return G


def _max_row_norm2(prob: Problem, coords: Coordinates) -> float:
    """max_i w_i |T^T a_i|^2 over the design rows a_i = [features, 1] (kernel
    coordinates): one pass, the backend's ``max_row_norm2`` kernel."""
    fn = getattr(prob.be, "max_row_norm2", None)
    if fn is None:
        fn = _numpy.max_row_norm2
    return float(fn(prob.model, prob.X, coords.basis, coords.pre, bool(prob.fit_icpt), prob.w))


def auto_lr(
    prob: Problem,
    coords: Coordinates,
    opt: reg.OptimizerSpec,
    batch: int | None,
    hp: dict[str, float],
    theta0: np.ndarray,
) -> float:
    """The step size of ``lr="auto"``.

    With ``L`` the Lipschitz constant of the gradient in the internal
    coordinates (``c * lambda_max(T^T H T)``, ``c`` the loss curvature: 2 for
    MSE, 1 for Huber) and ``L_max`` the largest per-sample one
    (``c * max_i |T^T a_i|^2`` plus the penalty's):

    * full batch, gd / momentum / nesterov: ``1/L``.  Gradient descent with a
      step below ``2/L`` decreases an L-smooth convex objective every step;
      heavy ball (``v = mu v + g``) is stable on a quadratic for
      ``lr * L < 2 (1 + mu)`` and Nesterov for ``lr * L < 2 (1 + mu)/(1 + 2 mu)``,
      both above 1 for every ``mu`` in [0, 1).
    * batches of ``B < n`` rows: ``1/(2 L_B)`` with ``L_B`` the expected
      smoothness of sampling ``B`` rows without replacement,
      ``L_B = (n - B)/(B (n - 1)) L_max + n (B - 1)/(B (n - 1)) L`` (``L_max`` at
      ``B = 1``, ``L`` at ``B = n``); SGD with a step up to ``1/(2 L_B)``
      converges in expectation (Gower et al., 2019).  Momentum multiplies the
      effective step of noisy gradients by ``1/(1 - mu)``, so momentum and
      Nesterov take ``(1 - mu)`` times that step.
    * adagrad / rmsprop / adam move each coordinate by about ``lr`` per step
      whatever the gradient's scale, so their step is a distance in parameter
      space.  With ``precondition="none"`` it is the registry's default (0.1,
      0.01, 0.01).  With ``"auto"`` that default multiplies a distance taken
      from the statistics pass: ``D = max_j |z_ls - z_0|``, how far the
      (penalised) least-squares solution is from the start, for full batches
      and adagrad (whose steps shrink by themselves); for rmsprop and adam
      on batches of ``B`` rows, ``min(D, 2 sigma sqrt(B))`` with ``sigma`` the
      root mean square of the least-squares residuals -- their steps keep a
      size ``~lr`` at the optimum, so noisy gradients leave them there with an
      excess objective that grows with ``lr / (sigma sqrt(B))``.
    """
    if opt.auto_lr is not None:
        if coords.precondition != "auto" or coords.z_ls is None:
            return opt.auto_lr
        z0 = coords.to_internal(theta0)
        D = float(np.max(np.abs(coords.z_ls - z0))) if z0.size else 0.0
        sigma = coords.sigma_ls if math.isfinite(coords.sigma_ls) else 0.0
        sigma = max(sigma, 1e-3 * D)
        scale = D
        if opt.name == "adagrad":
            scale = min(D, _ADAGRAD_CAP * sigma)
        else:
            if batch is not None and batch < prob.n:
                scale = min(D, 2.0 * sigma * math.sqrt(batch))
            if opt.name == "rmsprop":
                scale = min(scale, _RMSPROP_CAP * sigma)
        if not (math.isfinite(scale) and scale > 0):
            # the start is the least-squares solution (or the statistics are not
            # finite): small steps, which do not blow rounding noise up into moves
            scale = 1e-6 * max(sigma, 1.0) if math.isfinite(sigma) else 1e-6
        return opt.auto_lr * scale
    c = prob.loss.curvature
    n = prob.n
    stochastic = batch is not None and batch < n
    L = 0.0
    if not stochastic or (batch is not None and batch > 1):
        Hz = coords.Hz
        if Hz is None:  # precondition="none": T = I
            Hz = _hessian_none(prob, coords)
            if not prob.fit_icpt:
                Hz = Hz[: prob.p, : prob.p]
        L = c * _lambda_max(Hz)
    if stochastic:
        assert batch is not None
        # per-sample penalty curvature: the penalty's Hessian in z is c * (T^T (Q/c) T)
        Qz = _penalty_hessian(prob, coords)
        L_max = c * _max_row_norm2(prob, coords) + Qz
        if batch == 1:
            LB = L_max
        else:
            LB = (n - batch) / (batch * (n - 1)) * L_max + n * (batch - 1) / (batch * (n - 1)) * L
        lr = 0.5 / LB if LB > 0 else 1.0
        if opt.name in ("momentum", "nesterov"):
            lr *= 1.0 - hp["momentum"]
        return lr
    return 1.0 / L if L > 0 else 1.0


@small_algebra()
def _penalty_hessian(prob: Problem, coords: Coordinates) -> float:
    """lambda_max of the penalty's Hessian in the internal coordinates."""
    if prob.l2 == 0:
        return 0.0
    m = prob.p + 1
    l2w = coords.l2w.astype(np.float64)
    Q = np.diag(l2w) if l2w.shape[0] == m else l2w.reshape(m, m)
    return _lambda_max(coords.T.T @ Q @ coords.T)
