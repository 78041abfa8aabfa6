"""``GDRegressor``: fastgd as a scikit-learn estimator.

A thin adapter: ``__init__`` stores its arguments; ``fit`` and
``partial_fit`` validate with scikit-learn's helpers, convert the parameters
once (:meth:`GDRegressor._fit_options`) into a call of :func:`fastgd.fit`,
and store trailing-underscore attributes.  ``partial_fit`` continues the
optimizer through :class:`fastgd.FitState`, exactly as a streaming user of
:func:`fastgd.fit` would.  Imported on first use of ``fastgd.GDRegressor``
(``import fastgd`` does not import scikit-learn).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _registry as reg
from ._dask import is_dask_array
from ._precondition import PRECONDITIONS
from ._result import FitResult
from .api import fit as _fit
from .backends import backend_names

__all__ = ["GDRegressor"]

_UNIT = Interval(Real, 0, 1, closed="left")  # momentum, betas, rho: [0, 1)


class GDRegressor(RegressorMixin, BaseEstimator):
    """Linear or polynomial regression by gradient descent, compiled (fastgd).

    Minimizes ``sum_i w_i rho(pred_i - y_i) / sum_i w_i + (l2/2) ||coef||^2``
    with any of fastgd's optimizers, full batch or mini-batches, in a
    well-conditioned basis by default.  Every parameter means what it means
    in :func:`fastgd.fit`; this class only adapts it to scikit-learn.

    Parameters
    ----------
    loss : {"mse", "huber"}, default="mse"
    delta : float, default=1.0
        Huber threshold.
    degree : int or None, default=None
        Fit a polynomial of this degree in the single column of ``X`` (``X``
        must have exactly one column); None: a linear model in all columns.
    fit_intercept : bool, default=True
    l2 : float, default=0.0
        Ridge penalty ``(l2/2) ||coef||^2``.
    optimizer : {"gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"}, default="gd"
    lr : float or "auto", default="auto"
        Initial step size; "auto" is safe for every optimizer and batching
        (see :func:`fastgd.fit`).
    schedule : {"constant", "invscaling", "exponential"}, default="constant"
    batch_size : int or None, default=None
        None: full batch; 1: SGD; k: mini-batches of k rows, shuffled every
        epoch from ``random_state``.
    max_iter : int, default=1000
        Maximum number of epochs of :meth:`fit`.
    tol : float, default=1e-6
        Stop when an epoch moves no parameter by more than
        ``tol * max(1, max|z|)`` (see :func:`fastgd.fit`); 0 runs every epoch.
    precondition : {"auto", "none"}, default="auto"
    random_state : int, RandomState, Generator or None, default=None
        Seeds the per-epoch sample order (mini-batches).
    backend : {"auto", "numpy", "numba", "cython"}, default="auto"
    warm_start : bool, default=False
        ``fit`` continues the previous fit: from its coefficients, and with
        its optimizer state, step counter, schedule, preconditioner and step
        size when optimizer, loss, model, ``fit_intercept`` and ``l2`` are
        unchanged (otherwise from its coefficients only, with a fresh
        optimizer).
    momentum, beta1, beta2, rho, power_t, gamma : float
        The optimizer's and schedule's hyperparameters (defaults as in
        :func:`fastgd.fit`); those the chosen optimizer and schedule do not
        use are ignored.
    eps : float or None, default=None
        None: the optimizer's default (1e-8; AdaGrad 1e-10).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (degree,)
        Coefficients (for ``degree``: of x**1 .. x**degree).
    intercept_ : float
    n_iter_ : int
        Epochs run by the last ``fit`` or ``partial_fit`` call.
    t_ : int
        Update steps taken since the optimizer started (all calls).
    loss_curve_ : ndarray
        The objective after each epoch; ``partial_fit`` appends to it.
    status_ : str
        ``"converged"``, ``"max_iter"``, ``"diverged"`` (coefficients are the
        last finite ones; a ``fastgd.DivergenceWarning`` was issued),
        ``"interrupted"``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When ``X`` had string column names (a pandas DataFrame).
    result_ : fastgd.FitResult
        The last call's result (``result_.state`` continues the optimizer).

    Notes
    -----
    ``partial_fit`` runs one epoch over the rows it is given and continues
    the optimizer (slots, step count, schedule) from the previous call; for
    full batches, ``k`` calls on the same rows give exactly the coefficients
    of ``fit`` with ``max_iter=k, tol=0``.  The preconditioner and
    ``lr="auto"`` are fixed by the first call from its rows: later rows are
    fitted correctly whatever their scale, but rows on a very different scale
    converge more slowly and may, with a large step, diverge
    (``status_ == "diverged"``, reported by a warning).  Give the first call a
    representative chunk, or scale the data first (``StandardScaler``).

    A fit that stops at ``max_iter`` with ``tol > 0`` issues
    ``sklearn.exceptions.ConvergenceWarning``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import GDRegressor
    >>> X = np.arange(10.0).reshape(-1, 1); y = 3 * X[:, 0] - 1
    >>> est = GDRegressor(tol=1e-10).fit(X, y)
    >>> np.round(est.coef_, 6).tolist(), round(est.intercept_, 6)
    ([3.0], -1.0)
    >>> round(est.score(X, y), 6)
    1.0
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "loss": [StrOptions(set(reg.LOSSES))],
        "delta": [Interval(Real, 0, None, closed="neither")],
        "degree": [Interval(Integral, 1, None, closed="left"), None],
        "fit_intercept": ["boolean"],
        "l2": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(reg.optimizer_names()))],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "schedule": [StrOptions(set(reg.SCHEDULES))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "precondition": [StrOptions(set(PRECONDITIONS))],
        "random_state": ["random_state", np.random.Generator],
        "backend": [StrOptions({"auto", *backend_names()})],
        "warm_start": ["boolean"],
        "momentum": [_UNIT],
        "beta1": [_UNIT],
        "beta2": [_UNIT],
        "eps": [Interval(Real, 0, None, closed="neither"), None],
        "rho": [_UNIT],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "gamma": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
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
        precondition: str = "auto",
        random_state: Any = None,
        backend: str = "auto",
        warm_start: bool = False,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float | None = None,
        rho: float = 0.99,
        power_t: float = 0.25,
        gamma: float = 0.99,
    ):
        self.loss = loss
        self.delta = delta
        self.degree = degree
        self.fit_intercept = fit_intercept
        self.l2 = l2
        self.optimizer = optimizer
        self.lr = lr
        self.schedule = schedule
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.tol = tol
        self.precondition = precondition
        self.random_state = random_state
        self.backend = backend
        self.warm_start = warm_start
        self.momentum = momentum
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.rho = rho
        self.power_t = power_t
        self.gamma = gamma

    # ------------------------------------------------------------ the one conversion

    def _fit_options(self) -> dict[str, Any]:
        """The keywords of :func:`fastgd.fit` these parameters mean.

        Hyperparameters reach ``fit`` only when the optimizer or the schedule
        uses them (``eps=None``: the optimizer's registry default).
        """
        ospec = reg.optimizer_spec(self.optimizer)
        used = set(ospec.hyper) | set(reg.SCHEDULES[self.schedule].hyper)
        hyper = {k: getattr(self, k) for k in reg.HYPER_NAMES if k in used}
        if hyper.get("eps", 0.0) is None:
            del hyper["eps"]
        return dict(
            loss=self.loss,
            delta=self.delta,
            degree=self.degree,
            fit_intercept=self.fit_intercept,
            l2=self.l2,
            optimizer=self.optimizer,
            lr=self.lr,
            schedule=self.schedule,
            batch_size=self.batch_size,
            precondition=self.precondition,
            backend=self.backend,
            record="loss",
            **hyper,
        )

    def _signature(self, n_params: int) -> tuple:
        """``FitState.signature`` of a fit with these parameters."""
        return (
            reg.optimizer_spec(self.optimizer).name,
            self.loss,
            int(self.degree is not None),
            n_params,
            bool(self.fit_intercept),
            float(self.l2),
        )

    def _seed(self) -> np.random.Generator:
        """The generator of the sample orders, from ``random_state`` (sklearn's rules)."""
        if isinstance(self.random_state, np.random.Generator):
            return self.random_state
        rs = check_random_state(self.random_state)
        return np.random.default_rng(rs.randint(np.iinfo(np.int32).max))

    def _data(self, X: Any, y: Any, sample_weight: Any, reset: bool) -> tuple[Any, Any, Any]:
        if is_dask_array(X):
            # dask arrays stay on their cluster: fastgd.fit validates them (lazily)
            return self._dask_data(X, y, sample_weight, reset)
        X, y = validate_data(
            self, X, y, reset=reset, dtype=[np.float64, np.float32], y_numeric=True
        )
        if self.degree is not None and X.shape[1] != 1:
            raise ValueError(
                f"degree={self.degree} fits a polynomial in one variable: X must "
                f"have exactly one column, got {X.shape[1]}"
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        x = X[:, 0] if self.degree is not None else X
        return x, y, sample_weight

    def _dask_data(self, X: Any, y: Any, sample_weight: Any, reset: bool) -> tuple[Any, Any, Any]:
        """``_data`` for a dask ``X``: only its shape is checked here (nothing is computed)."""
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D array, got a {X.ndim}-D dask array with shape {X.shape}"
            )
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != getattr(self, "n_features_in_", X.shape[1]):
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        if self.degree is not None and X.shape[1] != 1:
            raise ValueError(
                f"degree={self.degree} fits a polynomial in one variable: X must "
                f"have exactly one column, got {X.shape[1]}"
            )
        return (X[:, 0] if self.degree is not None else X), y, sample_weight

    def _store(self, res: FitResult, append: bool) -> None:
        self.result_ = res
        self.coef_ = res.coef
        self.intercept_ = float(res.intercept)
        self.n_iter_ = res.n_iter
        self.t_ = res.state.step if res.state is not None else res.info.get("steps", 0)
        self.status_ = res.status
        curve = res.history.loss[1:]
        self.loss_curve_: np.ndarray = np.r_[self.loss_curve_, curve] if append else curve.copy()

    # ------------------------------------------------------------ scikit-learn API

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> GDRegressor:
        """Fit the model (up to ``max_iter`` epochs).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights (see :func:`fastgd.fit`).

        Returns
        -------
        self : GDRegressor

        Examples
        --------
        >>> import numpy as np
        >>> from fastgd import GDRegressor
        >>> X = np.array([[0.0], [1.0], [2.0]]); y = np.array([1.0, 3.0, 5.0])
        >>> est = GDRegressor(tol=1e-12).fit(X, y, sample_weight=[1, 2, 1])
        >>> np.round(est.predict([[3.0]]), 6).tolist()
        [7.0]
        """
        warm = self.warm_start and hasattr(self, "result_")
        x, y, sample_weight = self._data(X, y, sample_weight, reset=not warm)
        opts = self._fit_options()
        start: dict[str, Any] = {}
        if warm:
            state = self.result_.state
            if state is not None and state.signature == self._signature(self.coef_.shape[0]):
                start["state"] = state
            elif self.coef_.shape[0] == (self.degree or x.shape[1]):
                start = dict(coef_init=self.coef_, intercept_init=self.intercept_)
        self._rng = self._seed()
        res = _fit(
            x,
            y,
            sample_weight=sample_weight,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=self._rng,
            **start,
            **opts,
        )
        if res.status == "max_iter" and self.tol > 0:
            warnings.warn(
                f"GDRegressor stopped at max_iter={self.max_iter} epochs before "
                f"reaching tol={self.tol}; increase max_iter, or lr, or scale the "
                "data",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._store(res, append=False)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> GDRegressor:
        """One epoch over the given rows, continuing the optimizer of the previous call.

        The optimizer's state, step counter and schedule go on from the
        previous ``fit``/``partial_fit``; the preconditioner and step size are
        those of the first call (see Notes of :class:`GDRegressor`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self : GDRegressor

        Examples
        --------
        >>> import numpy as np
        >>> from fastgd import GDRegressor
        >>> X = np.arange(6.0).reshape(-1, 1); y = 2 * X[:, 0]
        >>> est = GDRegressor(optimizer="adam")
        >>> for _ in range(500):
        ...     est = est.partial_fit(X, y)
        >>> est.t_, round(float(est.coef_[0]), 3)
        (500, 2.0)
        """
        first = not hasattr(self, "result_")
        x, y, sample_weight = self._data(X, y, sample_weight, reset=first)
        opts = self._fit_options()
        if first:
            self._rng = self._seed()
            start: dict[str, Any] = {}
        else:
            state = self.result_.state
            if state is None or state.signature != self._signature(self.coef_.shape[0]):
                raise ValueError(
                    "partial_fit cannot continue a fit made with other optimizer, "
                    "loss, degree, fit_intercept or l2; call fit first"
                )
            start = {"state": state}
        if not hasattr(self, "_rng"):  # e.g. an estimator fitted before being pickled
            self._rng = self._seed()
        res = _fit(
            x, y, sample_weight=sample_weight, max_iter=1, tol=0.0, seed=self._rng, **start, **opts
        )
        self._store(res, append=not first)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of the fitted model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)

        Examples
        --------
        >>> import numpy as np
        >>> from fastgd import GDRegressor
        >>> est = GDRegressor(degree=2, tol=1e-12, max_iter=5000)
        >>> x = np.linspace(-1, 1, 21).reshape(-1, 1)
        >>> est = est.fit(x, 1 + x[:, 0] ** 2)
        >>> np.round(est.predict([[2.0]]), 4).tolist()
        [5.0]
        """
        check_is_fitted(self)
        if is_dask_array(X):  # a lazy prediction, chunk by chunk on the cluster
            self._dask_data(X, None, None, reset=False)
            return X.rechunk({1: -1}).map_blocks(self.predict, drop_axis=1, dtype=X.dtype)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        coef = self.coef_.astype(X.dtype, copy=False)
        if self.degree is None:
            return X @ coef + X.dtype.type(self.intercept_)
        return np.polynomial.polynomial.polyval(X[:, 0], np.r_[self.intercept_, coef]).astype(
            X.dtype, copy=False
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
