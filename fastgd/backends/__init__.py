"""Backends: one module per backend, the same functions with the same signatures.

The kernel interface
--------------------
Every backend module (``_numpy`` is the reference, ``_numba`` and ``_cython``
mirror it) exposes these functions.  The Python layer (``fastgd.api``) has
already validated and coerced everything: arrays are C-contiguous, of one
float dtype (float32 or float64), finite, and of matching shapes.  Kernels
never check.

Codes are the registry's (``fastgd._registry``): ``model`` 0 linear / 1 poly,
``loss`` 0 mse / 1 huber, ``opt`` 0 gd, 1 momentum, 2 nesterov, 3 adagrad,
4 rmsprop, 5 adam, ``sched`` 0 constant, 1 invscaling, 2 exponential.

Shapes and dtypes (``dt`` is the data dtype):

* ``X``      (n, p) dt.  For the poly model ``X`` is the 1-D ``x`` as (n, 1)
  and ``p`` is the degree.
* ``basis``  float64 (2,): ``[shift, scale]``; the poly model's input is
  ``u = (X[i, 0] - shift) * scale``, formed in the data dtype.  Ignored by the
  linear model.  The public wrappers also take a float ``s`` for ``[0, s]``.
* ``y``      (n,) dt.
* ``theta``  (p + 1,) dt: ``coef`` then the intercept.  Updated in place.
* ``l2w``    dt, the penalty ``0.5 * theta @ Q @ theta``: either (p + 1,)
  diagonal weights (``Q = diag(l2w)``, last one 0), or ((p + 1)**2,) a dense
  symmetric ``Q`` in row-major order (the polynomial model in a centred
  basis, whose user-coefficient penalty is not diagonal).  Its gradient is
  ``l2w * theta`` (product in the data dtype) or ``Q @ theta`` (float64,
  each row summed over k ascending).
* ``pre``    float64, 2-D, the preconditioner of ``run`` (see ``_numpy.step``):
  the update rules act on internal parameters ``z`` with ``theta = T z``.
  ``(0, p + 1)`` or None: none.  ``(2, p + 1)``: centre and scale, rows
  ``a``, ``b``: ``theta_j = a_j z_j`` (j < p), ``theta_p = z_p - sum_j b_j z_j``.
  ``(2(p + 1), p + 1)``: dense, ``T`` then ``T^-1``.
* ``grad``   (p + 1,) dt output.
* ``state``  (2, p + 1) dt optimizer slots (velocity / squares / Adam m, v).
* ``hp``     float64 [momentum, beta1, beta2, eps, rho]  (``HP_ORDER``).
* ``sched_hp`` float64 [power_t, gamma] (``SCHED_HP_ORDER``), optionally a
  third entry ``offset``: the schedule counts epochs from it (a fit that
  continues an earlier one passes the epochs already run).
* ``w``      None or (n,) dt: sample weights, finite and >= 0, passed
  normalised to mean 1 by the Python layer.  Every per-row term is multiplied
  by ``w_i`` (in the data dtype) and sums are still divided by the number of
  rows, so the objective is ``sum_i w_i rho(r_i) / sum_i w_i`` and a
  mini-batch's gradient an unbiased estimate of the full one.  None is the
  unweighted code path, unchanged.
* ``order``  (n_epochs, n) int32 or int64: the sample order of each epoch,
  drawn in Python; (0, 0) for full batch.
* ``hist_loss`` float64 (max_iter + 1,) or (0,); ``hist_params`` dt
  (max_iter + 1, p + 1) or (0, p + 1).  Indexed by absolute epoch.

Functions:

``all_finite(a) -> bool``
    Whether the C-contiguous float array ``a`` (any shape) holds no NaN or
    +-inf: one read, run by the validation layer before any other kernel.
``value_range(a) -> (min, max)``
    Of a C-contiguous 1-D float array in one read; NaN for both when ``a``
    holds a NaN.  Maps the polynomial model's x onto [-1, 1].
``objective_grad(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w=None) -> float``
    The objective ``mean(rho(r)) + penalty`` and its gradient
    ``mean(psi(r) * dpred/dtheta) + penalty gradient`` in one pass over the rows;
    ``grad[p] = 0`` when ``fit_icpt`` is 0.  Sums over rows accumulate in
    float64; the result is stored in ``dt``.
``objective(model, loss, X, y, theta, basis, delta, l2w, w=None) -> float``
    The objective alone.
``lsq_stats(model, X, y, basis, p, w=None) -> (G, c, S)``
    ``A^T W A``, ``A^T W y``, ``y^T W y`` (float64 sums, ``W = diag(w)``) for the design rows
    ``[features, 1]``: the statistics of the preconditioner and ``lr="auto"``.
``moments(X, y, x0, y0, full, w=None) -> (s, G, sxy, sy, syy)``
    Float64 sums over the rows of ``a_i = X[i] - x0`` and ``b_i = y[i] - y0``
    (differences in float64; ``x0`` a float64 (p,) origin, e.g. the first
    row, so that offsets far from 0 do not cancel the second moments away):
    ``s = sum w_i a_i``, ``G = sum w_i a_i a_i^T`` ((p, p) when ``full``, else
    its diagonal (p,)), ``sxy = sum w_i a_i b_i``, ``sy = sum w_i b_i``,
    ``syy = sum w_i b_i**2`` (``w_i = 1`` when ``w`` is None).  One read of
    ``X``: the linear model's preconditioner and ``lr="auto"``.
``max_row_norm2(model, X, basis, pre, fit_icpt, w=None) -> float``
    ``max_i w_i |T^T a_i|**2`` over the design rows ``a_i = [features, 1]``
    in the kernel's coordinates (last entry 0 when ``fit_icpt`` is false;
    poly: ``u**1 .. u**p`` with ``p = pre.shape[1] - 1``), ``T`` the
    preconditioner of ``pre`` (``(0, p + 1)``: the identity).  NaN when a
    row gives NaN.  One read of ``X``: the per-sample curvature of the step
    size of stochastic batches.
``batch_grad(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w=None)``
    The gradient over rows ``idx[start:stop]`` (mean over those rows + penalty).
``update(opt, theta, grad, state, lr, hp, t)``
    One step of an update rule in place; ``t`` is the 1-based step count
    (Adam's bias correction).
``run(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, opt, hp, state, t0,
      sched, lr0, sched_hp, epoch0, n_epochs, batch_size, order, tol, need_obj,
      grad, f0, hist_loss, hist_params, pre=None, stats=None, w=None) -> (n_done, status, t, f)``
    Epochs ``epoch0 .. epoch0 + n_epochs - 1`` of a fit, exactly as
    ``_numpy.run`` spells it out (read that one: it is the specification).
    ``batch_size`` 0 is full batch.  ``stats``: ``lsq_stats`` of the same
    arrays and basis, already computed, for the full-batch MSE shortcut of the
    compiled backends (which then skip their own pass); the reference ignores
    it.  ``status`` is 0 (all epochs ran),
    1 (converged) or 2 (diverged; ``theta`` holds the last finite parameters).
    ``f`` is the objective at the returned ``theta``, except for stochastic
    batches without ``need_obj`` (no objective pass), which ignore ``f0`` and
    return the *progressive loss* of the last completed epoch:
    ``sum_i w_i rho(r_i) / n`` over the epoch's rows, each residual ``r_i``
    the one computed for the step that uses row i (before that step; a
    mini-batch's rows at the batch's parameters), summed in float64 in
    visiting order, no penalty; NaN when no epoch completed.  Every
    stochastic code path sums it (single samples, fused or staged, and
    mini-batches): one add per row, on residuals the steps compute anyway,
    and the parameters are the same bits as without it.  It never decides
    divergence.  Since an epoch visits every row once, a finite progressive
    loss with finite parameters proves that every value of ``X``, ``y`` (and
    ``w``) is finite -- rho(inf) is inf, so it covers an infinite ``y``
    under Huber's clipped slope, which keeps the parameters finite -- and
    ``fastgd._loop.run_epochs`` then skips the objective pass that would
    prove it (the objective itself is computed on first read).
``minimize_run(fun, grad, x, opt, hp, state, sched, lr0, sched_hp, max_iter, tol,
               hist_f, hist_x) -> (n_done, status, fval)``
    Optional.  The ``minimize`` loop for user functions.

The registry below maps backend names to modules; ``resolve`` turns ``"auto"``
or a name into a module, or a clear error.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: name -> (module, what to install when it cannot be imported)
_BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("fastgd.backends._numpy", "numpy is required"),
    "numba": ("fastgd.backends._numba", "install numba: pip install 'fastgd[numba]'"),
    "cython": (
        "fastgd.backends._cython",
        (
            "the Cython extension was not built: reinstall fastgd from source with a C "
            "compiler (pip install --force-reinstall --no-cache-dir fastgd)"
        ),
    ),
}

#: ``backend="auto"`` takes the first available of these (compiled first).
#: Cython needs no JIT compilation, and it is the faster compiled backend, or
#: level, on every benchmark problem (``fastgd bench``, bench/results.txt):
#: loss_and_grad, full batches, single-sample SGD at every size, mini-batches,
#: polynomial and tiny fits.
AUTO_ORDER: tuple[str, ...] = ("cython", "numba", "numpy")
#: Size of ``X`` from which the compiled backends may stage the rows of
#: stochastic epochs (``_numba.STAGE_MIN_BYTES``, ``_cython.STAGE_MIN_BYTES``).
LARGE_SGD_BYTES = 1 << 26

_loaded: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}


def backend_names() -> list[str]:
    """Every backend fastgd knows, available here or not."""
    return list(_BACKENDS)


def _load(name: str) -> ModuleType | None:
    if name in _loaded:
        return _loaded[name]
    if name in _failed:
        return None
    try:
        mod = importlib.import_module(_BACKENDS[name][0])
    except ImportError as exc:  # an optional dependency or the extension is missing
        _failed[name] = str(exc)
        return None
    _loaded[name] = mod
    return mod


def available_backends() -> list[str]:
    """Names of the backends that work on this machine.

    Returns
    -------
    list of str
        A subset of ``["numpy", "numba", "cython"]``, in that order.

    Examples
    --------
    >>> import fastgd
    >>> "numpy" in fastgd.available_backends()
    True
    """
    return [name for name in _BACKENDS if _load(name) is not None]


def resolve(name: str) -> tuple[str, ModuleType]:
    """Turn ``"auto"`` or a backend name into ``(name, module)``.

    ``"auto"`` is the first available of ``AUTO_ORDER``, for every job: a
    compiled backend that never waits for a JIT when Cython is built.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the available backends).
    ImportError
        For a known backend that cannot be used here (says what to install).
    """
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, got {type(name).__name__}")
    if name == "auto":
        for cand in AUTO_ORDER:
            mod = _load(cand)
            if mod is not None:
                return cand, mod
        raise ImportError("no backend available")  # pragma: no cover - numpy always is
    if name not in _BACKENDS:
        raise ValueError(
            f"backend must be 'auto' or one of {backend_names()}, got {name!r} "
            f"(available here: {available_backends()})"
        )
    mod = _load(name)
    if mod is None:
        raise ImportError(
            f"backend {name!r} is not available: {_BACKENDS[name][1]} ({_failed.get(name, '')})"
        )
    return name, mod
