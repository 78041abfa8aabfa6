"""Every compiled backend against the numpy reference, over every combination.

Same inputs and seed -> same trajectory: coef, intercept and history.loss
after 20 epochs agree to rtol 1e-9 (float64) / 1e-4 (float32), with and
without preconditioning.
"""

import itertools

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg
from fastgd.backends import resolve

from .conftest import AVAILABLE, COMPILED, small_linear, small_poly

RTOL = {np.float64: 1e-9, np.float32: 1e-4}
BATCHES = [None, 1, 7]  # full batch, SGD, mini-batch (60 rows -> a short last batch)
LRS = {
    "gd": 0.05,
    "momentum": 0.02,
    "nesterov": 0.02,
    "adagrad": 0.1,
    "rmsprop": 0.01,
    "adam": 0.05,
}

CASES = list(
    itertools.product(
        COMPILED,
        ["linear", "poly"],
        list(reg.LOSSES),
        list(reg.OPTIMIZERS),
        BATCHES,
        [np.float64, np.float32],
        ["auto", "none"],
    )
)


def _fit(backend, model, loss, opt, batch, dtype, **kw):
    if model == "linear":
        X, y, _, _ = small_linear(dtype=dtype)
        extra = {}
    else:
        X, y, _, _ = small_poly(dtype=dtype)
        extra = {"degree": 3}
    sched = {"gd": "invscaling", "momentum": "exponential"}.get(opt, "constant")
    # intercept_init: not the preconditioned default (the mean of y), where the
    # intercept's gradient is rounding noise that adaptive rules scale up to a
    # full step -- a different one on every summation order
    return fastgd.fit(
        X,
        y,
        loss=loss,
        delta=0.5,
        optimizer=opt,
        lr=LRS[opt] * (0.2 if batch == 1 else 1),
        schedule=sched,
        batch_size=batch,
        max_iter=20,
        tol=0.0,
        seed=3,
        l2=0.01,
        backend=backend,
        record="params",
        intercept_init=0.3,
        **extra,
        **kw,
    )


@pytest.mark.parametrize(
    "backend,model,loss,opt,batch,dtype,precondition",
    CASES,
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_same_trajectory_as_reference(backend, model, loss, opt, batch, dtype, precondition):
    ref = _fit("numpy", model, loss, opt, batch, dtype, precondition=precondition)
    got = _fit(backend, model, loss, opt, batch, dtype, precondition=precondition)
    assert got.precondition == ref.precondition == precondition
    rtol = RTOL[dtype]
    assert got.backend == backend and ref.backend == "numpy"
    assert got.n_iter == ref.n_iter == 20
    assert got.coef.dtype == dtype
    np.testing.assert_allclose(got.history.loss, ref.history.loss, rtol=rtol)
    scale = np.abs(ref.history.params).max()
    np.testing.assert_allclose(got.history.params, ref.history.params, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got.coef, ref.coef, rtol=rtol, atol=rtol * scale)
    assert got.intercept == pytest.approx(ref.intercept, rel=rtol, abs=float(rtol * scale))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("model", ["linear", "poly"])
@pytest.mark.parametrize("loss", list(reg.LOSSES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_and_grad_matches_reference(backend, model, loss, dtype):
    if model == "linear":
        X, y, coef, b = small_linear(n=5000, p=7, dtype=dtype)
        kw = {}
    else:
        X, y, coef, b = small_poly(n=5000, dtype=dtype)
        kw = {"degree": 3}
    c0 = (0.7 * coef).astype(dtype)
    ref = fastgd.loss_and_grad(X, y, c0, 0.3, loss=loss, delta=0.5, l2=0.1, backend="numpy", **kw)
    got = fastgd.loss_and_grad(X, y, c0, 0.3, loss=loss, delta=0.5, l2=0.1, backend=backend, **kw)
    rtol = RTOL[dtype] * (10 if dtype == np.float64 else 1)
    assert got[0] == pytest.approx(ref[0], rel=rtol)
    np.testing.assert_allclose(got[1], ref[1], rtol=rtol, atol=rtol * np.abs(ref[1]).max())
    assert got[2] == pytest.approx(ref[2], rel=rtol, abs=float(rtol * np.abs(ref[1]).max()))
    assert got[1].dtype == dtype


KERNEL_FUNCS = [
    "all_finite",
    "value_range",
    "objective_grad",
    "objective",
    "lsq_stats",
    "batch_grad",
    "update",
    "run",
]


@pytest.mark.parametrize("backend", COMPILED)
def test_backend_exposes_kernel_interface(backend):
    _, mod = resolve(backend)
    for name in KERNEL_FUNCS:
        assert callable(getattr(mod, name, None)), f"{backend} lacks {name}"


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("opt", list(reg.OPTIMIZERS))
def test_every_optimizer_code_is_implemented(backend, opt):
    """A registry entry missing from a compiled update rule fails here."""
    _, mod = resolve(backend)
    _, ref = resolve("numpy")
    code = reg.OPTIMIZERS[opt].code
    hp = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
    for dt in (np.float64, np.float32):
        th_a = np.array([1.0, -2.0, 0.5], dtype=dt)
        th_b = th_a.copy()
        st_a = np.zeros((2, 3), dtype=dt)
        st_b = st_a.copy()
        g = np.array([0.3, -0.1, 2.0], dtype=dt)
        for t in range(1, 4):
            mod.update(code, th_a, g, st_a, 0.1, hp, t)
            ref.update(code, th_b, g, st_b, 0.1, hp, t)
        np.testing.assert_allclose(th_a, th_b, rtol=RTOL[dt])
        assert not np.array_equal(th_a, np.array([1.0, -2.0, 0.5], dtype=dt))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("loss", list(reg.LOSSES))
def test_every_loss_code_is_implemented(backend, loss):
    """Hand-checked loss vectors, through each compiled objective_grad."""
    _, mod = resolve(backend)
    spec = reg.LOSSES[loss]
    for r, delta, rho_val, psi_val in spec.vectors:
        X = np.zeros((1, 1))
        y = np.array([-r])  # prediction 0 -> residual r
        theta = np.zeros(2)
        grad = np.empty(2)
        f = mod.objective_grad(0, spec.code, X, y, theta, 1.0, delta, np.zeros(2), 1, grad)
        assert f == pytest.approx(rho_val)
        assert grad[1] == pytest.approx(psi_val)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000, 300_001])  # serial and parallel scans
def test_all_finite_finds_every_nan_and_inf(backend, dtype, n):
    _, mod = resolve(backend)
    a = np.linspace(-1e30, 1e30, n).astype(dtype)
    assert mod.all_finite(a) is True
    for pos in sorted({0, n // 2, n - 1} if n else set()):
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[pos] = bad
            assert mod.all_finite(b) is False, (pos, bad)
    assert mod.all_finite(a.reshape(-1, 1)) is True  # any C-contiguous shape


@pytest.mark.parametrize("backend", AVAILABLE)
def test_all_finite_extremes_are_finite(backend):
    _, mod = resolve(backend)
    for dt in (np.float64, np.float32):
        info = np.finfo(dt)
        a = np.array([info.max, -info.max, info.tiny, info.smallest_subnormal, -0.0] * 5, dtype=dt)
        assert mod.all_finite(a) is True


def test_auto_picks_cython_for_every_job(monkeypatch):
    """No job waits for a JIT: Cython (when built) for full batches, SGD on any
    size of X and mini-batches -- the benchmarks rank it first or level on each."""
    from fastgd import backends
    from fastgd.backends import AUTO_ORDER

    X, y, _, _ = small_linear()
    want = next(b for b in AUTO_ORDER if b in fastgd.available_backends())
    if "cython" in fastgd.available_backends():
        assert want == "cython"
    monkeypatch.setattr(backends, "LARGE_SGD_BYTES", 1)  # every X counts as large
    for kw in [
        {},
        {"batch_size": 1},
        {"batch_size": 7},
        {"batch_size": len(y)},
        {"batch_size": 7, "optimizer": "adam"},
    ]:
        res = fastgd.fit(X, y, max_iter=3, seed=0, **kw)
        assert res.backend == want, kw
        ref = fastgd.fit(X, y, max_iter=3, seed=0, backend="numpy", **kw)
        np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-9, atol=1e-12)
