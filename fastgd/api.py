"""The public API: ``fit``, ``loss_and_grad``, ``minimize``.

Each is a short sequence of named stages from the modules below it:
validate (``_validation``, ``_problem``) -> build the problem (``_problem``)
-> precondition and choose the step (``_precondition``) -> run the epochs
(``_loop``) -> report in the user's basis (here).  The kernels they call
(``fastgd.backends``) assume clean input.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np

from . import _registry as reg, _validation as val
from ._loop import STATUS, Outcome, Rule, final_objective, run_epochs
from ._precondition import PRECONDITIONS, Coordinates, auto_lr, choose_coordinates
from ._problem import Problem, build_problem
from ._result import DivergenceWarning, FitResult, FitState, History, MinimizeResult
from .backends import resolve

#: The polynomial input as given: u = (x - 0) * 1.
_UNIT_BASIS = np.array([0.0, 1.0])


def _rule_options(optimizer: str, schedule: str, hyper: dict[str, Any]) -> tuple[Any, ...]:
    """The update rule, its schedule and their hyperparameters, validated."""
    if not isinstance(optimizer, str) or optimizer not in reg.optimizer_names():
        raise ValueError(f"optimizer must be one of {reg.optimizer_names()}, got {optimizer!r}")
    ospec = reg.optimizer_spec(optimizer)
    sspec = reg.SCHEDULES.get(schedule) if isinstance(schedule, str) else None
    if sspec is None:
        raise ValueError(f"schedule must be one of {list(reg.SCHEDULES)}, got {schedule!r}")
    user = val.check_hyper(hyper)
    unused = [k for k in user if k not in ospec.hyper and k not in sspec.hyper]
    if unused:
        warnings.warn(
            f"hyperparameters {unused} are not used by optimizer {ospec.name!r} "
            f"with schedule {sspec.name!r}",
            UserWarning,
            stacklevel=3,
        )
    hv = reg.hyper_values(ospec, user)
    hp = np.array([hv[k] for k in reg.HP_ORDER], dtype=np.float64)
    sched_hp = np.array([hv[k] for k in reg.SCHED_HP_ORDER], dtype=np.float64)
    return ospec, sspec, hv, hp, sched_hp


def _check_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")


# ---------------------------------------------------------------- fit


def fit(
    X: Any,
    y: Any,
    *,
    loss: str = "mse",
    delta: float = 1.0,
    degree: int | None = None,
    fit_intercept: bool = True,
    l2: float = 0.0,
    optimizer: str = "gd",
    lr: float | str = "auto",
    schedule: str = "constant",
    batch_size: int | None = None,
    max_iter: int = 1000,
    tol: float = 1e-6,
    seed: Any = None,
    backend: str = "auto",
    record: str | None = "loss",
    callback: Callable[..., Any] | None = None,
    coef_init: Any = None,
    intercept_init: float | None = None,
    progress: bool = False,
    check_finite: bool = True,
    precondition: str = "auto",
    sample_weight: Any = None,
    state: FitState | None = None,
    **hyper: float,
) -> FitResult:
    """Fit a linear or polynomial model by gradient descent.

    Minimizes ``sum_i w_i rho(pred_i - y_i) / sum_i w_i + (l2/2) * ||coef||^2``
    (``w_i = 1`` without ``sample_weight``; the intercept is not penalised).

    Parameters
    ----------
    X : array_like, shape (n_samples, n_features), or (n_samples,) with ``degree``
        float32 is computed in float32 end to end; any other numeric dtype in
        float64.  Never modified; copied only when not C-contiguous in the
        compute dtype (a ``np.memmap`` is read in place).  A dask array
        (chunked by rows; ``y`` and ``sample_weight`` then dask arrays with the
        same row chunks, or numpy) is fitted where its chunks live: on the
        active ``dask.distributed`` client's cluster, else on dask's local
        scheduler (see ``fastgd._dask``): full batches follow the in-memory
        trajectory, stochastic batches run chunk to chunk.
    y : array_like, shape (n_samples,)
    loss : {"mse", "huber"}
        ``"mse"``: ``rho = r**2``.  ``"huber"``: ``r**2/2`` for ``|r| <= delta``,
        ``delta*(|r| - delta/2)`` beyond (torch's convention).
    delta : float
        Huber threshold, > 0.
    degree : int, optional
        Fit ``y ~ intercept + sum_{j=1..degree} coef[j-1] * x**j`` with 1-D ``X``.
        Powers are computed on the fly (never an n x degree matrix); results
        are always reported as these ascending power coefficients of the
        original x, whatever basis the fit runs in (see ``precondition``).
    fit_intercept : bool
    l2 : float
        Ridge penalty, >= 0.
    optimizer : {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"}
        ``"sgd"`` is an alias of ``"gd"``; stochasticity comes from ``batch_size``.
    lr : float or "auto"
        Initial step size, in the coordinates the fit runs in (see
        ``precondition``).  ``"auto"``: ``1/L`` from the Lipschitz constant ``L``
        of the gradient for full-batch gd/momentum/nesterov (provably
        non-divergent, also with momentum); ``1/(2 L_B)`` for batches of ``B``
        rows, with ``L_B`` the expected smoothness of such batches (the largest
        per-sample curvature at ``B = 1``), times ``1 - momentum`` for momentum
        and nesterov; 0.1 (adagrad) / 0.01 (rmsprop, adam) for the adaptive
        rules, times the standard deviation of ``y`` when preconditioned.  The
        value used is ``FitResult.lr``; see ``fastgd._precondition.auto_lr``.
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
        ``tol * max(1, max|z|)`` (``z``: coefficients and intercept in the
        coordinates the fit runs in).  ``0`` runs all ``max_iter`` epochs unless a
        step is exactly zero.
    seed : int, numpy Generator or None
        Seeds the per-epoch sample order.
    backend : {"auto", "numpy", "numba", "cython"}
        ``"auto"``: Cython for every job when it is built (no JIT wait), else
        numba, else numpy.
    record : {"loss", "params", None}
        ``"loss"`` keeps the objective per epoch, ``"params"`` also the parameters.
    callback : callable, optional
        ``callback(epoch, coef, intercept, objective)`` after every epoch;
        returning ``True`` stops the fit with status ``"callback"``.
    coef_init, intercept_init : optional
        Starting point in the user's basis.  ``coef_init`` defaults to zeros;
        ``intercept_init`` to 0 with ``precondition="none"`` and, with
        ``"auto"``, to the value that makes the mean prediction equal the mean
        of ``y`` (the least-squares intercept for the starting coefficients).
    progress : bool
        Show a tqdm progress bar with the epoch and current objective.
    check_finite : bool
        Scan ``X`` and ``y`` for NaN/inf first (default).  ``False`` saves that
        pass over the data; NaN/inf in the data then makes the fit diverge, and
        the same ``ValueError`` naming the array and position is raised.
    precondition : {"auto", "none"}
        The coordinates the optimizer moves in; results are reported in the
        user's basis either way, and the objective (penalty included) is the
        same.  ``"auto"`` (default): a well-conditioned basis from one pass of
        statistics over the data -- linear model: every column centred and
        scaled to unit variance (folded into each step in O(n_features), X is
        never copied); polynomial: x mapped onto [-1, 1] and the orthonormal
        polynomials of the data (Legendre polynomials orthonormalised against
        the data's Gram matrix), so full-batch MSE converges in a few epochs.
        ``"none"``: textbook gradient descent on the user's coefficients (for
        a polynomial, on the coefficients of the powers of ``x / max|x|``),
        as tutorials draw it: slow on badly scaled data.
    sample_weight : array_like, shape (n_samples,), optional
        Non-negative finite weights, not all zero: integer weights fit as if
        rows were repeated that many times, weight 0 as if the row were
        dropped, and scaling every weight changes nothing.  Applied in the
        kernels' single pass (no weighted copy of the data); the
        preconditioner and ``lr="auto"`` use them.  A mini-batch's gradient is
        ``sum_B w_i g_i / (B mean(w))``: each row weighs within its batch as it
        does in the objective, an unbiased estimate of the full gradient.
    state : FitState, optional
        Continue an earlier fit (``res.state`` of a previous call, on these or
        other rows of the same problem): its parameters, optimizer slots, step
        counter and schedule go on as if the epochs of both calls were one
        fit, in its coordinates and with its step size (``lr="auto"`` takes
        the earlier value; a float overrides it).  The preconditioner is
        *not* re-fitted to these rows: data on a very different scale from
        the first call's converge more slowly and, with a step size too large
        for them, may diverge (reported as usual).  ``coef_init``,
        ``intercept_init`` and ``precondition="none"`` on an ``"auto"`` state
        are errors; optimizer, loss, model, ``fit_intercept`` and ``l2`` must
        match.  Full batch: ``k`` calls with ``max_iter=1, tol=0`` give the
        parameters of one call with ``max_iter=k, tol=0``.
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
        ``FitResult.precondition`` says which coordinates were used;
        ``FitResult.state`` continues the fit.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> X, y, coef, b = fastgd.datasets.make_linear(1000, 3, noise=0.0, seed=0)
    >>> res = fastgd.fit(X, y, tol=1e-10)
    >>> bool(np.allclose(res.coef, coef, atol=1e-6)), res.status
    (True, 'converged')

    A polynomial far from 0, recovered to many digits:

    >>> x = np.arange(21.0); y = sum(x ** k for k in range(6))
    >>> res = fastgd.fit(x, y, degree=5, tol=1e-14, max_iter=10_000)
    >>> np.round(np.r_[res.intercept, res.coef], 6).tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]

    Streaming: each call continues the optimizer where the last one stopped.

    >>> X, y, coef, b = fastgd.datasets.make_linear(1000, 3, noise=0.0, seed=0)
    >>> res = fastgd.fit(X[:500], y[:500], optimizer="adam", max_iter=1, tol=0)
    >>> for _ in range(300):
    ...     res = fastgd.fit(X[500:], y[500:], optimizer="adam", max_iter=1, tol=0,
    ...                      state=res.state)
    >>> res.state.epoch, bool(np.allclose(res.coef, coef, atol=1e-3))
    (301, True)
    """
    t_start = time.perf_counter()
    # validate the options (the data are validated with the problem)
    ospec, sspec, hv, hp, sched_hp = _rule_options(optimizer, schedule, hyper)
    lr0 = val.check_lr(lr)
    if batch_size is not None:
        batch_size = val.as_int("batch_size", batch_size, 1)
    max_iter = val.as_int("max_iter", max_iter, 1)
    tol = val.as_float("tol", tol, low=0.0)
    record = val.check_record(record)
    _check_callback(callback)
    progress = val.as_bool("progress", progress)
    precondition = val.choice("precondition", precondition, list(PRECONDITIONS))
    icpt0 = None if intercept_init is None else val.as_float("intercept_init", intercept_init)
    check_finite = val.as_bool("check_finite", check_finite)
    _check_state(state, precondition, coef_init, intercept_init)

    # build the problem
    # the first pass over the data (statistics or epochs) doubles as the NaN/inf check
    prob = build_problem(
        X,
        y,
        loss=loss,
        delta=delta,
        degree=degree,
        l2=l2,
        fit_intercept=fit_intercept,
        backend=backend,
        check_finite=check_finite,
        defer_scan=True,
        sample_weight=sample_weight,
    )
    batch = batch_size if batch_size is not None and batch_size < prob.n else None
    # the generator is only needed for sample orders (seed is validated either way)
    rng = val.as_rng(seed) if batch is not None or seed is not None else None
    coef0 = (
        None if coef_init is None else val.check_vector("coef_init", coef_init, prob.p, np.float64)
    )

    # precondition and choose the step (or continue those of an earlier fit)
    sig = (ospec.name, prob.loss.name, prob.model, prob.p, prob.fit_icpt, prob.l2)
    if state is None:
        coords = choose_coordinates(
            prob,
            precondition,
            full_stats=lr0 is None and (ospec.auto_lr is not None or batch is None or batch > 1),
        )
        theta = _start(prob, coords, coef0, icpt0)
        if lr0 is None:
            with np.errstate(all="ignore"):  # data not yet proven finite: checked below
                lr0 = auto_lr(prob, coords, ospec, batch, hv, theta)
            if math.isnan(lr0) and (prob.unscanned or not check_finite):
                prob.scan()  # raises, naming the first NaN/inf
        slots, t0, epoch0 = np.zeros((2, prob.p + 1), dtype=prob.dt), 0, 0
    else:
        coords, theta, slots, t0, epoch0 = _resume(state, sig, prob)
        lr0 = state.lr if lr0 is None else lr0

    # run the epochs
    out = run_epochs(
        prob,
        coords,
        Rule(ospec, sspec, hp, sched_hp, lr0),
        theta,
        slots,
        t0,
        epoch0=epoch0,
        batch=batch,
        max_iter=max_iter,
        tol=tol,
        rng=rng,
        record=record,
        callback=callback,
        progress=progress,
        check_finite=check_finite,
    )
    end = FitState(
        theta.copy(),
        slots,
        out.steps,
        epoch0 + out.epoch,
        float(lr0),
        replace(coords, stats=None),
        sig,
    )

    # report in the user's basis
    if out.status == 2:
        warnings.warn(
            f"fit diverged in epoch {out.epoch + 1} (non-finite objective or parameters); "
            f"returning the last finite parameters. Use a smaller lr (was {lr0:.3g}) "
            "or lr='auto'.",
            DivergenceWarning,
            stacklevel=2,
        )
    return _result(prob, coords, out, theta, record, lr0, ospec, batch, t_start, end)


def _check_state(state: Any, precondition: str, coef_init: Any, intercept_init: Any) -> None:
    """``state`` is a FitState that the other arguments do not contradict."""
    if state is None:
        return
    if not isinstance(state, FitState):
        raise TypeError(
            f"state must be a FitState (FitResult.state) or None, got {type(state).__name__}"
        )
    if coef_init is not None or intercept_init is not None:
        raise ValueError(
            "state already holds the starting parameters: "
            "pass coef_init/intercept_init or state, not both"
        )
    if precondition == "none" and state.coords.precondition == "auto":
        raise ValueError(
            "precondition='none' cannot continue a state fitted with "
            "precondition='auto' (its coordinates are preconditioned)"
        )


def _resume(
    state: FitState, sig: tuple, prob: Problem
) -> tuple[Coordinates, np.ndarray, np.ndarray, int, int]:
    """Coordinates, parameters (copies), slots, step and epoch of an earlier fit."""
    if state.signature != sig:
        names = ("optimizer", "loss", "model", "number of parameters", "fit_intercept", "l2")
        diff = [f"{k} {a!r} != {b!r}" for k, a, b in zip(names, state.signature, sig) if a != b]
        raise ValueError("state was fitted with other settings: " + ", ".join(diff))
    theta = np.array(state.theta, dtype=prob.dt, copy=True)
    slots = np.array(state.slots, dtype=prob.dt, copy=True)
    coords = state.coords
    if coords.l2w.dtype != prob.dt:
        coords = replace(coords, l2w=coords.l2w.astype(prob.dt))
    return coords, theta, slots, int(state.step), int(state.epoch)


def _start(
    prob: Problem, coords: Coordinates, coef0: np.ndarray | None, icpt0: float | None
) -> np.ndarray:
    """The starting point in the kernel's coordinates.

    ``coef_init`` defaults to zeros.  ``intercept_init=None``: 0 with
    ``precondition="none"``; with ``"auto"`` (and an intercept) the one that
    makes the mean prediction over the data equal the mean of ``y``.
    """
    p = prob.p
    coef = np.zeros(p) if coef0 is None else coef0
    theta = coords.from_user(coef, 0.0 if icpt0 is None else icpt0)
    if icpt0 is None and coords.precondition == "auto" and prob.fit_icpt:
        y_mean = coords.y_mean
        if not math.isfinite(y_mean):
            y_mean = float(np.average(prob.y.astype(np.float64), weights=prob.w))
        theta[p] = y_mean - float(coords.feature_mean @ theta[:p])
    if not prob.fit_icpt:
        theta[p] = 0.0
    return theta.astype(prob.dt)


def _result(
    prob: Problem,
    coords: Coordinates,
    out: Outcome,
    theta: np.ndarray,
    record: str | None,
    lr0: float,
    ospec: reg.OptimizerSpec,
    batch: int | None,
    t_start: float,
    state: FitState,
) -> FitResult:
    """The FitResult, every parameter in the user's basis."""
    epoch = out.epoch
    hist = History(loss=out.hist_loss[: epoch + 1] if record is not None else np.empty(0))
    if record == "params":
        hist.params = coords.to_user_rows(out.hist_params[: epoch + 1]).astype(prob.dt)
    coef, icpt = coords.to_user(theta)
    objective = partial(final_objective, prob, coords, theta) if out.lazy_f else out.f
    return FitResult(
        coef=coef.astype(prob.dt),
        intercept=icpt,
        n_iter=epoch,
        converged=out.status == 1,
        status=STATUS[out.status],
        history=hist,
        objective=objective,  # type: ignore[arg-type]  # a callable is resolved on first read
        backend=prob.bname,
        elapsed=time.perf_counter() - t_start,
        lr=float(lr0),
        degree=prob.degree,
        precondition=coords.precondition,
        info={
            "basis": coords.basis.tolist(),
            "optimizer": ospec.name,
            "loss": prob.loss.name,
            "batch_size": batch,
            "steps": out.steps,
            **_data_info(prob),
        },
        state=state,
    )


def _data_info(prob: Problem) -> dict[str, Any]:
    """Where the data of a dask array's fit lived: chunks, and whether persisted."""
    be = prob.be
    if not getattr(be, "CHUNKED", False):
        return {}
    return {"dask_chunks": be.nchunks, "persisted": be.persisted}


# ---------------------------------------------------------------- loss_and_grad


def loss_and_grad(
    X: Any,
    y: Any,
    coef: Any,
    intercept: float = 0.0,
    *,
    loss: str = "mse",
    delta: float = 1.0,
    degree: int | None = None,
    l2: float = 0.0,
    backend: str = "auto",
    check_finite: bool = True,
    sample_weight: Any = None,
) -> tuple[float, np.ndarray, float]:
    """The objective and its exact gradient at ``(coef, intercept)``.

    Objective: ``sum_i w_i rho(pred_i - y_i) / sum_i w_i + (l2/2) * ||coef||^2``
    with ``rho`` as in :func:`fit` (``w_i = 1`` without ``sample_weight``);
    one fused pass over the rows on the compiled backends.

    Parameters
    ----------
    X, y : array_like
        As in :func:`fit`.
    coef : array_like, shape (n_features,) or (degree,)
    intercept : float
    loss, delta, degree, l2, backend
        As in :func:`fit`.
    check_finite : bool
        NaN/inf in ``X`` or ``y`` raise a ``ValueError`` naming the array and
        the first bad position, either way: the data are read once, by the
        fused kernel, and scanned only when its result is not finite (finite
        parameters give a finite objective and gradient only on finite data).
        Kept for compatibility with ``fit``'s keyword.
    sample_weight : array_like, shape (n_samples,), optional
        As in :func:`fit`.

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
    check_finite = val.as_bool("check_finite", check_finite)
    prob = build_problem(
        X,
        y,
        loss=loss,
        delta=delta,
        degree=degree,
        l2=l2,
        fit_intercept=True,
        backend=backend,
        check_finite=check_finite,
        defer_scan=True,
        sample_weight=sample_weight,
    )
    p, dt, be = prob.p, prob.dt, prob.be
    Xc, yc = prob.X, prob.y
    theta = np.empty(p + 1, dtype=dt)
    theta[:p] = val.check_vector("coef", coef, p, dt)
    theta[p] = val.as_float("intercept", intercept)
    grad = np.empty(p + 1, dtype=dt)
    l2w = np.r_[np.full(p, prob.l2), 0.0].astype(dt)  # the user's coefficients, unscaled
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite results are handled below
        value = be.objective_grad(
            prob.model,
            prob.loss.code,
            Xc,
            yc,
            theta,
            _UNIT_BASIS,
            prob.delta,
            l2w,
            1,
            grad,
            w=prob.w,
        )
    if not (math.isfinite(value) and np.isfinite(grad).all()):
        prob.scan()  # raises, naming the first NaN/inf, if the data hold one
    return float(value), grad[:p].copy(), float(grad[p])


# ---------------------------------------------------------------- minimize


def minimize(
    fun: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], Any],
    x0: Any,
    *,
    optimizer: str = "gd",
    lr: float = 0.1,
    schedule: str = "constant",
    max_iter: int = 1000,
    tol: float = 1e-6,
    backend: str = "auto",
    record: str | None = "loss",
    **hyper: float,
) -> MinimizeResult:
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
    ospec, sspec, _, hp, sched_hp = _rule_options(optimizer, schedule, hyper)
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
        done, code, fval = be.minimize_run(
            fun,
            grad,
            x,
            ospec.code,
            hp,
            state,
            sspec.code,
            lr0,
            sched_hp,
            max_iter,
            tol,
            hist_f,
            hist_x,
        )
    if code == 2:
        warnings.warn(
            f"minimize diverged in iteration {done + 1} (non-finite value or parameters); "
            f"returning the last finite x. Use a smaller lr (was {lr0:.3g}).",
            DivergenceWarning,
            stacklevel=2,
        )
        fval = float(fun(x.copy()))
    hist = History(
        loss=hist_f[: done + 1] if record is not None else np.empty(0),
        params=hist_x[: done + 1].copy() if record == "params" else None,
    )
    return MinimizeResult(
        x=x,
        fun=float(fval),
        n_iter=done,
        converged=code == 1,
        status=STATUS[code],
        history=hist,
        backend=bname,
        elapsed=time.perf_counter() - t_start,
    )


def _minimize_backend(backend: str, fun: Any, grad: Any) -> tuple[str, Any]:
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
