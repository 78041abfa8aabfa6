"""The benchmark problems and their sizes, defined once.

Both benchmark entry points read from here: the pytest-benchmark suite in
``bench/`` and the ``fastgd bench`` command (``fastgd._bench``).  A *problem*
is one thing to compute (say, the MSE objective and gradient of problem P in
float64); its *cases* are the ways of computing it that are compared: every
fastgd backend, plus outside anchors (scikit-learn, ``np.polyfit``).  The
first case of a problem is its reference (the numpy backend, or the plain
Python gradient for ``minimize``); speedups are relative to it.

Sizes scale with one setting, the ``FASTGD_BENCH_SCALE`` environment variable
or ``fastgd bench --scale``: ``full`` (the default: P = 1,000,000 x 100
float64, polynomial on 10,000,000 points), ``small``, ``tiny`` (seconds, for
CI), or a number in (0, 1] that multiplies the full row counts.

Where the numpy reference would take minutes at full size, its case times a
fraction of the work and multiplies the time by ``factor`` (stated in the
case's ``note``):

* one shuffled SGD epoch: the reference runs the epoch on the first
  ``sgd_ref_rows`` rows; the cost of an SGD epoch is linear in the number of
  rows, so the time is extrapolated per row;
* polynomial fit to ``np.polyfit`` accuracy: every backend follows the same
  trajectory, so the reference's time for the ``N`` epochs the fit needs
  (taken from a compiled backend's run of the same fit) is the time of a fit
  with 1 epoch (validation, the ``lr="auto"`` pass, the first epoch; measured
  once) plus ``N - 1`` times the timed call: one full-batch gradient pass of
  the numpy backend, which is the work of one epoch.

Nothing here imports numba or scikit-learn until a case that needs them is
prepared, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import datasets
from .backends import available_backends, backend_names, resolve

#: Environment variable selecting the benchmark size.
SCALE_ENV = "FASTGD_BENCH_SCALE"

#: The 11-point problem of the "tiny fit" benchmark (y = x, no intercept).
TINY_X = (0.18, 0.1, 0.16, 0.08, 0.09, 0.11, 0.12, 0.17, 0.15, 0.14, 0.13)


@dataclass(frozen=True)
class Sizes:
    """Every size a benchmark problem depends on.

    Attributes
    ----------
    name : str
        ``"full"``, ``"small"``, ``"tiny"`` or ``"x<factor>"``.
    n, p : int
        Rows and features of problem P (``make_linear``, float64; the float32
        problems use the same numbers cast to float32).
    n_poly : int
        Points of the degree-3 polynomial problem.
    gd_epochs : int
        Epochs of the full-batch gradient-descent fit.
    adam_epochs, adam_batch : int
        Epochs and batch size of the mini-batch Adam fit.
    sgd_ref_rows : int
        Rows on which the numpy reference runs its SGD epoch (extrapolated
        per row to ``n`` when smaller).
    poly_ref_epochs : int
        The numpy reference runs the polynomial fit to the end when it needs
        at most this many epochs; beyond, its time is extrapolated per epoch.
    rosen_iter : int
        Iterations of ``minimize`` on the Rosenbrock function.
    scaling_n : tuple of int
        Row counts of ``fastgd bench --scaling``.
    scaling_p : int
        Features in the scaling mode (10: 1e7 rows are 800 MB, the size of P).
    """

    name: str
    n: int
    p: int
    n_poly: int
    gd_epochs: int
    adam_epochs: int
    adam_batch: int
    sgd_ref_rows: int
    poly_ref_epochs: int
    rosen_iter: int
    scaling_n: tuple[int, ...]
    scaling_p: int

    @property
    def p_bytes(self) -> int:
        """Bytes of X and y of problem P in float64."""
        return self.n * (self.p + 1) * 8


SCALES: dict[str, Sizes] = {
    "full": Sizes(
        "full",
        n=1_000_000,
        p=100,
        n_poly=10_000_000,
        gd_epochs=10,
        adam_epochs=2,
        adam_batch=256,
        sgd_ref_rows=20_000,
        poly_ref_epochs=3,
        rosen_iter=5_000,
        scaling_n=(100_000, 1_000_000, 10_000_000),
        scaling_p=10,
    ),
    "small": Sizes(
        "small",
        n=100_000,
        p=100,
        n_poly=1_000_000,
        gd_epochs=10,
        adam_epochs=2,
        adam_batch=256,
        sgd_ref_rows=20_000,
        poly_ref_epochs=3,
        rosen_iter=5_000,
        scaling_n=(10_000, 100_000, 1_000_000),
        scaling_p=10,
    ),
    "tiny": Sizes(
        "tiny",
        n=2_000,
        p=20,
        n_poly=20_000,
        gd_epochs=5,
        adam_epochs=1,
        adam_batch=64,
        sgd_ref_rows=2_000,
        poly_ref_epochs=20,
        rosen_iter=200,
        scaling_n=(1_000, 10_000, 100_000),
        scaling_p=10,
    ),
}


def get_sizes(scale: str | float | None = None) -> Sizes:
    """The sizes for a scale name or factor.

    Parameters
    ----------
    scale : str, float or None
        ``"full"``, ``"small"``, ``"tiny"``, or a factor in (0, 1] (also as a
        string, e.g. ``"0.1"``) multiplying the full row counts.  ``None``
        reads ``FASTGD_BENCH_SCALE`` (default ``"full"``).

    Returns
    -------
    Sizes

    Examples
    --------
    >>> from fastgd._problems import get_sizes
    >>> get_sizes("tiny").n, get_sizes(0.1).n
    (2000, 100000)
    """
    if scale is None:
        scale = os.environ.get(SCALE_ENV, "full") or "full"
    if isinstance(scale, str):
        key = scale.strip().lower()
        if key in SCALES:
            return SCALES[key]
        try:
            scale = float(key)
        except ValueError:
            raise ValueError(
                f"scale must be one of {list(SCALES)} or a number in (0, 1], got {scale!r}"
            ) from None
    factor = float(scale)
    if not (0.0 < factor <= 1.0) or not math.isfinite(factor):
        raise ValueError(f"scale factor must be in (0, 1], got {scale!r}")
    full = SCALES["full"]
    if factor == 1.0:
        return full
    n = max(1_000, round(full.n * factor))
    return replace(
        full,
        name=f"x{factor:g}",
        n=n,
        n_poly=max(10_000, round(full.n_poly * factor)),
        sgd_ref_rows=min(full.sgd_ref_rows, n),
        scaling_n=tuple(max(1_000, round(k * factor)) for k in full.scaling_n),
    )


# ---------------------------------------------------------------- data


class Data:
    """The benchmark datasets for one :class:`Sizes`, generated on first use and kept.

    Parameters
    ----------
    sizes : Sizes
    seed : int
        Seed of every generated dataset.
    """

    def __init__(self, sizes: Sizes, seed: int = 0):
        self.sizes = sizes
        self.seed = seed
        self._cache: dict[Any, Any] = {}

    def _get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def linear(self, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
        """Problem P ``(X, y)``; float32 is the float64 data cast."""
        dt = np.dtype(dtype)
        if dt == np.float64:

            def make():
                X, y, _, _ = datasets.make_linear(
                    self.sizes.n, self.sizes.p, noise=0.1, seed=self.seed
                )
                return X, y

            return self._get("P64", make)
        X, y = self.linear(np.float64)
        return self._get(("P", dt.str), lambda: (X.astype(dt), y.astype(dt)))

    def poly(self) -> tuple[np.ndarray, np.ndarray]:
        """The degree-3 polynomial problem ``(x, y)`` on ``n_poly`` points."""

        def make():
            x, y, _, _ = datasets.make_polynomial(self.sizes.n_poly, 3, noise=0.1, seed=self.seed)
            return x, y

        return self._get("poly", make)

    def scaling(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """A ``make_linear`` problem with ``n`` rows and ``scaling_p`` features."""

        def make():
            X, y, _, _ = datasets.make_linear(n, self.sizes.scaling_p, noise=0.1, seed=self.seed)
            return X, y

        return self._get(("scaling", n), make)

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """Any other value computed once per dataset (e.g. a reference result)."""
        return self._get(("memo", key), make)

    def drop(self, *prefixes: str) -> None:
        """Forget cached datasets whose key starts with one of ``prefixes``."""
        for key in list(self._cache):
            k0 = key[0] if isinstance(key, tuple) else key
            if any(str(k0).startswith(pre) for pre in prefixes):
                del self._cache[key]


# ---------------------------------------------------------------- cases


class Unavailable(Exception):
    """A case cannot run here (a backend or an optional dependency is missing)."""


@dataclass
class Prepared:
    """A case ready to time.

    Attributes
    ----------
    fn : callable
        The timed call, no arguments.
    check : callable or None
        ``check(result) -> dict`` validates the result of ``fn`` (raises
        ``AssertionError`` when it is wrong) and returns figures worth
        reporting (e.g. the relative error against ``np.polyfit``).
    factor, offset : float
        The reported time is ``offset + factor * measured`` (``factor`` 1 and
        ``offset`` 0 unless the reference is extrapolated).
    note : str
        Says how the time was obtained when it is not a plain measurement.
    """

    fn: Callable[[], Any]
    check: Callable[[Any], dict[str, Any]] | None = None
    factor: float = 1.0
    note: str = ""
    offset: float = 0.0

    def report(self, measured: float) -> float:
        """The time to report for a measured time of ``fn``."""
        return self.offset + self.factor * measured


@dataclass(frozen=True)
class Case:
    """One way of computing a problem.

    Attributes
    ----------
    label : str
        Row label in tables, e.g. ``"numba"`` or ``"sklearn SGDRegressor"``.
    kind : {"backend", "anchor", "probe"}
        A fastgd backend, an outside anchor, or the read-bandwidth probe of a
        memory-bound problem (a sum over the same bytes).
    backend : str or None
        The fastgd backend this case needs (``None`` for anchors).
    requires : tuple of str
        Importable modules this case needs (e.g. ``("sklearn",)``).
    prepare : callable
        ``prepare(data) -> Prepared``.
    """

    label: str
    kind: str
    backend: str | None
    requires: tuple[str, ...]
    prepare: Callable[[Data], Prepared]

    def missing(self) -> str | None:
        """Why this case cannot run here, or ``None`` when it can."""
        if self.backend is not None and self.backend not in available_backends():
            return f"fastgd backend {self.backend!r} is not available"
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                extra = " (pip install 'fastgd[bench]')" if mod == "sklearn" else ""
                return f"{mod} is not installed{extra}"
        return None


@dataclass(frozen=True)
class Problem:
    """One benchmark problem and the cases compared on it.

    Attributes
    ----------
    name : str
        Also the pytest-benchmark group, e.g. ``"loss_and_grad-mse-float64"``.
    title : str
        One line saying what is computed.
    cases : tuple of Case
        The first is the reference for speedups.
    nbytes : callable or None
        ``nbytes(data) -> int``: bytes one call must read, for the
        memory-bound problems (``fastgd bench`` reports GB/s from it).
    family : str
        The ``bench/test_<family>.py`` file holding it.
    info : dict
        Details; ``"compiled_only"`` says why a problem has no numpy reference
        (a ratio among compiled cases).
    """

    name: str
    title: str
    cases: tuple[Case, ...]
    nbytes: Callable[[Data], int] | None = None
    family: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def reference(self) -> str:
        return self.cases[0].label


def _be(name: str):
    return resolve(name)[1]


def _rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-300))


# ---- loss_and_grad


def _lag_case(loss: str, dtype: Any, backend: str, kernel: bool = False) -> Case:
    """``fastgd.loss_and_grad`` (or the backend kernel alone) on P."""
    dt = np.dtype(dtype)

    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(dt)
        p = X.shape[1]
        coef = np.linspace(-1.0, 1.0, p).astype(dt)
        intercept = 0.5
        ref = data.memo(
            ("lag", loss, dt.str),
            lambda: fastgd.loss_and_grad(X, y, coef, intercept, loss=loss, backend="numpy"),
        )
        rtol = 1e-9 if dt == np.float64 else 2e-3

        def check(res) -> dict[str, Any]:
            v, gc, gb = res
            assert math.isclose(v, ref[0], rel_tol=rtol), (v, ref[0])
            scale = max(float(np.max(np.abs(ref[1]))), abs(ref[2]), 1e-300)
            err = max(float(np.max(np.abs(gc - ref[1]))), abs(gb - ref[2])) / scale
            assert err <= rtol, err
            return {"grad_rel_err_vs_numpy": err}

        if not kernel:
            return Prepared(
                lambda: fastgd.loss_and_grad(X, y, coef, intercept, loss=loss, backend=backend),
                check,
            )
        # The compiled pass alone, on already validated arrays (what
        # loss_and_grad adds on top is input validation).
        from . import _registry as reg

        be = _be(backend)
        theta = np.r_[coef, intercept].astype(dt)
        l2w = np.zeros(p + 1, dtype=dt)
        grad = np.empty(p + 1, dtype=dt)
        code = reg.LOSSES[loss].code

        def fn():
            v = be.objective_grad(0, code, X, y, theta, 1.0, 1.0, l2w, 1, grad)
            return float(v), grad[:p].copy(), float(grad[p])

        return Prepared(fn, check, note="kernel only (no input validation)")

    label = f"{backend} (kernel)" if kernel else backend
    return Case(label, "backend", backend, (), prepare)


# ---- the machine's read bandwidth, over the same bytes

#: numba's fast-math subset that keeps isnan/isfinite (the probe only sums).
_PROBE_FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}
_PROBE: dict[str, Any] = {}


#: ``numba.prange`` once :func:`read_probe` has imported numba (keeps numba lazy).
_prange = range


def _read_sum_py(a: np.ndarray) -> float:  # pragma: no cover - compiled
    s = 0.0
    for i in _prange(a.shape[0]):  # numba's parallel reduction: one partial sum per thread
        s += a[i]
    return s


def read_probe() -> Callable[[np.ndarray], float]:
    """A parallel numba sum over a 1-D array: reads every byte once, does nothing else.

    Its time over the bytes of ``X`` and ``y`` is the machine's read bandwidth
    the memory-bound kernels are compared with.  Needs numba; uses numba's
    current number of threads.
    """
    global _prange
    if "f" not in _PROBE:
        import numba

        try:  # let fastgd pick numba's (thread-safe) threading layer before any parallel run
            from . import _config

            _config.configure_numba()
        except (ImportError, AttributeError):  # pragma: no cover - older layouts
            pass
        _prange = numba.prange
        _PROBE["f"] = numba.njit(parallel=True, cache=True, fastmath=_PROBE_FASTMATH)(_read_sum_py)
    return _PROBE["f"]


def _probe_case(dtype: Any, use_numba: bool) -> Case:
    dt = np.dtype(dtype)

    def prepare(data: Data) -> Prepared:
        X, y = data.linear(dt)
        flat = X.reshape(-1)
        if use_numba:
            probe = read_probe()
            return Prepared(lambda: probe(flat) + probe(y), note="parallel numba sum of X and y")
        return Prepared(
            lambda: float(flat.sum()) + float(y.sum()), note="numpy sum of X and y (one thread)"
        )

    if use_numba:
        return Case("read bandwidth (numba parallel sum)", "probe", None, ("numba",), prepare)
    return Case("read bandwidth (numpy sum)", "probe", None, (), prepare)


def _lag_problem(loss: str, dtype: Any) -> Problem:
    dt = np.dtype(dtype)
    cases = [_lag_case(loss, dt, b) for b in backend_names()]
    cases += [_lag_case(loss, dt, b, kernel=True) for b in backend_names() if b != "numpy"]
    cases += [_probe_case(dt, True), _probe_case(dt, False)]
    return Problem(
        f"loss_and_grad-{loss}-{dt.name}",
        f"loss_and_grad, {loss}, full batch on P ({dt.name})",
        tuple(cases),
        nbytes=lambda data: (data.sizes.n * (data.sizes.p + 1)) * dt.itemsize,
        family="loss_and_grad",
        info={"loss": loss, "dtype": dt.name},
    )


def _lag_dtype_problem() -> Problem:
    """float64 and float32 ``loss_and_grad`` taking turns in one problem, so that
    their throughput ratio compares runs made at the same time."""
    cases = []
    for b in backend_names():
        if b == "numpy":
            continue
        for dt in (np.float64, np.float32):
            c = _lag_case("mse", dt, b)
            cases.append(replace(c, label=f"{b} {np.dtype(dt).name}"))
    return Problem(
        "loss_and_grad-dtypes",
        "loss_and_grad, mse, on P in float64 and float32, side by side",
        tuple(cases),
        family="loss_and_grad",
        info={"compiled_only": "a ratio between dtypes (the reference has its own rows)"},
    )


# ---- fits on P


def _auto_lr(data: Data, stochastic: bool) -> float:
    """The ``lr="auto"`` value for P (computed once, outside the timings)."""
    import fastgd

    def make():
        X, y = data.linear(np.float64)
        kw: dict[str, Any] = {"batch_size": 1} if stochastic else {}
        return fastgd.fit(
            X[:1000] if stochastic else X,
            y[:1000] if stochastic else y,
            max_iter=1,
            backend="numpy",
            record=None,
            **kw,
        ).lr

    # Per-sample curvature on 1000 rows is close to all rows' (Gaussian
    # features); halve it for margin.
    lr = data.memo(("auto_lr", stochastic), make)
    return lr * 0.5 if stochastic else lr


def _finite_check(res) -> dict[str, Any]:
    assert np.all(np.isfinite(res.coef)) and math.isfinite(res.intercept), res.status
    assert res.status != "diverged"
    return {"objective": res.objective, "n_iter": res.n_iter}


def _gd_case(backend: str) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        lr = _auto_lr(data, False)
        epochs = data.sizes.gd_epochs
        return Prepared(
            lambda: fastgd.fit(
                X, y, optimizer="gd", lr=lr, max_iter=epochs, tol=0.0, backend=backend
            ),
            _finite_check,
        )

    return Case(backend, "backend", backend, (), prepare)


def _sgd_case(backend: str) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        lr = _auto_lr(data, True)
        m = X.shape[0]
        factor, note = 1.0, ""
        if backend == "numpy" and data.sizes.sgd_ref_rows < m:
            m = data.sizes.sgd_ref_rows
            factor = X.shape[0] / m
            note = (
                f"timed on the first {m:,} rows, extrapolated per row to {X.shape[0]:,} "
                f"(x{factor:g})"
            )
        Xs, ys = X[:m], y[:m]
        # plain SGD, as SGDRegressor runs it (sgd_fit times the defaults)
        return Prepared(
            lambda: fastgd.fit(
                Xs,
                ys,
                optimizer="gd",
                lr=lr,
                batch_size=1,
                max_iter=1,
                tol=0.0,
                seed=0,
                record=None,
                precondition="none",
                backend=backend,
            ),
            _finite_check,
            factor,
            note,
        )

    return Case(backend, "backend", backend, (), prepare)


def _sgd_epoch(
    backend: str,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    lr: float,
    w: np.ndarray | None = None,
) -> Callable[[], np.ndarray]:
    """A call running one plain SGD epoch (gd, constant ``lr``, MSE, from zeros) in
    the backend's kernel over ``order`` (1, n); it returns the parameters."""
    from . import _registry as reg

    be = _be(backend)
    p = X.shape[1]
    gd, const = reg.optimizer_spec("gd").code, reg.SCHEDULES["constant"].code
    hp = np.zeros(len(reg.HP_ORDER))
    sched_hp = np.zeros(len(reg.SCHED_HP_ORDER))
    l2w = np.zeros(p + 1)

    def fn() -> np.ndarray:
        theta = np.zeros(p + 1)
        be.run(
            0,
            0,
            X,
            y,
            theta,
            1.0,
            1.0,
            l2w,
            1,
            gd,
            hp,
            np.zeros((2, p + 1)),
            0,
            const,
            lr,
            sched_hp,
            0,
            1,
            1,
            order,
            0.0,
            0,
            np.zeros(p + 1),
            math.nan,
            np.empty(0),
            np.empty((0, p + 1)),
            w=w,
        )
        return theta

    return fn


def _sgd_kernel_case(backend: str) -> Case:
    """The compiled SGD epoch alone: ``run`` on validated arrays with the order
    already drawn (what ``fit`` adds on top: validation and the shuffle; the
    epoch's progressive loss is its NaN/inf check)."""

    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        lr = _auto_lr(data, True)
        n, p = X.shape
        order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        np.random.default_rng(0).shuffle(order)  # the order fit(seed=0) draws
        order = order[None, :]
        ref = data.memo(
            ("sgd_fit", backend),
            lambda: fastgd.fit(
                X,
                y,
                optimizer="gd",
                lr=lr,
                batch_size=1,
                max_iter=1,
                tol=0.0,
                seed=0,
                record=None,
                backend=backend,
                precondition="none",
            ),
        )
        fn = _sgd_epoch(backend, X, y, order, lr)

        def check(theta) -> dict[str, Any]:
            err = _rel_err(theta[:p], ref.coef)
            assert err <= 1e-12, err  # the same epoch as fit(seed=0)
            return {"rel_err_vs_fit": err}

        return Prepared(fn, check, note="epoch kernel only (order drawn, data validated)")

    return Case(f"{backend} (epoch kernel)", "backend", backend, (), prepare)


def _weights_case(backend: str, job: str, weighted: bool) -> Case:
    """A compiled pass on P with and without ``sample_weight`` (integer weights
    0..3, normalised as ``fit`` does): the fused objective/gradient
    (``job="lag"``) or one shuffled SGD epoch (``job="sgd"``), in the kernel."""

    def prepare(data: Data) -> Prepared:
        from ._validation import check_sample_weight

        X, y = data.linear(np.float64)
        n, p = X.shape
        be = _be(backend)
        w = None
        if weighted:
            raw = data.memo("weights", lambda: np.random.default_rng(1).integers(0, 4, n))
            w = check_sample_weight(raw, n, np.float64)
        theta0 = np.linspace(-1.0, 1.0, p + 1)
        l2w = np.zeros(p + 1)
        grad = np.empty(p + 1)
        if job == "lag":

            def fn():
                return float(be.objective_grad(0, 0, X, y, theta0, 1.0, 1.0, l2w, 1, grad, w=w))

            def check(v) -> dict[str, Any]:
                ref = data.memo(
                    ("lag_w", weighted),
                    lambda: float(
                        _be("numpy").objective_grad(
                            0, 0, X, y, theta0, 1.0, 1.0, l2w, 1, np.empty(p + 1), w=w
                        )
                    ),
                )
                assert math.isclose(v, ref, rel_tol=1e-9), (v, ref)
                return {"rel_err_vs_numpy": abs(v - ref) / abs(ref)}

            return Prepared(fn, check, note="kernel only")
        lr = _auto_lr(data, True)
        m, factor, note = n, 1.0, "epoch kernel only"
        if backend == "numpy" and data.sizes.sgd_ref_rows < n:
            m = data.sizes.sgd_ref_rows
            factor = n / m
            note += f"; timed on the first {m:,} rows, extrapolated per row (x{factor:g})"
        Xs, ys, ws = X[:m], y[:m], None if w is None else w[:m]
        order = data.memo(
            ("sgd_order", m),
            lambda: np.random.default_rng(0).permutation(m).astype(np.int32)[None, :],
        )
        fn_sgd = _sgd_epoch(backend, Xs, ys, order, lr, ws)
        return Prepared(fn_sgd, _finite_theta, factor, note)

    label = f"{backend} {'weighted' if weighted else 'unweighted'}"
    return Case(label, "backend", backend, (), prepare)


def _finite_theta(theta: np.ndarray) -> dict[str, Any]:
    assert np.isfinite(theta).all()
    return {}


def _precondition_epoch_case(backend: str, precondition: str) -> Case:
    """Full-batch gd epochs on P in the kernel (``run``), with or without the
    centre-and-scale preconditioner folded into each step: the per-epoch cost
    of preconditioning, without the one statistics pass before the fit."""

    def prepare(data: Data) -> Prepared:
        from . import _registry as reg
        from ._precondition import choose_coordinates
        from ._problem import build_problem

        X, y = data.linear(np.float64)
        p = X.shape[1]
        be = _be(backend)
        prob = build_problem(
            X,
            y,
            loss="mse",
            delta=1.0,
            degree=None,
            l2=0.0,
            fit_intercept=True,
            backend=backend,
            check_finite=False,
        )
        coords = data.memo(
            ("coords", precondition),
            lambda: choose_coordinates(prob, precondition, full_stats=False),
        )
        gd, const = reg.optimizer_spec("gd").code, reg.SCHEDULES["constant"].code
        hp = np.zeros(len(reg.HP_ORDER))
        sched_hp = np.zeros(len(reg.SCHED_HP_ORDER))
        epochs = data.sizes.gd_epochs
        lr = 0.1 if precondition == "auto" else _auto_lr(data, False)
        order = np.empty((0, 0), dtype=np.int32)

        def fn():
            theta = np.zeros(p + 1)
            be.run(
                0,
                0,
                X,
                y,
                theta,
                coords.basis,
                1.0,
                coords.l2w,
                1,
                gd,
                hp,
                np.zeros((2, p + 1)),
                0,
                const,
                lr,
                sched_hp,
                0,
                epochs,
                0,
                order,
                0.0,
                1,
                np.zeros(p + 1),
                math.nan,
                np.empty(0),
                np.empty((0, p + 1)),
                coords.pre,
            )
            return theta

        def check(theta) -> dict[str, Any]:
            assert np.isfinite(theta).all()
            return {}

        return Prepared(fn, check, note=f"{epochs} epochs in the kernel")

    return Case(f"{backend} precondition={precondition}", "backend", backend, (), prepare)


def _sgd_sklearn_case() -> Case:
    def prepare(data: Data) -> Prepared:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDRegressor

        X, y = data.linear(np.float64)
        # scikit-learn's squared error is r**2/2, fastgd's mse r**2: the same
        # trajectory needs twice fastgd's step.
        eta0 = 2.0 * _auto_lr(data, True)

        def fn():
            est = SGDRegressor(
                max_iter=1,
                tol=None,
                learning_rate="constant",
                eta0=eta0,
                penalty=None,
                shuffle=True,
                random_state=0,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return est.fit(X, y)

        def check(est) -> dict[str, Any]:
            assert np.all(np.isfinite(est.coef_))
            return {}

        return Prepared(fn, check)

    return Case("sklearn SGDRegressor", "anchor", None, ("sklearn",), prepare)


def _lr_case(backend: str, auto: bool) -> Case:
    """The full-batch fit of ``gd_fit`` with default coordinates, ``lr="auto"``
    or that same step given as a number: the cost of choosing the step."""

    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        epochs = data.sizes.gd_epochs
        lr = data.memo(
            "lr_auto_fit", lambda: fastgd.fit(X, y, max_iter=1, record=None, backend="numpy").lr
        )
        return Prepared(
            lambda: fastgd.fit(
                X,
                y,
                lr="auto" if auto else lr,
                max_iter=epochs,
                tol=0.0,
                record=None,
                backend=backend,
            ),
            _finite_check,
        )

    return Case(f"{backend} lr={'auto' if auto else 'fixed'}", "backend", backend, (), prepare)


def _sgd_default_case(backend: str) -> Case:
    """One SGD epoch through ``fit`` with every default (``lr="auto"``,
    ``precondition="auto"``): the statistics passes, the shuffle and the epoch."""

    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        return Prepared(
            lambda: fastgd.fit(
                X, y, batch_size=1, max_iter=1, tol=0.0, seed=0, record=None, backend=backend
            ),
            _finite_check,
        )

    return Case(f"{backend} fit, defaults", "backend", backend, (), prepare)


def _sgd_scaling_case(backend: str, k: int) -> Case:
    """One shuffled SGD epoch in the kernel on ``n = scaling_n[k]`` rows of
    ``scaling_p`` features: the cost per row as the data outgrow the caches and
    the TLB."""

    def prepare(data: Data) -> Prepared:
        n = data.sizes.scaling_n[k]
        X, y = data.scaling(n)
        order = data.memo(
            ("sgd_order", n),
            lambda: np.random.default_rng(0).permutation(n).astype(np.int32)[None, :],
        )
        fn = _sgd_epoch(backend, X, y, order, 0.01)

        def check(theta) -> dict[str, Any]:
            assert np.isfinite(theta).all()
            return {"n": n}

        return Prepared(fn, check, note="epoch kernel only")

    return Case(f"{backend} n = scaling_n[{k}]", "backend", backend, (), prepare)


#: The jobs of the cold-start benchmark: ``fit`` keywords, on small data (1,000 x 5,
#: serial kernels) unless ``COLD_SHAPES`` gives the shape of ``X``.
COLD_JOBS: dict[str, dict[str, Any]] = {
    "gd": {},
    "sgd": {"batch_size": 1},
    "minibatch adam": {"batch_size": 32, "optimizer": "adam"},
    "poly3": {"degree": 3},
    "gd 80 MB": {},
    "sgd 80 MB": {"batch_size": 1},
    "minibatch adam 80 MB": {"batch_size": 32, "optimizer": "adam"},
}
#: ``X`` of the cold jobs on large data: from 1 MB on the numba kernels run their
#: passes in parallel, from 64 MB stochastic epochs stage their rows -- more kernels
#: to compile.
COLD_SHAPES: dict[str, tuple[int, int]] = {
    "gd 80 MB": (100_000, 100),
    "sgd 80 MB": (100_000, 100),
    "minibatch adam 80 MB": (100_000, 100),
}


def _cold_case(job: str) -> Case:
    """The first ``fit`` of one job on the numba backend in a fresh process with an
    empty kernel cache: what a new user waits for (compilation included)."""

    def prepare(data: Data) -> Prepared:
        import subprocess
        import sys
        import tempfile

        if data.sizes.name != "full":
            raise Unavailable("timed at full scale only (a cold compile takes seconds per job)")
        kw = COLD_JOBS[job]
        rows, cols = COLD_SHAPES.get(job, (1000, 5))
        x_arg = "x" if "degree" in kw else "X"
        code = (
            "import time, numpy as np, fastgd\n"
            "rng = np.random.default_rng(0)\n"
            f"X = rng.normal(size=({rows}, {cols})); x = X[:, 0]; y = rng.normal(size={rows})\n"
            "t = time.perf_counter()\n"
            f"fastgd.fit({x_arg}, y, backend='numba', max_iter=2, **{kw!r})\n"
            "print(time.perf_counter() - t)\n"
        )

        def fn():
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, NUMBA_CACHE_DIR=cache)
                # a new user's default kernels (the test suite asks for the generic ones)
                env.pop("FASTGD_NUMBA_KERNELS", None)
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
            return float(out.stdout.strip().splitlines()[-1])

        def check(seconds: float) -> dict[str, Any]:
            return {"fit_call_s": seconds}

        return Prepared(
            fn, check, note="a fresh process, empty NUMBA_CACHE_DIR (startup and imports included)"
        )

    return Case(f"numba cold {job}", "backend", "numba", (), prepare)


def _adam_case(backend: str) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = data.linear(np.float64)
        s = data.sizes
        return Prepared(
            lambda: fastgd.fit(
                X,
                y,
                optimizer="adam",
                lr=0.01,
                batch_size=s.adam_batch,
                max_iter=s.adam_epochs,
                tol=0.0,
                seed=0,
                record=None,
                backend=backend,
            ),
            _finite_check,
        )

    return Case(backend, "backend", backend, (), prepare)


# ---- polynomial

#: Settings of the polynomial fit (reaches np.polyfit's coefficients to ~1e-9).
#: x is rescaled into [-1, 1] internally, where the cubic MSE objective has
#: L = 2*lambda_max(G) ~ 2.8 for uniform x: lr=0.3 is just under 1/L, fixed so the
#: timing measures the fit itself (lr="auto" adds one numpy pass over x for the
#: exact L, ~35 ms at 1e7 points).
POLY_FIT: dict[str, Any] = {"degree": 3, "tol": 1e-14, "max_iter": 100_000}
#: Required agreement with np.polyfit: max|c - c_polyfit| / max|c_polyfit|.
POLY_RTOL = 1e-8


def _poly_ref(data: Data) -> np.ndarray:
    """np.polyfit's coefficients, ascending (intercept first)."""
    x, y = data.poly()
    return data.memo("polyfit", lambda: np.polyfit(x, y, 3)[::-1].copy())  # noqa: PLW0108 - lazy


def _poly_check(data: Data):
    ref = _poly_ref(data)

    def check(res) -> dict[str, Any]:
        if isinstance(res, np.ndarray):
            return {}
        err = _rel_err(np.r_[res.intercept, res.coef], ref)
        out = {"rel_err_vs_polyfit": err, "n_iter": res.n_iter, "status": res.status}
        if res.status != "max_iter" or res.n_iter == POLY_FIT["max_iter"]:
            assert err <= POLY_RTOL, f"coefficients differ from np.polyfit by {err:.2e} (relative)"
        return out

    return check


def _poly_epochs(data: Data) -> tuple[int, str]:
    """Epochs the polynomial fit needs, and where that number comes from."""
    import fastgd

    def make():
        x, y = data.poly()
        for b in ("numba", "cython"):
            if b in available_backends():
                return fastgd.fit(x, y, backend=b, **POLY_FIT).n_iter, f"the {b} run"
        if x.shape[0] <= 100_000:
            return fastgd.fit(x, y, backend="numpy", **POLY_FIT).n_iter, "the numpy run"
        # No compiled backend: estimate on the first 100,000 points.
        res = fastgd.fit(x[:100_000], y[:100_000], backend="numpy", **POLY_FIT)
        return res.n_iter, "a numpy run on 100,000 points (estimate)"

    return data.memo("poly_epochs", make)


def _poly_case(backend: str) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        x, y = data.poly()
        check = _poly_check(data)
        if backend != "numpy":
            return Prepared(lambda: fastgd.fit(x, y, backend=backend, **POLY_FIT), check)
        need, source = _poly_epochs(data)
        if need <= data.sizes.poly_ref_epochs:
            return Prepared(lambda: fastgd.fit(x, y, backend="numpy", **POLY_FIT), check)
        # Fixed costs (validation, the lr="auto" pass, the first epoch) from a
        # 1-epoch fit, once; the timed call is the work of one more epoch: one
        # fused objective/gradient pass over the points (the update is O(k)).
        one = dict(POLY_FIT, max_iter=1, tol=0.0)
        fn_one = lambda: fastgd.fit(x, y, backend="numpy", **one)  # noqa: E731
        res = fn_one()
        t_one = _median_time(fn_one, 3)
        from . import _registry as reg

        be = _be("numpy")
        X2 = x.reshape(-1, 1)
        basis = np.array(res.info["basis"])
        theta = np.r_[np.ones(3), res.intercept]  # a pass costs the same at any theta
        l2w = np.zeros(4)
        grad = np.empty(4)
        code = reg.LOSSES["mse"].code
        model = reg.MODELS["poly"].code
        note = (
            f"extrapolated to the {need} epochs the fit needs (from {source}): "
            f"T(fit with 1 epoch) + {need - 1} x T(one gradient pass); "
            f"T(fit with 1 epoch) = {t_one:.3g} s"
        )
        return Prepared(
            lambda: be.objective_grad(model, code, X2, y, theta, basis, 1.0, l2w, 1, grad),
            None,
            float(need - 1),
            note,
            offset=t_one,
        )

    return Case(backend, "backend", backend, (), prepare)


def _median_time(fn: Callable[[], Any], k: int) -> float:
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _polyfit_case() -> Case:
    def prepare(data: Data) -> Prepared:
        x, y = data.poly()
        return Prepared(lambda: np.polyfit(x, y, 3))

    return Case("np.polyfit", "anchor", None, (), prepare)


# ---- tiny fit

#: The 11-point fit: 500 epochs of full-batch gd at lr 0.1, y = x, no intercept.
TINY_FIT: dict[str, Any] = {
    "fit_intercept": False,
    "optimizer": "gd",
    "lr": 0.1,
    "max_iter": 500,
    "tol": 0.0,
    "precondition": "none",
}


def _tiny_data() -> tuple[np.ndarray, np.ndarray]:
    x = np.array(TINY_X)
    return x.reshape(-1, 1), x.copy()


def _tiny_case(backend: str) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        X, y = _tiny_data()

        def check(res) -> dict[str, Any]:
            assert res.n_iter == TINY_FIT["max_iter"] and np.isfinite(res.coef).all()
            return {"coef": float(res.coef[0])}

        return Prepared(lambda: fastgd.fit(X, y, backend=backend, **TINY_FIT), check)

    return Case(backend, "backend", backend, (), prepare)


def _tiny_sklearn_case() -> Case:
    def prepare(data: Data) -> Prepared:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import SGDRegressor

        X, y = _tiny_data()

        def fn():
            # 500 epochs of per-sample SGD (scikit-learn has no full-batch gd);
            # eta0 = 2 * lr for its r**2/2 loss.
            est = SGDRegressor(
                fit_intercept=False,
                max_iter=TINY_FIT["max_iter"],
                tol=None,
                learning_rate="constant",
                eta0=2 * TINY_FIT["lr"],
                penalty=None,
                shuffle=False,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                return est.fit(X, y)

        return Prepared(fn, note="per-sample SGD, 500 epochs, no shuffling")

    return Case("sklearn SGDRegressor", "anchor", None, ("sklearn",), prepare)


# ---- minimize on Rosenbrock

#: Start and settings of the Rosenbrock minimization (fixed iteration count).
ROSEN_X0 = (-1.2, 1.0)
ROSEN_OPT: dict[str, Any] = {"optimizer": "momentum", "lr": 5e-4, "momentum": 0.9, "tol": 0.0}


def rosen(x: np.ndarray) -> float:
    """The Rosenbrock function ``(1 - x0)**2 + 100 (x1 - x0**2)**2``."""
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def rosen_grad(x: np.ndarray) -> np.ndarray:
    """Gradient of :func:`rosen`."""
    g = np.empty_like(x)
    g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] ** 2)
    g[1] = 200.0 * (x[1] - x[0] ** 2)
    return g


_JITTED: dict[str, Any] = {}


def jitted_rosen() -> tuple[Any, Any]:
    """:func:`rosen` and :func:`rosen_grad` compiled with numba (imported here, lazily)."""
    if not _JITTED:
        import numba

        _JITTED["f"] = numba.njit(cache=True)(rosen)
        _JITTED["g"] = numba.njit(cache=True)(rosen_grad)
    return _JITTED["f"], _JITTED["g"]


def _rosen_case(backend: str, jit: bool) -> Case:
    def prepare(data: Data) -> Prepared:
        import fastgd

        if jit:
            f, g = jitted_rosen()
        else:
            f, g = rosen, rosen_grad
            if backend != "numpy" and not hasattr(_be(backend), "minimize_run"):
                raise Unavailable(f"the {backend} backend has no compiled minimize loop")
        x0 = np.array(ROSEN_X0)
        iters = data.sizes.rosen_iter

        def check(res) -> dict[str, Any]:
            assert res.n_iter == iters and np.isfinite(res.x).all(), (res.status, res.n_iter)
            return {"fun": res.fun}

        return Prepared(
            lambda: fastgd.minimize(f, g, x0, backend=backend, max_iter=iters, **ROSEN_OPT), check
        )

    if jit:
        return Case(f"{backend} loop, numba-jitted f/grad", "backend", backend, ("numba",), prepare)
    label = "python f/grad" if backend == "numpy" else f"{backend} loop, python f/grad"
    return Case(label, "backend", backend, (), prepare)


# ---------------------------------------------------------------- the list


def problems() -> list[Problem]:
    """Every benchmark problem, with all its cases (available here or not).

    Returns
    -------
    list of Problem
        In the order the tables show them.

    Examples
    --------
    >>> from fastgd._problems import problems
    >>> [p.name for p in problems()][:2]
    ['loss_and_grad-mse-float64', 'loss_and_grad-huber-float64']
    """
    out = [_lag_problem(loss, dt) for dt in (np.float64, np.float32) for loss in ("mse", "huber")]
    out.append(_lag_dtype_problem())
    names = backend_names()
    out += [
        Problem(
            "gd_fit",
            "full-batch gd fit of P, fixed epochs, lr = 1/L",
            tuple(_gd_case(b) for b in names),
            family="fit",
        ),
        Problem(
            "gd_precondition",
            "full-batch gd epochs on P in the kernel, precondition none/auto",
            tuple(_precondition_epoch_case(b, pc) for b in names for pc in ("none", "auto")),
            family="fit",
        ),
        Problem(
            "sgd_epoch",
            "one shuffled SGD epoch on P (batch_size=1, constant lr, "
            "precondition='none', record=None)",
            tuple(_sgd_case(b) for b in names)
            + tuple(_sgd_kernel_case(b) for b in names if b != "numpy")
            + (_sgd_sklearn_case(),),
            family="fit",
        ),
        Problem(
            "weights_lag",
            "fused objective/gradient on P in the kernel, sample_weight or not",
            tuple(_weights_case(b, "lag", wt) for b in names for wt in (False, True)),
            family="fit",
        ),
        Problem(
            "weights_sgd",
            "one SGD epoch on P in the kernel, sample_weight or not",
            tuple(_weights_case(b, "sgd", wt) for b in names for wt in (False, True)),
            family="fit",
        ),
        Problem(
            "gd_lr_auto",
            "full-batch gd fit of P, fixed epochs: lr='auto' or that lr given",
            tuple(_lr_case(b, auto) for b in names for auto in (False, True)),
            family="fit",
        ),
        Problem(
            "sgd_fit",
            "one SGD epoch on P through fit with every default (record=None)",
            tuple(_sgd_default_case(b) for b in names if b != "numpy") + (_sgd_sklearn_case(),),
            family="fit",
            info={"compiled_only": "against SGDRegressor (sgd_epoch has the reference)"},
        ),
        Problem(
            "sgd_scaling",
            "one SGD epoch in the kernel, n = scaling_n rows of scaling_p "
            "features (full: 1e5, 1e6, 1e7 x 10)",
            tuple(_sgd_scaling_case(b, k) for b in names if b != "numpy" for k in range(3)),
            family="fit",
            info={"compiled_only": "a ratio between sizes of one backend"},
        ),
        Problem(
            "adam_fit",
            "mini-batch Adam fit of P, fixed epochs",
            tuple(_adam_case(b) for b in names),
            family="fit",
        ),
        Problem(
            "poly3_fit",
            "degree-3 polynomial fit to np.polyfit accuracy (defaults, tol=1e-14)",
            tuple(_poly_case(b) for b in names) + (_polyfit_case(),),
            family="fit",
        ),
        Problem(
            "tiny_fit",
            "11-point fit, 500 epochs of gd, no intercept",
            tuple(_tiny_case(b) for b in names) + (_tiny_sklearn_case(),),
            family="fit",
        ),
        Problem(
            "numba_cold",
            "the first fit of a job on numba, empty kernel cache",
            tuple(_cold_case(job) for job in COLD_JOBS),
            family="compile",
            info={"compiled_only": "the JIT backend's compile time"},
        ),
        Problem(
            "rosenbrock",
            "minimize on Rosenbrock, fixed iterations (momentum)",
            (_rosen_case("numpy", False), _rosen_case("numba", True))
            + tuple(_rosen_case(b, False) for b in names if b not in ("numpy", "numba")),
            family="minimize",
        ),
    ]
    return out


def problem_names() -> list[str]:
    """Names of every problem (for ``--problems``)."""
    return [p.name for p in problems()]
