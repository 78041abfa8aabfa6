"""The public API: ``fit``, ``loss_and_grad``, ``minimize``.

This layer owns validation, dtype/contiguity coercion, the random number
generator, allocation of parameters, optimizer state and history, the safe
automatic step size and every decision that needs Python (callbacks, progress,
Ctrl-C).  The kernels it calls (``fastgd.backends``) assume clean input.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any, Callable

import numpy as np

from . import _registry as reg
from . import _validation as val
from ._result import DivergenceWarning, FitResult, History, MinimizeResult
from . import backends
from .backends import resolve

#: Elements (rows x columns) of X processed per compiled call, so that Ctrl-C
#: and progress stay responsive on big data without slowing small fits.
CHUNK_WORK = 1 << 27
#: Cap on the sample-order buffer of one chunk (elements).
ORDER_CAP = 1 << 21
#: ... and on its bytes: at most 1/ORDER_FRACTION of X's (but ORDER_MIN_BYTES
#: always allowed), so that SGD on big data adds no hidden copy of X.
ORDER_FRACTION = 20
ORDER_MIN_BYTES = 1 << 18
_BLOCK = 1 << 14
_STATUS = {0: "max_iter", 1: "converged", 2: "diverged"}


# ---------------------------------------------------------------- helpers

def _poly_scale(x: np.ndarray) -> float:
    """Multiplier that maps x into [-1, 1] (conditioning of the power basis)."""
    m = float(max(np.max(x), -np.min(x))) if x.size else 0.0  # no |x| temporary
    return 1.0 / m if m > 0 else 1.0


def _l2_weights(l2: float, p: int, model: int, xscale: float, dt: type) -> np.ndarray:
    """Penalty weights per parameter in the internal basis (intercept not penalised).

    For the polynomial model the internal coefficient of u**j = (x*xscale)**j
    is ``coef_j / xscale**j``, so the original-basis penalty ``l2*coef_j**2``
    has weight ``l2*xscale**(2j)`` internally.
    """
    w = np.full(p + 1, l2, dtype=np.float64)
    if model == 1:
        w[:p] *= xscale ** (2.0 * np.arange(1, p + 1))
    w[p] = 0.0
    return w.astype(dt)


def _basis_factors(p: int, model: int, xscale: float) -> np.ndarray:
    """coef = internal * factors (1 for linear, xscale**j for poly)."""
    if model == 0:
        return np.ones(p)
    return xscale ** np.arange(1.0, p + 1)


def _gram(X: np.ndarray, model: int, xscale: float, p: int, fit_icpt: bool) -> np.ndarray:
    """A^T A / n for the design A = [features, 1] in float64, in row blocks."""
    n = X.shape[0]
    G = np.zeros((p + 1, p + 1))
    if model == 1:
        # Moments of u: G[j, k] = mean(u**(j+k)) with the intercept as power 0.
        mom = np.zeros(2 * p + 1)
        for lo in range(0, n, _BLOCK):
            u = X[lo:lo + _BLOCK, 0].astype(np.float64) * xscale
            pw = np.ones_like(u)
            for m in range(2 * p + 1):
                mom[m] += pw.sum()
                pw *= u
        idx = np.arange(p + 1)
        powers = np.r_[idx[1:], 0]  # coef powers 1..p, intercept power 0
        G = mom[powers[:, None] + powers[None, :]]
    else:
        for lo in range(0, n, _BLOCK):
            Xb = X[lo:lo + _BLOCK].astype(np.float64, copy=False)
            G[:p, :p] += Xb.T @ Xb
            G[:p, p] += Xb.sum(axis=0)
        G[p, :p] = G[:p, p]
        G[p, p] = n
    G /= n
    if not fit_icpt:
        G = G[:p, :p]
    return G


def _max_row_norm2(X: np.ndarray, model: int, xscale: float, p: int, fit_icpt: bool) -> float:
    """max_i ||a_i||^2 over the rows of the design (per-sample curvature)."""
    best = 0.0
    for lo in range(0, X.shape[0], _BLOCK):
        if model == 0:
            Xb = X[lo:lo + _BLOCK].astype(np.float64, copy=False)
            s = np.einsum("ij,ij->i", Xb, Xb)
        else:
            u2 = (X[lo:lo + _BLOCK, 0].astype(np.float64) * xscale) ** 2
            s = np.zeros_like(u2)
            pw = np.ones_like(u2)
            for _ in range(p):
                pw *= u2
                s += pw
        best = max(best, float(s.max()))
    return best + (1.0 if fit_icpt else 0.0)


def _lambda_max(G: np.ndarray) -> float:
    """Largest eigenvalue of a symmetric PSD matrix (closed form up to 2x2)."""
    k = G.shape[0]
    if k == 0:
        return 0.0
    if not np.isfinite(G).all():  # NaN/inf data (check_finite=False) or overflow
        return math.inf if not np.isnan(G).any() else math.nan
    if k == 1:
        return float(G[0, 0])
    if k == 2:
        a, b, d = float(G[0, 0]), float(G[0, 1]), float(G[1, 1])
        return 0.5 * (a + d) + math.hypot(0.5 * (a - d), b)
    return float(np.linalg.eigvalsh(G)[-1])


def auto_lr(X: np.ndarray, model: int, lspec: reg.LossSpec, xscale: float, p: int, fit_icpt: bool,
            l2w: np.ndarray, opt: reg.OptimizerSpec, stochastic: bool) -> float:
    """The step size used for ``lr="auto"``.

    Full batch (gd, momentum, nesterov): ``1/L`` with ``L = c * lambda_max(A^T A / n)
    + max(l2)`` the Lipschitz constant of the gradient (``c`` = 2 for MSE, 1 for
    Huber, whose second derivative is at most 1).  Gradient descent on an
    L-smooth convex objective with step ``1/L < 2/L`` decreases it monotonically,
    so it cannot diverge; heavy-ball and Nesterov momentum are stable with the
    same step.  Stochastic batches: ``1/(c * max_i ||a_i||^2 + max(l2))``, the
    largest per-sample curvature (the SAG/SAGA step).  Adaptive rules
    (adagrad, rmsprop, adam) are scale free: fixed defaults from the registry.
    """
    if opt.auto_lr is not None:
        return opt.auto_lr
    c = lspec.curvature
    if stochastic:
        L = c * _max_row_norm2(X, model, xscale, p, fit_icpt)
    else:
        L = c * _lambda_max(_gram(X, model, xscale, p, fit_icpt))
    L += float(np.max(l2w)) if l2w.size else 0.0
    return 1.0 / L if L > 0 else 1.0


def _options(loss: str, delta: Any, optimizer: str, schedule: str, hyper: dict[str, Any]):
    lspec = reg.LOSSES.get(loss) if isinstance(loss, str) else None
    if lspec is None:
        raise ValueError(f"loss must be one of {list(reg.LOSSES)}, got {loss!r}")
    delta = val.as_float("delta", delta, low=0.0, low_open=True)
    if not isinstance(optimizer, str) or optimizer not in reg.optimizer_names():
        raise ValueError(f"optimizer must be one of {reg.optimizer_names()}, got {optimizer!r}")
    ospec = reg.optimizer_spec(optimizer)
    sspec = reg.SCHEDULES.get(schedule) if isinstance(schedule, str) else None
    if sspec is None:
        raise ValueError(f"schedule must be one of {list(reg.SCHEDULES)}, got {schedule!r}")
    user = val.check_hyper(hyper)
    unused = [k for k in user if k not in ospec.hyper and k not in sspec.hyper]
    if unused:
        warnings.warn(f"hyperparameters {unused} are not used by optimizer {ospec.name!r} "
                      f"with schedule {sspec.name!r}", UserWarning, stacklevel=3)
    hv = reg.hyper_values(ospec, user)
    hp = np.array([hv[k] for k in reg.HP_ORDER], dtype=np.float64)
    sched_hp = np.array([hv[k] for k in reg.SCHED_HP_ORDER], dtype=np.float64)
    return lspec, delta, ospec, sspec, hp, sched_hp


def _check_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")


def _grow_history(hist_loss: np.ndarray, hist_params: np.ndarray, record: str, need: int,
                  cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow the history buffers (geometrically, up to ``cap``) to hold ``need`` epochs.

    Long fits (``max_iter`` in the millions) so never pre-allocate memory for
    epochs they may not run.
    """
    size = min(cap, max(need, 2 * hist_loss.shape[0], 64))
    loss = np.empty(size)
    loss[:hist_loss.shape[0]] = hist_loss
    params = hist_params
    if record == "params":
        params = np.empty((size, hist_params.shape[1]), dtype=hist_params.dtype)
        params[:hist_params.shape[0]] = hist_params
    return loss, params


def _quiet(bname: str):
    """numpy's overflow warnings off for the reference (divergence is reported by fastgd)."""
    if bname == "numpy":
        return np.errstate(over="ignore", invalid="ignore")
    return contextlib.nullcontext()


class _Progress:
    """A tqdm bar over epochs (imported only when asked for)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError("progress=True needs tqdm: pip install 'fastgd[progress]'") from exc
            self.bar = tqdm(total=total, unit="epoch", desc="fastgd")

    def update(self, n: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if math.isfinite(loss):
                self.bar.set_postfix(loss=f"{loss:.6g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n  # a fit that stopped early ends the bar at 100 %
            self.bar.refresh()
            self.bar.close()


# ---------------------------------------------------------------- fit

def fit(X: Any, y: Any, *, loss: str = "mse", delta: float = 1.0, degree: int | None = None,
        fit_intercept: bool = True, l2: float = 0.0, optimizer: str = "gd",
        lr: float | str = "auto", schedule: str = "constant", batch_size: int | None = None,
        max_iter: int = 1000, tol: float = 1e-6, seed: Any = None, backend: str = "auto",
        record: str | None = "loss", callback: Callable[..., Any] | None = None,
        coef_init: Any = None, intercept_init: float = 0.0, progress: bool = False,
        check_finite: bool = True, **hyper: float) -> FitResult:
    """Fit a linear or polynomial model by gradient descent.

    Minimizes ``mean_i rho(pred_i - y_i) + (l2/2) * ||coef||^2`` (the intercept
    is not penalised).

    Parameters
    ----------
    X : array_like, shape (n_samples, n_features), or (n_samples,) with ``degree``
        float32 is computed in float32 end to end; any other numeric dtype in
        float64.  Never modified; copied only when not C-contiguous in the
        compute dtype (a ``np.memmap`` is read in place).
    y : array_like, shape (n_samples,)
    loss : {"mse", "huber"}
        ``"mse"``: ``rho = r**2``.  ``"huber"``: ``r**2/2`` for ``|r| <= delta``,
        ``delta*(|r| - delta/2)`` beyond (torch's convention).
    delta : float
        Huber threshold, > 0.
    degree : int, optional
        Fit ``y ~ intercept + sum_{j=1..degree} coef[j-1] * x**j`` with 1-D ``X``.
        Powers are computed on the fly; x is rescaled to [-1, 1] internally and
        results are reported in the original basis.
    fit_intercept : bool
    l2 : float
        Ridge penalty, >= 0.
    optimizer : {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"}
        ``"sgd"`` is an alias of ``"gd"``; stochasticity comes from ``batch_size``.
    lr : float or "auto"
        Initial step size.  ``"auto"``: ``1/L`` from the Lipschitz constant of the
        gradient for full-batch gd/momentum/nesterov (provably non-divergent),
        ``1/max_i L_i`` (the largest per-sample curvature) with mini-batches, and
        0.1 (adagrad) / 0.01 (rmsprop, adam) for the scale-free adaptive rules.
    schedule : {"constant", "invscaling", "exponential"}
        Step size of epoch ``e`` (from 0): ``lr``, ``lr/(e+1)**power_t`` or
        ``lr*gamma**e``.
    batch_size : int, optional
        ``None`` full batch, ``1`` SGD, ``k`` mini-batches of k rows (the last
        one of an epoch may be smaller).  A ``batch_size >= n_samples`` is full
        batch.  The sample order of every epoch is drawn here from ``seed`` and
        is the same for every backend.
    max_iter : int
        Maximum number of epochs.
    tol : float
        Stop when an epoch changes no parameter by more than
        ``tol * max(1, max|theta|)`` (``theta``: coefficients and intercept, in the
        internal basis).  ``0`` runs all ``max_iter`` epochs unless a step is
        exactly zero.
    seed : int, numpy Generator or None
        Seeds the per-epoch sample order.
    backend : {"auto", "numpy", "numba", "cython"}
        ``"auto"``: the compiled backend the benchmarks show faster for the job
        (Cython; numba for mini-batches, and for SGD on an ``X`` of 64 MB or more),
        else numpy.
    record : {"loss", "params", None}
        ``"loss"`` keeps the objective per epoch, ``"params"`` also the parameters.
    callback : callable, optional
        ``callback(epoch, coef, intercept, objective)`` after every epoch;
        returning ``True`` stops the fit with status ``"callback"``.
    coef_init, intercept_init : optional
        Starting point (default zeros).
    progress : bool
        Show a tqdm progress bar with the epoch and current objective.
    check_finite : bool
        Scan ``X`` and ``y`` for NaN/inf first (default).  ``False`` saves that
        pass over the data; NaN/inf in the data then makes the fit diverge, and
        the same ``ValueError`` naming the array and position is raised.
    **hyper : float
        ``momentum`` (0.9), ``beta1`` (0.9), ``beta2`` (0.999), ``eps`` (1e-8;
        adagrad 1e-10), ``rho`` (0.99, RMSprop's smoothing), ``power_t`` (0.25),
        ``gamma`` (0.99).

    Returns
    -------
    FitResult
        A diverged fit (non-finite objective or parameters) returns the last
        finite parameters with ``status="diverged"`` and a ``DivergenceWarning``;
        Ctrl-C returns the parameters reached with ``status="interrupted"``.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> X, y, coef, b = fastgd.datasets.make_linear(1000, 3, noise=0.0, seed=0)
    >>> res = fastgd.fit(X, y, tol=1e-10)
    >>> bool(np.allclose(res.coef, coef, atol=1e-6)), res.status
    (True, 'converged')
    """
    t_start = time.perf_counter()
    lspec, delta, ospec, sspec, hp, sched_hp = _options(loss, delta, optimizer, schedule, hyper)
    if degree is not None:
        degree = val.as_int("degree", degree, 1)
    l2 = val.as_float("l2", l2, low=0.0)
    lr0 = val.check_lr(lr)
    if batch_size is not None:
        batch_size = val.as_int("batch_size", batch_size, 1)
    max_iter = val.as_int("max_iter", max_iter, 1)
    tol = val.as_float("tol", tol, low=0.0)
    record = val.check_record(record)
    _check_callback(callback)
    fit_icpt = val.as_bool("fit_intercept", fit_intercept)
    progress = val.as_bool("progress", progress)
    icpt0 = val.as_float("intercept_init", intercept_init)
    bname, be = resolve(backend)

    Xc, yc, model, dt = val.check_data(X, y, degree, val.as_bool("check_finite", check_finite),
                                       be.all_finite)
    n = Xc.shape[0]
    p = degree if model == 1 else Xc.shape[1]
    xscale = _poly_scale(Xc) if model == 1 else 1.0
    if model == 1:  # tiny |x|: keep xscale**(2*degree) (basis factors, l2 weights) finite
        xscale = min(xscale, float(np.finfo(dt).max * 1e-6) ** (1.0 / (2 * p)))
    factors = _basis_factors(p, model, xscale)
    theta = np.zeros(p + 1, dtype=dt)
    if coef_init is not None:
        theta[:p] = val.check_vector("coef_init", coef_init, p, np.float64) / factors
    if fit_icpt:
        theta[p] = icpt0
    l2w = _l2_weights(l2, p, model, xscale, dt)
    stochastic = batch_size is not None and batch_size < n
    if backend == "auto" and stochastic and batch_size > 1:
        bname, be = resolve(backend, job="minibatch")
    elif backend == "auto" and stochastic and Xc.nbytes >= backends.LARGE_SGD_BYTES:
        bname, be = resolve(backend, job="large_sgd")
    # the generator is only needed for sample orders (seed is validated either way)
    rng = val.as_rng(seed) if stochastic or seed is not None else None
    if lr0 is None:
        lr0 = auto_lr(Xc, model, lspec, xscale, p, fit_icpt, l2w, ospec, stochastic)
        if math.isnan(lr0) and not check_finite:
            val.check_finite("X", Xc)  # raises, naming the first NaN/inf

    state = np.zeros((2, p + 1), dtype=dt)
    need_obj = record is not None or callback is not None
    hist_loss = np.empty(0)
    hist_params = np.empty((0, p + 1), dtype=dt)
    grad = np.zeros(p + 1, dtype=dt)

    if stochastic:
        per_epoch = n
        perm = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        order_budget = max(ORDER_MIN_BYTES, Xc.nbytes // ORDER_FRACTION) // (n * perm.itemsize)
        chunk = max(1, min(CHUNK_WORK // max(n * Xc.shape[1], 1), ORDER_CAP // n, order_budget))
        order_buf = np.empty((0, n), dtype=perm.dtype)  # one buffer, reused by every chunk
        bsz = batch_size
    else:
        per_epoch = 0
        chunk = max(1, CHUNK_WORK // max(n * Xc.shape[1], 1))
        if model == 1 and lspec.name == "mse" and getattr(be, "POLY_MSE_MOMENTS", False):
            # the backend reduces the data to moments once per run call: epochs are O(p^2)
            chunk = max(1, CHUNK_WORK // (p + 1) ** 2)
        empty_order = np.empty((0, 0), dtype=np.int32)
        bsz = 0
    if callback is not None:
        chunk = 1

    bar = _Progress(progress, max_iter)
    epoch, status, t, f = 0, 0, 0, math.nan
    try:
        while epoch < max_iter:
            n_ep = min(chunk, max_iter - epoch)
            if stochastic:
                if n_ep == 1:
                    rng.shuffle(perm)
                    order = perm[None, :]
                else:
                    if order_buf.shape[0] < n_ep:
                        order_buf = np.empty((n_ep, per_epoch), dtype=perm.dtype)
                    order = order_buf[:n_ep]
                    for k in range(n_ep):
                        rng.shuffle(perm)
                        order[k] = perm
            else:
                order = empty_order
            if record is not None and hist_loss.shape[0] < epoch + n_ep + 1:
                hist_loss, hist_params = _grow_history(hist_loss, hist_params, record,
                                                       epoch + n_ep + 1, max_iter + 1)
            with _quiet(bname):  # divergence is reported below
                done, code, t, f = be.run(
                    model, lspec.code, Xc, yc, theta, xscale, delta, l2w, int(fit_icpt),
                    ospec.code, hp, state, t, sspec.code, lr0, sched_hp, epoch, n_ep,
                    bsz, order, tol, int(need_obj), grad, f, hist_loss, hist_params)
            epoch += done
            bar.update(done, f)
            if code != 0:
                status = code
                break
            if callback is not None:
                stop = callback(epoch, theta[:p] * factors, float(theta[p]), f)
                if stop is True:
                    status = 3
                    break
    except KeyboardInterrupt:
        status = 4
    finally:
        bar.close()

    if status == 2 or not math.isfinite(f) or (stochastic and not need_obj):
        with np.errstate(over="ignore", invalid="ignore"):
            f = be.objective(model, lspec.code, Xc, yc, theta, xscale, delta, l2w)
        if math.isnan(f):  # e.g. 0 * inf in the penalty of an overflowing coefficient
            f = math.inf
    if not check_finite and (status == 2 or not math.isfinite(f)):
        # NaN/inf in the data: the error names it.  (Huber's clipped slope keeps
        # the parameters finite on an infinite y, so the objective is checked too.)
        val.check_finite("X", Xc)
        val.check_finite("y", yc)
    if status == 2:
        warnings.warn(
            f"fit diverged in epoch {epoch + 1} (non-finite objective or parameters); "
            f"returning the last finite parameters. Use a smaller lr (was {lr0:.3g}) "
            "or lr='auto'.", DivergenceWarning, stacklevel=2)
    hist = History(loss=hist_loss[:epoch + 1] if record is not None else np.empty(0))
    if record == "params":
        hp_out = hist_params[:epoch + 1].copy()
        hp_out[:, :p] = hp_out[:, :p] * factors  # in float64, exactly as coef below
        hist.params = hp_out
    status_name = {3: "callback", 4: "interrupted"}.get(status) or _STATUS[status]
    return FitResult(
        coef=(theta[:p] * factors).astype(dt), intercept=float(theta[p]), n_iter=epoch,
        converged=status == 1, status=status_name, objective=float(f), history=hist,
        backend=bname, elapsed=time.perf_counter() - t_start, lr=float(lr0), degree=degree,
        info={"xscale": xscale, "optimizer": ospec.name, "loss": lspec.name,
              "batch_size": bsz if stochastic else None, "steps": t})


# ---------------------------------------------------------------- loss_and_grad

def loss_and_grad(X: Any, y: Any, coef: Any, intercept: float = 0.0, *, loss: str = "mse",
                  delta: float = 1.0, degree: int | None = None, l2: float = 0.0,
                  backend: str = "auto", check_finite: bool = True
                  ) -> tuple[float, np.ndarray, float]:
    """The objective and its exact gradient at ``(coef, intercept)``.

    Objective: ``mean_i rho(pred_i - y_i) + (l2/2) * ||coef||^2`` with ``rho`` as in
    :func:`fit`; one fused pass over the rows on the compiled backends.

    Parameters
    ----------
    X, y : array_like
        As in :func:`fit`.
    coef : array_like, shape (n_features,) or (degree,)
    intercept : float
    loss, delta, degree, l2, backend
        As in :func:`fit`.
    check_finite : bool
        Scan ``X`` and ``y`` for NaN/inf before computing (the default).  With
        ``False`` the data are read once, by the fused kernel alone (as
        ``scipy.linalg``'s ``check_finite``); a NaN or inf in the data always
        makes the objective non-finite, and the scan then runs to raise the
        same ``ValueError`` naming the array and position.

    Returns
    -------
    value : float
    grad_coef : ndarray, shape like ``coef``, in the data dtype
    grad_intercept : float

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0])
    >>> v, gc, gb = fastgd.loss_and_grad(X, y, np.array([0.0]), 0.0)
    >>> v, gc.tolist(), gb
    (2.5, [-5.0], -3.0)
    """
    lspec, delta, _, _, _, _ = _options(loss, delta, "gd", "constant", {})
    if degree is not None:
        degree = val.as_int("degree", degree, 1)
    l2 = val.as_float("l2", l2, low=0.0)
    _, be = resolve(backend)
    Xc, yc, model, dt = val.check_data(X, y, degree, val.as_bool("check_finite", check_finite),
                                       be.all_finite)
    p = degree if model == 1 else Xc.shape[1]
    theta = np.empty(p + 1, dtype=dt)
    theta[:p] = val.check_vector("coef", coef, p, dt)
    theta[p] = val.as_float("intercept", intercept)
    grad = np.empty(p + 1, dtype=dt)
    l2w = _l2_weights(l2, p, model, 1.0, dt)
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are handled below
        value = be.objective_grad(model, lspec.code, Xc, yc, theta, 1.0, delta, l2w, 1, grad)
    if not check_finite and not math.isfinite(value):
        val.check_finite("X", Xc)  # raises, naming the first NaN/inf, if the data hold one
        val.check_finite("y", yc)
    return float(value), grad[:p].copy(), float(grad[p])


# ---------------------------------------------------------------- minimize

def minimize(fun: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], Any], x0: Any, *,
             optimizer: str = "gd", lr: float = 0.1, schedule: str = "constant",
             max_iter: int = 1000, tol: float = 1e-6, backend: str = "auto",
             record: str | None = "loss", **hyper: float) -> MinimizeResult:
    """Minimize a differentiable function with the same update rules as :func:`fit`.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``.
    grad : callable
        ``grad(x) -> array`` of ``x``'s shape.
    x0 : array_like, 1-D
        Starting point (never modified).  float32 stays float32.
    optimizer, schedule, **hyper
        As in :func:`fit`.
    lr : float
        Step size (> 0).
    max_iter : int
        Maximum number of iterations (one step each).
    tol : float
        Stop when no coordinate moves by more than ``tol * max(1, max|x|)``.
    backend : str
        ``"auto"`` runs the whole loop compiled (numba) when ``fun`` and ``grad``
        are numba-jitted functions and numba is installed; otherwise the loop is
        Python.
    record : {"loss", "params", None}

    Returns
    -------
    MinimizeResult

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> r = fastgd.minimize(lambda x: float(x @ x), lambda x: 2 * x, np.array([3.0, -4.0]))
    >>> r.status, bool(np.allclose(r.x, 0, atol=1e-5))
    ('converged', True)
    """
    t_start = time.perf_counter()
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if not callable(grad):
        raise TypeError(f"grad must be callable, got {type(grad).__name__}")
    _, _, ospec, sspec, hp, sched_hp = _options("mse", 1.0, optimizer, schedule, hyper)
    lr0 = val.check_lr(lr, allow_auto=False)
    max_iter = val.as_int("max_iter", max_iter, 1)
    tol = val.as_float("tol", tol, low=0.0)
    record = val.check_record(record)
    x = val.check_x0(x0)
    dt = x.dtype.type
    val.check_fun_value(fun(x.copy()))
    val.check_grad_value(grad(x.copy()), x.shape)

    bname, be = _minimize_backend(backend, fun, grad)
    if not all(type(f).__name__ == "CPUDispatcher" for f in (fun, grad)):
        # the loop calls Python functions: check every return value, not just the first
        fun, grad = val.checked_functions(fun, grad, x.shape)
    state = np.zeros((2, x.shape[0]), dtype=dt)
    hist_f = np.empty(max_iter + 1 if record is not None else 0)
    hist_x = np.empty((max_iter + 1 if record == "params" else 0, x.shape[0]), dtype=dt)
    with np.errstate(over="ignore", invalid="ignore"):
        done, code, fval = be.minimize_run(fun, grad, x, ospec.code, hp, state, sspec.code, lr0,
                                           sched_hp, max_iter, tol, hist_f, hist_x)
    if code == 2:
        warnings.warn(
            f"minimize diverged in iteration {done + 1} (non-finite value or parameters); "
            f"returning the last finite x. Use a smaller lr (was {lr0:.3g}).",
            DivergenceWarning, stacklevel=2)
        fval = float(fun(x.copy()))
    hist = History(loss=hist_f[:done + 1] if record is not None else np.empty(0),
                   params=hist_x[:done + 1].copy() if record == "params" else None)
    return MinimizeResult(x=x, fun=float(fval), n_iter=done, converged=code == 1,
                          status=_STATUS[code], history=hist, backend=bname,
                          elapsed=time.perf_counter() - t_start)


def _minimize_backend(backend: str, fun: Any, grad: Any):
    """``minimize`` runs compiled only where the backend can call the functions."""
    from .backends import available_backends
    if backend == "auto":
        jitted = all(type(f).__name__ == "CPUDispatcher" for f in (fun, grad))
        backend = "numba" if jitted and "numba" in available_backends() else "numpy"
    name, be = resolve(backend)
    if not hasattr(be, "minimize_run"):
        from .backends import _numpy
        return name, _numpy
    return name, be
