"""A validated fitting problem: the data, the model, the loss, the penalty and the backend.

``build_problem`` is the one place that turns the user's data arguments into
what the kernels need (C-contiguous float arrays, the model code, the degree);
everything downstream (the preconditioner, the step size, the epoch loop)
reads a :class:`Problem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _registry as reg, _validation as val
from ._dask import is_dask_array
from .backends import resolve


@dataclass
class Problem:
    """Data and model of one fit, validated.

    ``X`` is (n, d) for the linear model and the 1-D ``x`` viewed as (n, 1) for
    the polynomial one; ``p`` is the number of coefficients (d or the degree).
    """

    X: np.ndarray
    y: np.ndarray
    model: int
    p: int
    dt: type[np.floating[Any]]
    loss: reg.LossSpec
    delta: float
    l2: float
    fit_icpt: bool
    degree: int | None
    bname: str
    #: A backend module, or fastgd._dask.ChunkedKernels (the same functions, chunk by chunk).
    be: ModuleType | Any
    #: Sample weights normalised to mean 1 (data dtype), or None: unweighted.
    w: np.ndarray | None = None
    #: The NaN/inf scan was left to the first pass over the data (``scan``).
    unscanned: bool = False
    #: What ``scan``'s messages add for X and y (a conversion to float32).
    notes: tuple[str, str] = ("", "")

    @property
    def n(self) -> int:
        return self.X.shape[0]

    def weights(self, lo: int, hi: int) -> np.ndarray | None:
        """The weights of rows ``lo:hi`` in float64, or None when unweighted."""
        return None if self.w is None else self.w[lo:hi].astype(np.float64)

    def scan(self) -> None:
        """The NaN/inf scan of X and y: the named ``ValueError`` at the first bad value."""
        if getattr(self.be, "CHUNKED", False):  # a dask array: the chunks scan themselves
            self.be.scan()
            self.unscanned = False
            return
        val.check_finite("X", self.X[:, 0] if self.model == 1 else self.X, self.notes[0])
        val.check_finite("y", self.y, self.notes[1])
        self.unscanned = False


def check_loss(loss: Any, delta: Any) -> tuple[reg.LossSpec, float]:
    """The loss's registry entry and a validated Huber ``delta``."""
    lspec = reg.LOSSES.get(loss) if isinstance(loss, str) else None
    if lspec is None:
        raise ValueError(f"loss must be one of {list(reg.LOSSES)}, got {loss!r}")
    return lspec, val.as_float("delta", delta, low=0.0, low_open=True)


def build_problem(
    X: Any,
    y: Any,
    *,
    loss: str,
    delta: float,
    degree: int | None,
    l2: float,
    fit_intercept: bool,
    backend: str,
    check_finite: bool,
    defer_scan: bool = False,
    sample_weight: Any = None,
) -> Problem:
    """Validate the data arguments and resolve the backend.

    Raises the named ``ValueError``/``TypeError`` of ``fastgd._validation`` for
    bad input, before any kernel runs; never modifies or copies more than the
    coercion to a C-contiguous float array needs.  ``defer_scan``: the caller's
    first pass over the data proves them finite (sums of every value are
    finite only if every value is) and calls :meth:`Problem.scan` otherwise,
    so the NaN/inf check costs no pass of its own.  ``sample_weight``: see
    :func:`fastgd._validation.check_sample_weight`.
    """
    lspec, delta = check_loss(loss, delta)
    if degree is not None:
        degree = val.as_int("degree", degree, 1)
    l2 = val.as_float("l2", l2, low=0.0)
    fit_icpt = val.as_bool("fit_intercept", fit_intercept)
    bname, be = resolve(backend)
    check_finite = val.as_bool("check_finite", check_finite)
    if any(is_dask_array(a) for a in (X, y, sample_weight)):
        return _chunked_problem(
            X, y, lspec, delta, degree, l2, fit_icpt, bname, check_finite, sample_weight
        )
    Xc, yc, model, dt = val.check_data(X, y, degree, check_finite and not defer_scan, be.all_finite)
    p = degree if model == 1 and degree is not None else Xc.shape[1]
    w = val.check_sample_weight(sample_weight, Xc.shape[0], dt)
    notes = (val.conversion_note(X, dt), val.conversion_note(y, dt))
    return Problem(
        Xc,
        yc,
        model,
        p,
        dt,
        lspec,
        delta,
        l2,
        fit_icpt,
        degree,
        bname,
        be,
        w=w,
        unscanned=check_finite and defer_scan,
        notes=notes,
    )


def _chunked_problem(
    X: Any,
    y: Any,
    lspec: reg.LossSpec,
    delta: float,
    degree: int | None,
    l2: float,
    fit_icpt: bool,
    bname: str,
    check_finite: bool,
    sample_weight: Any,
) -> Problem:
    """A problem on dask arrays: the same fields, the data on the cluster.

    The kernels (``Problem.be``) are ``fastgd._dask.ChunkedKernels`` running
    backend ``bname`` on every chunk.  The NaN/inf check is always the first
    pass's (a scan of its own would read the data once more).
    """
    from . import _dask

    Xd, yd, model, dt, w = _dask.chunked_data(X, y, degree, sample_weight)
    notes = (val.conversion_note(X, dt), val.conversion_note(y, dt))
    be = _dask.chunked_kernels(bname, Xd, yd, w, model, notes)
    p = degree if model == 1 and degree is not None else Xd.shape[1]
    return Problem(
        be.X,
        be.y,
        model,
        p,
        dt,
        lspec,
        delta,
        l2,
        fit_icpt,
        degree,
        bname,
        be,
        w=be.w,
        unscanned=check_finite,
        notes=notes,
    )
