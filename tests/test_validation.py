"""Every bad input gets a clear TypeError/ValueError naming the parameter,
raised before any kernel runs.

The kernels of every backend are replaced by functions that fail the test if
called, so a check that happens too late (or not at all) is caught even when
the kernel would have produced a plausible number.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastgd
from fastgd.backends import resolve

from .conftest import AVAILABLE

KERNELS = ("run", "objective_grad", "objective", "batch_grad", "update", "minimize_run")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 2))
Y = RNG.normal(size=12)
X1 = RNG.uniform(-1, 1, size=12)


class KernelCalled(AssertionError):
    """A kernel ran although the input should have been refused."""


@pytest.fixture
def no_kernels(monkeypatch):
    """Make every kernel of every available backend fail if called."""

    def boom(*args, **kwargs):
        raise KernelCalled("a kernel ran before the input was validated")

    for name in AVAILABLE:
        _, mod = resolve(name)
        for fn in KERNELS:
            if hasattr(mod, fn):
                monkeypatch.setattr(mod, fn, boom)


def _with(arr, pos, value):
    out = np.array(arr, dtype=np.float64, copy=True)
    out[pos] = value
    return out


def _calls(counter_limit, good, bad):
    """A function returning ``good(x)`` for the first ``counter_limit`` calls, then ``bad(x)``."""
    count = [0]

    def f(x):
        count[0] += 1
        return good(x) if count[0] <= counter_limit else bad(x)

    return f


# (id, keyword overrides for fit(X, y, ...), exception, regex that must match the message)
FIT_CASES = [
    # -- X / y shape and type
    ("X-1d-without-degree", dict(X=X1), ValueError, r"X must be 2-D"),
    ("X-3d", dict(X=X[None]), ValueError, r"X must be 2-D .*3-D"),
    ("X-0d", dict(X=np.float64(3.0)), ValueError, r"X must be 2-D"),
    ("y-2d", dict(y=Y[:, None]), ValueError, r"y must be 1-D"),
    ("y-0d", dict(y=1.0), ValueError, r"y must be 1-D"),
    (
        "length-mismatch",
        dict(y=Y[:-1]),
        ValueError,
        r"X and y must have the same number of samples, got 12 and 11",
    ),
    (
        "zero-samples",
        dict(X=np.empty((0, 2)), y=np.empty(0)),
        ValueError,
        r"X and y must have at least one sample",
    ),
    ("X-None", dict(X=None), TypeError, r"X must be an array"),
    ("y-None", dict(y=None), TypeError, r"y must be an array"),
    (
        "X-ragged",
        dict(X=[[1.0, 2.0], [3.0]], y=[1.0, 2.0]),
        ValueError,
        r"X must be a rectangular array",
    ),
    (
        "X-object",
        dict(X=np.array([[1.0, None]] * 12, dtype=object)),
        TypeError,
        r"X must be numeric, got dtype object",
    ),
    (
        "X-strings",
        dict(X=np.array([["a", "b"]] * 12)),
        TypeError,
        r"X must be numeric, got dtype <U1",
    ),
    (
        "X-datetime",
        dict(X=np.zeros((12, 2), dtype="datetime64[s]")),
        TypeError,
        r"X must be numeric",
    ),
    (
        "y-object",
        dict(y=np.array([1.0] * 11 + ["x"], dtype=object)),
        TypeError,
        r"y must be numeric",
    ),
    ("y-strings", dict(y=["1"] * 12), TypeError, r"y must be numeric"),
    ("X-complex", dict(X=X + 1j), TypeError, r"X must be real, got complex"),
    ("y-complex", dict(y=Y.astype(complex)), TypeError, r"y must be real, got complex"),
    # -- NaN / inf: which array and the first bad position
    (
        "X-nan",
        dict(X=_with(_with(X, (3, 1), np.nan), (7, 0), np.nan)),
        ValueError,
        r"X contains nan at position \(3, 1\)",
    ),
    ("X-inf", dict(X=_with(X, (0, 0), np.inf)), ValueError, r"X contains inf at position \(0, 0\)"),
    (
        "X-neginf",
        dict(X=_with(X, (11, 1), -np.inf)),
        ValueError,
        r"X contains -inf at position \(11, 1\)",
    ),
    (
        "X-float32-nan",
        dict(X=_with(X, (2, 0), np.nan).astype(np.float32)),
        ValueError,
        r"X contains nan at position \(2, 0\)",
    ),
    ("y-nan", dict(y=_with(Y, 5, np.nan)), ValueError, r"y contains nan at position 5\b"),
    ("y-inf", dict(y=_with(Y, 11, np.inf)), ValueError, r"y contains inf at position 11\b"),
    (
        "y-overflows-float32",
        dict(X=X.astype(np.float32), y=_with(Y, 4, 1e39)),
        ValueError,
        r"y contains inf at position 4 after conversion from float64 to float32",
    ),
    # -- polynomial input
    ("degree-with-2d-X", dict(degree=2), ValueError, r"X must be 1-D when degree is given"),
    (
        "degree-with-column-X",
        dict(X=X1[:, None], degree=2),
        ValueError,
        r"X must be 1-D when degree is given",
    ),
    (
        "poly-x-nan",
        dict(X=_with(X1, 9, np.nan), degree=3),
        ValueError,
        r"X contains nan at position 9\b",
    ),
    ("poly-x-complex", dict(X=X1 + 0j, degree=3), TypeError, r"X must be real"),
    # -- names from a list
    (
        "loss-unknown",
        dict(loss="l1"),
        ValueError,
        r"loss must be one of \['mse', 'huber'\], got 'l1'",
    ),
    ("loss-None", dict(loss=None), ValueError, r"loss must be one of"),
    (
        "optimizer-unknown",
        dict(optimizer="adamw"),
        ValueError,
        r"optimizer must be one of \[.*'adam'.*\], got 'adamw'",
    ),
    ("optimizer-class", dict(optimizer=object), ValueError, r"optimizer must be one of"),
    (
        "schedule-unknown",
        dict(schedule="cosine"),
        ValueError,
        r"schedule must be one of \['constant', 'invscaling', 'exponential'\]",
    ),
    (
        "backend-unknown",
        dict(backend="jax"),
        ValueError,
        r"backend must be 'auto' or one of \['numpy', 'numba', 'cython'\]",
    ),
    ("backend-not-str", dict(backend=3), TypeError, r"backend must be a str"),
    (
        "record-unknown",
        dict(record="all"),
        ValueError,
        r"record must be one of \['loss', 'params', None\], got 'all'",
    ),
    ("record-True", dict(record=True), ValueError, r"record must be one of"),
    # -- numbers
    ("lr-zero", dict(lr=0.0), ValueError, r"lr must be finite and in \(0\.0, inf\)"),
    ("lr-negative", dict(lr=-0.1), ValueError, r"lr must be"),
    ("lr-nan", dict(lr=float("nan")), ValueError, r"lr must be finite"),
    ("lr-inf", dict(lr=float("inf")), ValueError, r"lr must be finite"),
    (
        "lr-word",
        dict(lr="fast"),
        ValueError,
        r"lr must be a positive float or \"auto\", got 'fast'",
    ),
    ("lr-None", dict(lr=None), TypeError, r"lr must be a real number"),
    ("lr-list", dict(lr=[0.1]), TypeError, r"lr must be a real number"),
    (
        "delta-zero",
        dict(loss="huber", delta=0.0),
        ValueError,
        r"delta must be finite and in \(0\.0",
    ),
    ("delta-negative", dict(loss="huber", delta=-1.0), ValueError, r"delta must be"),
    ("delta-nan", dict(loss="huber", delta=float("nan")), ValueError, r"delta must be finite"),
    ("l2-negative", dict(l2=-1e-3), ValueError, r"l2 must be finite and in \[0\.0, inf\)"),
    ("l2-inf", dict(l2=float("inf")), ValueError, r"l2 must be finite"),
    ("l2-str", dict(l2="0.1"), TypeError, r"l2 must be a real number"),
    ("degree-zero", dict(X=X1, degree=0), ValueError, r"degree must be >= 1, got 0"),
    ("degree-negative", dict(X=X1, degree=-2), ValueError, r"degree must be >= 1"),
    ("degree-float", dict(X=X1, degree=2.0), TypeError, r"degree must be an integer, got 2\.0"),
    ("degree-str", dict(X=X1, degree="2"), TypeError, r"degree must be an integer"),
    ("degree-bool", dict(X=X1, degree=True), TypeError, r"degree must be an integer"),
    ("batch_size-zero", dict(batch_size=0), ValueError, r"batch_size must be >= 1, got 0"),
    ("batch_size-negative", dict(batch_size=-4), ValueError, r"batch_size must be >= 1"),
    ("batch_size-float", dict(batch_size=2.5), TypeError, r"batch_size must be an integer"),
    ("max_iter-zero", dict(max_iter=0), ValueError, r"max_iter must be >= 1, got 0"),
    ("max_iter-float", dict(max_iter=10.0), TypeError, r"max_iter must be an integer"),
    ("max_iter-bool", dict(max_iter=True), TypeError, r"max_iter must be an integer"),
    ("tol-negative", dict(tol=-1e-6), ValueError, r"tol must be finite and in \[0\.0, inf\)"),
    ("tol-nan", dict(tol=float("nan")), ValueError, r"tol must be finite"),
    # -- hyperparameters
    (
        "beta1-one",
        dict(optimizer="adam", beta1=1.0),
        ValueError,
        r"beta1 must be finite and in \[0\.0, 1\.0\)",
    ),
    ("beta1-negative", dict(optimizer="adam", beta1=-0.1), ValueError, r"beta1 must be"),
    (
        "beta2-one",
        dict(optimizer="adam", beta2=1.0),
        ValueError,
        r"beta2 must be finite and in \[0\.0, 1\.0\)",
    ),
    ("beta2-above-one", dict(optimizer="adam", beta2=1.5), ValueError, r"beta2 must be"),
    (
        "eps-zero",
        dict(optimizer="adam", eps=0.0),
        ValueError,
        r"eps must be finite and in \(0\.0, inf\)",
    ),
    ("eps-negative", dict(optimizer="rmsprop", eps=-1e-8), ValueError, r"eps must be"),
    (
        "momentum-one",
        dict(optimizer="momentum", momentum=1.0),
        ValueError,
        r"momentum must be finite and in \[0\.0, 1\.0\)",
    ),
    (
        "momentum-negative",
        dict(optimizer="nesterov", momentum=-0.5),
        ValueError,
        r"momentum must be",
    ),
    (
        "rho-one",
        dict(optimizer="rmsprop", rho=1.0),
        ValueError,
        r"rho must be finite and in \[0\.0, 1\.0\)",
    ),
    (
        "gamma-zero",
        dict(schedule="exponential", gamma=0.0),
        ValueError,
        r"gamma must be finite and in \(0\.0, 1\.0\]",
    ),
    ("power_t-negative", dict(schedule="invscaling", power_t=-1.0), ValueError, r"power_t must be"),
    ("hyper-str", dict(optimizer="adam", beta1="0.9"), TypeError, r"beta1 must be a real number"),
    (
        "typo-beta_1",
        dict(optimizer="adam", beta_1=0.9),
        TypeError,
        r"unexpected keyword argument 'beta_1'; hyperparameters are \['momentum', 'beta1', 'beta2', 'eps', 'rho', 'power_t', 'gamma'\]",
    ),
    (
        "typo-learning_rate",
        dict(learning_rate=0.1),
        TypeError,
        r"unexpected keyword argument 'learning_rate'",
    ),
    # -- the rest
    (
        "callback-not-callable",
        dict(callback=5),
        TypeError,
        r"callback must be callable or None, got int",
    ),
    (
        "coef_init-length",
        dict(coef_init=[1.0]),
        ValueError,
        r"coef_init must have shape \(2,\), got \(1,\)",
    ),
    ("coef_init-2d", dict(coef_init=[[1.0, 2.0]]), ValueError, r"coef_init must have shape \(2,\)"),
    (
        "coef_init-nan",
        dict(coef_init=[0.0, np.nan]),
        ValueError,
        r"coef_init contains nan at position 1",
    ),
    ("coef_init-strings", dict(coef_init=["a", "b"]), TypeError, r"coef_init must be numeric"),
    (
        "coef_init-poly-length",
        dict(X=X1, degree=3, coef_init=[1.0, 2.0]),
        ValueError,
        r"coef_init must have shape \(3,\)",
    ),
    (
        "intercept_init-nan",
        dict(intercept_init=float("nan")),
        ValueError,
        r"intercept_init must be finite",
    ),
    (
        "intercept_init-str",
        dict(intercept_init="0"),
        TypeError,
        r"intercept_init must be a real number",
    ),
    (
        "fit_intercept-str",
        dict(fit_intercept="no"),
        TypeError,
        r"fit_intercept must be True or False, got 'no'",
    ),
    (
        "fit_intercept-None",
        dict(fit_intercept=None),
        TypeError,
        r"fit_intercept must be True or False",
    ),
    ("seed-negative", dict(seed=-1), ValueError, r"seed must be a non-negative integer, got -1"),
    (
        "seed-str",
        dict(seed="abc"),
        TypeError,
        r"seed must be None, a non-negative integer or a numpy Generator",
    ),
    ("seed-float", dict(seed=1.5), TypeError, r"seed must be"),
    ("progress-str", dict(progress="x"), TypeError, r"progress must be True or False"),
]

LG_CASES = [
    ("coef-short", dict(coef=[1.0]), ValueError, r"coef must have shape \(2,\), got \(1,\)"),
    (
        "coef-long",
        dict(coef=[1.0, 2.0, 3.0]),
        ValueError,
        r"coef must have shape \(2,\), got \(3,\)",
    ),
    ("coef-2d", dict(coef=[[1.0, 2.0]]), ValueError, r"coef must have shape \(2,\), got \(1, 2\)"),
    ("coef-scalar", dict(coef=1.0), ValueError, r"coef must have shape \(2,\), got \(\)"),
    ("coef-None", dict(coef=None), TypeError, r"coef must be an array"),
    ("coef-nan", dict(coef=[np.inf, 0.0]), ValueError, r"coef contains inf at position 0"),
    ("coef-complex", dict(coef=[1j, 0.0]), TypeError, r"coef must be real"),
    (
        "coef-poly",
        dict(X=X1, degree=3, coef=[1.0, 2.0]),
        ValueError,
        r"coef must have shape \(3,\)",
    ),
    ("intercept-nan", dict(intercept=float("nan")), ValueError, r"intercept must be finite"),
    ("intercept-str", dict(intercept="1"), TypeError, r"intercept must be a real number"),
    ("X-1d", dict(X=X1), ValueError, r"X must be 2-D"),
    ("y-length", dict(y=Y[:5]), ValueError, r"X and y must have the same number of samples"),
    ("degree-with-2d-X", dict(degree=2), ValueError, r"X must be 1-D when degree is given"),
    ("degree-zero", dict(X=X1, degree=0, coef=[]), ValueError, r"degree must be >= 1"),
    ("loss-unknown", dict(loss="hinge"), ValueError, r"loss must be one of"),
    ("delta-zero", dict(loss="huber", delta=0), ValueError, r"delta must be"),
    ("l2-negative", dict(l2=-1.0), ValueError, r"l2 must be"),
    ("backend-unknown", dict(backend="torch"), ValueError, r"backend must be 'auto' or one of"),
]


def _fun(x):
    return float(x @ x)


def _grad(x):
    return 2.0 * x


MIN_CASES = [
    ("fun-not-callable", dict(fun=1.0), TypeError, r"fun must be callable"),
    ("grad-not-callable", dict(grad="2x"), TypeError, r"grad must be callable"),
    (
        "x0-2d",
        dict(x0=[[1.0, 2.0]]),
        ValueError,
        r"x0 must be a non-empty 1-D array, got shape \(1, 2\)",
    ),
    ("x0-scalar", dict(x0=1.0), ValueError, r"x0 must be a non-empty 1-D array, got shape \(\)"),
    ("x0-empty", dict(x0=[]), ValueError, r"x0 must be a non-empty 1-D array, got shape \(0,\)"),
    ("x0-nan", dict(x0=[1.0, np.nan]), ValueError, r"x0 contains nan at position 1"),
    ("x0-complex", dict(x0=[1j, 1.0]), TypeError, r"x0 must be real"),
    ("x0-strings", dict(x0=["a", "b"]), TypeError, r"x0 must be numeric"),
    ("x0-None", dict(x0=None), TypeError, r"x0 must be an array"),
    (
        "fun-returns-vector",
        dict(fun=lambda x: x * x),
        ValueError,
        r"fun must return a scalar, got shape \(2,\)",
    ),
    (
        "fun-returns-str",
        dict(fun=lambda x: "1.0"),
        TypeError,
        r"fun must return a real number, got str",
    ),
    ("fun-returns-None", dict(fun=lambda x: None), TypeError, r"fun must return a real number"),
    (
        "fun-returns-complex",
        dict(fun=lambda x: 1 + 1j),
        TypeError,
        r"fun must return a real number",
    ),
    (
        "grad-wrong-shape",
        dict(grad=lambda x: np.zeros(3)),
        ValueError,
        r"grad must return an array of shape \(2,\) \(like x0\), got \(3,\)",
    ),
    (
        "grad-scalar",
        dict(grad=lambda x: 1.0),
        ValueError,
        r"grad must return an array of shape \(2,\)",
    ),
    (
        "grad-column",
        dict(grad=lambda x: x[:, None]),
        ValueError,
        r"grad must return an array of shape \(2,\).*got \(2, 1\)",
    ),
    ("grad-None", dict(grad=lambda x: None), ValueError, r"grad must return an array of shape"),
    ("grad-complex", dict(grad=lambda x: x + 1j), TypeError, r"grad must return real numbers"),
    (
        "grad-strings",
        dict(grad=lambda x: np.array(["a", "b"])),
        TypeError,
        r"grad must return numbers",
    ),
    ("lr-auto", dict(lr="auto"), ValueError, r"lr must be a positive float, got 'auto'"),
    ("lr-zero", dict(lr=0.0), ValueError, r"lr must be"),
    ("optimizer-unknown", dict(optimizer="lbfgs"), ValueError, r"optimizer must be one of"),
    ("schedule-unknown", dict(schedule="step"), ValueError, r"schedule must be one of"),
    (
        "typo-beta_2",
        dict(optimizer="adam", beta_2=0.99),
        TypeError,
        r"unexpected keyword argument 'beta_2'",
    ),
    ("eps-zero", dict(optimizer="adagrad", eps=0.0), ValueError, r"eps must be"),
    ("beta1-one", dict(optimizer="adam", beta1=1.0), ValueError, r"beta1 must be"),
    ("momentum-one", dict(optimizer="momentum", momentum=1.0), ValueError, r"momentum must be"),
    ("max_iter-zero", dict(max_iter=0), ValueError, r"max_iter must be >= 1"),
    ("tol-negative", dict(tol=-1.0), ValueError, r"tol must be"),
    ("record-unknown", dict(record="x"), ValueError, r"record must be one of"),
    ("backend-unknown", dict(backend="jax"), ValueError, r"backend must be 'auto' or one of"),
]

# Bad return values that only appear after a few good calls: still refused,
# never broadcast into x.
MIN_LATE_CASES = [
    (
        "grad-shape-changes",
        dict(grad=_calls(3, _grad, lambda x: np.ones(1))),
        ValueError,
        r"grad must return an array of shape \(2,\)",
    ),
    (
        "fun-turns-vector",
        dict(fun=_calls(3, _fun, lambda x: x)),
        ValueError,
        r"fun must return a scalar",
    ),
    (
        "fun-turns-str",
        dict(fun=_calls(3, _fun, lambda x: "0")),
        TypeError,
        r"fun must return a real number",
    ),
]

DATASET_CASES = [
    (
        "linear-n_samples-zero",
        fastgd.datasets.make_linear,
        (0, 2),
        {},
        ValueError,
        r"n_samples must be >= 1",
    ),
    (
        "linear-n_samples-float",
        fastgd.datasets.make_linear,
        (10.0, 2),
        {},
        TypeError,
        r"n_samples must be an integer",
    ),
    (
        "linear-n_features-negative",
        fastgd.datasets.make_linear,
        (10, -1),
        {},
        ValueError,
        r"n_features must be >= 0",
    ),
    (
        "linear-noise-negative",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(noise=-1.0),
        ValueError,
        r"noise must be",
    ),
    (
        "linear-outliers-one",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(outliers=1.0),
        ValueError,
        r"outliers must be",
    ),
    (
        "linear-seed-negative",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(seed=-3),
        ValueError,
        r"seed must be >= 0",
    ),
    (
        "linear-dtype-int",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(dtype=np.int64),
        ValueError,
        r"dtype must be float32 or float64",
    ),
    (
        "linear-out-shape",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(out=(np.empty((10, 3)), np.empty(10))),
        ValueError,
        r"out\[0\] must be an ndarray .* of shape \(10, 2\)",
    ),
    (
        "linear-out-readonly",
        fastgd.datasets.make_linear,
        (10, 2),
        dict(out=(np.empty((10, 2)), np.broadcast_to(np.empty(1), (10,)))),
        ValueError,
        r"out\[1\] must be writeable",
    ),
    (
        "poly-degree-zero",
        fastgd.datasets.make_polynomial,
        (10, 0),
        {},
        ValueError,
        r"degree must be >= 1",
    ),
    (
        "poly-degree-float",
        fastgd.datasets.make_polynomial,
        (10, 2.0),
        {},
        TypeError,
        r"degree must be an integer",
    ),
    (
        "poly-dtype",
        fastgd.datasets.make_polynomial,
        (10, 2),
        dict(dtype=np.float16),
        ValueError,
        r"dtype must be",
    ),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("case,kw,exc,msg", FIT_CASES, ids=_ids(FIT_CASES))
def test_fit_rejects(no_kernels, backend, case, kw, exc, msg):
    kw = dict(kw)
    args = dict(X=kw.pop("X", X), y=kw.pop("y", Y))
    kw.setdefault("backend", backend)
    with pytest.raises(exc, match=msg):
        fastgd.fit(args["X"], args["y"], **kw)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("case,kw,exc,msg", LG_CASES, ids=_ids(LG_CASES))
def test_loss_and_grad_rejects(no_kernels, backend, case, kw, exc, msg):
    kw = dict(kw)
    Xa, ya, coef = kw.pop("X", X), kw.pop("y", Y), kw.pop("coef", [0.5, -0.5])
    kw.setdefault("backend", backend)
    with pytest.raises(exc, match=msg):
        fastgd.loss_and_grad(Xa, ya, coef, **kw)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [12, 300_000])  # serial and parallel passes
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("degree", [None, 2])
def test_loss_and_grad_names_nan_inf_after_its_one_pass(backend, dtype, n, where, degree):
    """The data are read once, by the fused kernel; a NaN/inf then gives the
    named error (array and first position), and no result."""
    rng = np.random.default_rng(1)
    Xa = rng.normal(size=(n, 2) if degree is None else n).astype(dtype)
    ya = rng.normal(size=n).astype(dtype)
    i = {"first": 0, "middle": n // 2, "last": n - 1}[where]
    coef = np.array([0.5, -0.5])
    for name, arr, pos, value in [
        ("X", Xa, (i, 1) if degree is None else i, np.nan),
        ("y", ya, i, -np.inf),
    ]:
        bad = arr.copy()
        bad[pos] = value
        Xb, yb = (bad, ya) if name == "X" else (Xa, bad)
        shown = str(pos).replace(" ", "") if degree is None or name == "y" else str(i)
        with pytest.raises(
            ValueError,
            match=rf"{name} contains {value} at position "
            rf"{re.escape(shown).replace(',', ', ?')};",
        ):
            fastgd.loss_and_grad(Xb, yb, coef, degree=degree, backend=backend)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("case,kw,exc,msg", MIN_CASES, ids=_ids(MIN_CASES))
def test_minimize_rejects(no_kernels, backend, case, kw, exc, msg):
    kw = dict(kw)
    fun, grad, x0 = kw.pop("fun", _fun), kw.pop("grad", _grad), kw.pop("x0", np.array([1.0, -2.0]))
    kw.setdefault("backend", backend)
    with pytest.raises(exc, match=msg):
        fastgd.minimize(fun, grad, x0, **kw)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("case,kw,exc,msg", MIN_LATE_CASES, ids=_ids(MIN_LATE_CASES))
def test_minimize_rejects_late_bad_returns(backend, case, kw, exc, msg):
    """The loop runs here (kernels not patched): the bad value comes on the 4th call."""
    kw = dict(kw)
    fun, grad = kw.pop("fun", _fun), kw.pop("grad", _grad)
    x0 = np.array([1.0, -2.0])
    with pytest.raises(exc, match=msg):
        fastgd.minimize(fun, grad, x0, lr=0.01, max_iter=50, backend=backend, **kw)
    assert x0.tolist() == [1.0, -2.0]


@pytest.mark.parametrize("case,func,args,kw,exc,msg", DATASET_CASES, ids=_ids(DATASET_CASES))
def test_datasets_reject(case, func, args, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        func(*args, **kw)


def test_every_issue_parameter_is_covered():
    """The error list names the parameter in every case (a regression guard on the tables)."""
    for cases in (FIT_CASES, LG_CASES, MIN_CASES, MIN_LATE_CASES):
        for case, _kw, exc, msg in cases:
            assert exc in (TypeError, ValueError)
            name = re.split(r"[ \\]", msg)[0]
            assert name in (
                "X",
                "y",
                "loss",
                "optimizer",
                "schedule",
                "backend",
                "record",
                "lr",
                "delta",
                "l2",
                "degree",
                "batch_size",
                "max_iter",
                "tol",
                "beta1",
                "beta2",
                "eps",
                "momentum",
                "rho",
                "gamma",
                "power_t",
                "unexpected",
                "callback",
                "coef_init",
                "intercept_init",
                "fit_intercept",
                "seed",
                "progress",
                "coef",
                "intercept",
                "fun",
                "grad",
                "x0",
            ), (case, msg)


def test_unused_hyperparameter_warns():
    """A valid hyperparameter the chosen optimizer does not use is not silent either."""
    with pytest.warns(
        UserWarning, match=r"hyperparameters \['beta1'\] are not used by optimizer 'gd'"
    ):
        fastgd.fit(X, Y, optimizer="gd", beta1=0.5, max_iter=2, backend="numpy")


@pytest.mark.parametrize("backend", AVAILABLE)
def test_valid_edge_values_are_accepted(backend):
    """The closed ends of the documented intervals work (no off-by-one in the checks)."""
    res = fastgd.fit(
        X,
        Y,
        optimizer="adam",
        beta1=0.0,
        beta2=0.0,
        max_iter=3,
        l2=0.0,
        tol=0.0,
        lr=np.float32(0.01),
        batch_size=np.int64(4),
        seed=np.random.default_rng(1),
        schedule="exponential",
        gamma=1.0,
        fit_intercept=np.True_,
        backend=backend,
    )
    assert res.n_iter == 3 and np.isfinite(res.coef).all()
    res = fastgd.fit(
        X,
        Y,
        optimizer="momentum",
        momentum=0.0,
        max_iter=3,
        schedule="invscaling",
        power_t=0.0,
        lr=np.array(0.05),
        backend=backend,
        record=None,
    )
    assert res.n_iter == 3


@pytest.mark.parametrize("backend", AVAILABLE)
def test_the_kernel_guard_works(no_kernels, backend):
    """Valid input does reach the (patched) kernels: the guard above is real."""
    with pytest.raises(KernelCalled):
        fastgd.fit(X, Y, backend=backend, max_iter=2)
    with pytest.raises(KernelCalled):
        fastgd.loss_and_grad(X, Y, [0.0, 0.0], backend=backend)
