"""Result objects returned by ``fit`` and ``minimize``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._dask import is_dask_array


class DivergenceWarning(RuntimeWarning):
    """A fit or minimization stopped because the objective or parameters became non-finite."""


@dataclass
class History:
    """What was recorded per epoch (index 0 is the starting point).

    Attributes
    ----------
    loss : ndarray of float64, shape (n_iter + 1,)
        The objective before the first epoch and after each epoch; empty when
        ``record=None``.
    params : ndarray, shape (n_iter + 1, n_params) or None
        The parameters at the same points (``record="params"``); for ``fit``
        the columns are ``coef`` followed by the intercept.
    """

    loss: np.ndarray = field(default_factory=lambda: np.empty(0))
    params: np.ndarray | None = None


@dataclass
class FitState:
    """Where a fit stopped, to continue it: ``fastgd.fit(X, y, state=res.state)``.

    Streaming and ``partial_fit``: every call continues the optimizer exactly
    where the previous one stopped -- the parameters, the optimizer's slots
    (momentum velocity, AdaGrad/RMSprop squares, Adam's moments), the step
    counter (Adam's bias correction) and the schedule's epoch count -- in the
    coordinates and with the step size chosen by the first call.  Treat it as
    opaque; it is copied, never modified, by the call that continues it, and
    it pickles.

    Attributes
    ----------
    theta : ndarray
        Parameters in the coordinates the kernels run in (``coef`` then the
        intercept, in the preconditioned basis of ``coords``).
    slots : ndarray, shape (2, n_params)
        The optimizer's per-coordinate state.
    step : int
        Update steps taken so far.
    epoch : int
        Epochs run so far (the schedule continues from here).
    lr : float
        The initial step size of the schedule (``lr="auto"`` resolved once).
    coords : object
        The preconditioner and basis (fixed by the first call).
    signature : tuple
        ``(optimizer, loss, model, n_params, fit_intercept, l2)``: a fit
        continuing this state must match it.
    """

    theta: np.ndarray
    slots: np.ndarray
    step: int
    epoch: int
    lr: float
    coords: Any
    signature: tuple


@dataclass
class FitResult:
    """The outcome of :func:`fastgd.fit`.

    Attributes
    ----------
    coef : ndarray
        Fitted coefficients (for ``degree=k``: ascending powers x**1 .. x**k).
    intercept : float
    n_iter : int
        Epochs completed.
    converged : bool
    status : str
        ``"converged"``, ``"max_iter"``, ``"diverged"``, ``"callback"`` or ``"interrupted"``.
    objective : float
        Final value of the objective (mean loss + l2 penalty).  A stochastic
        fit with ``record=None`` has no use for it, so it is computed (one pass
        over the data given to ``fit``) on first access; until then the result
        refers to those arrays.
    history : History
    backend : str
    elapsed : float
        Wall time of the ``fit`` call in seconds.
    lr : float
        The initial learning rate used (the resolved value when ``lr="auto"``).
    degree : int or None
    precondition : str
        The coordinates the fit ran in: ``"auto"`` (the well-conditioned basis)
        or ``"none"`` (see :func:`fastgd.fit`).
    info : dict
        Details: the polynomial ``basis`` ``[shift, scale]``, optimizer, loss,
        batch size and the number of update ``steps``; for dask arrays also
        ``dask_chunks`` and ``persisted`` (whether the data were held in the
        cluster's memory for the fit, or read from their source in every pass).
    state : FitState or None
        What ``fit(..., state=...)`` needs to continue this fit.
    """

    coef: np.ndarray
    intercept: float
    n_iter: int
    converged: bool
    status: str
    objective: float
    history: History
    backend: str
    elapsed: float
    lr: float = float("nan")
    degree: int | None = None
    precondition: str = "none"
    info: dict[str, Any] = field(default_factory=dict)
    state: FitState | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        self.objective  # noqa: B018 - resolve a deferred objective: pickles hold no data
        return self.__dict__.copy()

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the fitted model.

        Parameters
        ----------
        X : array_like
            (n, n_features) for a linear fit, 1-D x for a polynomial fit.

        Returns
        -------
        ndarray
            (A dask array, computed lazily chunk by chunk, for a dask ``X``.)

        Examples
        --------
        >>> import numpy as np, fastgd
        >>> X = np.arange(5.0).reshape(-1, 1)
        >>> res = fastgd.fit(X, 2 * X[:, 0] + 1, tol=1e-12, max_iter=5000)
        >>> np.round(res.predict(np.array([[10.0]])), 6)
        array([21.])
        """
        if is_dask_array(X):  # lazily, chunk by chunk (where the data live)
            if self.degree is None:
                if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
                    raise ValueError(f"X must have shape (n, {self.coef.shape[0]}), got {X.shape}")
                return X.rechunk({1: -1}).map_blocks(
                    self.predict, drop_axis=1, dtype=self.coef.dtype
                )
            return X.map_blocks(self.predict, dtype=self.coef.dtype)
        Xa = np.asarray(X, dtype=self.coef.dtype)
        if self.degree is None:
            if Xa.ndim != 2 or Xa.shape[1] != self.coef.shape[0]:
                raise ValueError(f"X must have shape (n, {self.coef.shape[0]}), got {Xa.shape}")
            return Xa @ self.coef + self.coef.dtype.type(self.intercept)
        if Xa.ndim != 1:
            raise ValueError(f"X must be 1-D for a polynomial fit, got shape {Xa.shape}")
        return np.polynomial.polynomial.polyval(Xa, np.r_[self.intercept, self.coef]).astype(
            self.coef.dtype, copy=False
        )


class _Deferred:
    """A float attribute that may be given as a callable, called on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, objtype: type | None = None) -> float:
        if obj is None:
            return math.nan
        value = obj.__dict__[self.slot]
        if callable(value):
            value = float(value())
            obj.__dict__[self.slot] = value  # the callable (and the data it holds) is released
        return value

    def __set__(self, obj: Any, value: float | Callable[[], float]) -> None:
        obj.__dict__[self.slot] = value


_objective = _Deferred()
_objective.__set_name__(FitResult, "objective")
FitResult.objective = _objective  # type: ignore[assignment]


@dataclass
class MinimizeResult:
    """The outcome of :func:`fastgd.minimize`.

    Attributes
    ----------
    x : ndarray
    fun : float
    n_iter : int
    converged : bool
    status : str
    history : History
        ``loss`` holds ``fun`` per iteration, ``params`` the path of ``x``.
    backend : str
        The backend that ran the loop (see :func:`fastgd.minimize`).
    elapsed : float
        Wall time of the ``minimize`` call in seconds.
    """

    x: np.ndarray
    fun: float
    n_iter: int
    converged: bool
    status: str
    history: History
    backend: str = "numpy"
    elapsed: float = 0.0
