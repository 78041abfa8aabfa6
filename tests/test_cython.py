"""The Cython extension itself: its build (OpenMP or serial), its row-parallel
passes, read-only and int64 inputs, the moments path of polynomial least
squares, sample weights and the schedule offset in every pass, and concurrent
calls from Python threads.

The cross-backend trajectory tests (``test_backends.py``) use small data that
fit in one chunk; the tests here use enough rows for the row-parallel and
moments code paths.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import fastgd
from fastgd.backends import _numpy as ref

cy = pytest.importorskip("fastgd.backends._cython", reason="the Cython extension is not built")

ROOT = Path(__file__).resolve().parents[1]
RTOL = {np.float64: 1e-9, np.float32: 1e-4}


def _problem(model, dtype, n=40_000, p=12, seed=0):
    """Data big enough for several row chunks; theta away from the optimum."""
    if model == 0:
        X, y, coef, b = fastgd.datasets.make_linear(
            n, p, noise=0.5, outliers=0.05, seed=seed, dtype=dtype
        )
        theta = np.r_[0.6 * coef, 0.3 * b].astype(dtype)
        xscale = 1.0
    else:
        x, y, coef, b = fastgd.datasets.make_polynomial(n, 3, noise=0.1, seed=seed, dtype=dtype)
        X = (2.5 * x).astype(dtype).reshape(-1, 1)
        theta = np.r_[0.6 * coef, 0.3 * b].astype(dtype)
        xscale = 0.4
    l2w = np.r_[np.full(theta.shape[0] - 1, 0.05), 0.0].astype(dtype)
    return X, y, theta, xscale, l2w


# ---------------------------------------------------------------- build


def test_openmp_flag_is_reported():
    assert isinstance(cy.openmp, bool)
    assert cy.max_threads() >= 1
    if not cy.openmp:
        assert cy.max_threads() == 1


@pytest.mark.slow
def test_serial_build_without_openmp(tmp_path):
    """FASTGD_NO_OPENMP=1 builds a serial extension that gives the same numbers.

    The package is copied to a temporary directory and built there in a
    subprocess, so the in-place build of the repository is not touched.
    """
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "fastgd",
        src / "fastgd",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "_cython.c", "__pycache__"),
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("FASTGD_NATIVE", "PYTHONPATH")}
    env["FASTGD_NO_OPENMP"] = "1"
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert "OpenMP=no" in build.stderr
    compile_lines = [
        ln for ln in (build.stdout + build.stderr).splitlines() if "_cython.c -o" in ln
    ]
    assert compile_lines and not any("-fopenmp" in ln for ln in compile_lines)

    X, y, theta, xscale, l2w = _problem(0, np.float64, n=30_000, p=9)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(src)!r})
        from fastgd.backends import _cython as cy
        assert cy.__file__.startswith({str(src)!r}), cy.__file__
        print("openmp", cy.openmp, cy.max_threads())
        X = np.load({str(tmp_path / "X.npy")!r}); y = np.load({str(tmp_path / "y.npy")!r})
        theta = np.array({theta.tolist()!r}); l2w = np.array({l2w.tolist()!r})
        for loss in (0, 1):
            g = np.empty_like(theta)
            f = cy.objective_grad(0, loss, X, y, theta, 1.0, 0.7, l2w, 1, g)
            print(repr(f), *map(repr, g.tolist()))
    """)
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0] == "openmp False 1"
    for loss, line in zip((0, 1), lines[1:]):
        vals = np.array([float(v) for v in line.split()])
        g_ref = np.empty_like(theta)
        f_ref = ref.objective_grad(0, loss, X, y, theta, 1.0, 0.7, l2w, 1, g_ref)
        assert vals[0] == pytest.approx(f_ref, rel=1e-12)
        np.testing.assert_allclose(vals[1:], g_ref, rtol=1e-10, atol=1e-12)
        # the chunking does not depend on threads: the serial build matches this one
        g_here = np.empty_like(theta)
        f_here = cy.objective_grad(0, loss, X, y, theta, 1.0, 0.7, l2w, 1, g_here)
        assert vals[0] == pytest.approx(f_here, rel=1e-14)
        np.testing.assert_allclose(vals[1:], g_here, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------- row-parallel passes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("model", [0, 1])
def test_parallel_objective_grad_matches_reference(model, loss, dtype):
    X, y, theta, xscale, l2w = _problem(model, dtype)
    g_cy, g_ref = np.empty_like(theta), np.empty_like(theta)
    f_cy = cy.objective_grad(model, loss, X, y, theta, xscale, 0.7, l2w, 1, g_cy)
    # the reference takes basis arrays only; the extension also a float s ([0, s])
    f_ref = ref.objective_grad(
        model, loss, X, y, theta, np.array([0.0, xscale]), 0.7, l2w, 1, g_ref
    )
    rtol = RTOL[dtype]
    assert g_cy.dtype == dtype
    assert f_cy == pytest.approx(f_ref, rel=rtol)
    np.testing.assert_allclose(g_cy, g_ref, rtol=rtol, atol=rtol * np.abs(g_ref).max())
    assert cy.objective(model, loss, X, y, theta, xscale, 0.7, l2w) == pytest.approx(
        f_cy, rel=1e-12
    )
    g0 = np.empty_like(theta)
    cy.objective_grad(model, loss, X, y, theta, xscale, 0.7, l2w, 0, g0)
    assert g0[-1] == 0 and np.array_equal(g0[:-1], g_cy[:-1])


def test_result_does_not_depend_on_thread_count():
    """Chunks are fixed by the problem size: 1 thread and all threads agree bit for bit."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X, y, theta, xscale, l2w = _problem(0, np.float64, n=60_000, p=20)
    g_all = np.empty_like(theta)
    f_all = cy.objective_grad(0, 1, X, y, theta, 1.0, 0.7, l2w, 1, g_all)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cy.max_threads() == 1
        g_one = np.empty_like(theta)
        f_one = cy.objective_grad(0, 1, X, y, theta, 1.0, 0.7, l2w, 1, g_one)
    assert f_one == f_all
    np.testing.assert_array_equal(g_one, g_all)
    w = np.random.default_rng(1).uniform(0.0, 2.0, X.shape[0])
    gw_all, gw_one = np.empty_like(theta), np.empty_like(theta)
    fw_all = cy.objective_grad(0, 1, X, y, theta, 1.0, 0.7, l2w, 1, gw_all, w=w)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        fw_one = cy.objective_grad(0, 1, X, y, theta, 1.0, 0.7, l2w, 1, gw_one, w=w)
    assert fw_one == fw_all
    np.testing.assert_array_equal(gw_one, gw_all)


# ---------------------------------------------------------------- unusual inputs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_read_only_memmap_and_int64_order(tmp_path, dtype):
    X, y, theta, xscale, l2w = _problem(0, dtype, n=3000, p=5)
    Xm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=dtype, shape=X.shape)
    Xm[:] = X
    Xm.flush()
    del Xm
    Xr = np.load(tmp_path / "X.npy", mmap_mode="r")
    yr = y.copy()
    yr.flags.writeable = False
    assert not Xr.flags.writeable
    idx = np.random.default_rng(1).permutation(3000)
    for order_dtype in (np.int32, np.int64):
        g_cy, g_ref = np.empty_like(theta), np.empty_like(theta)
        cy.batch_grad(0, 1, Xr, yr, theta, 1.0, 0.7, l2w, 1, idx.astype(order_dtype), 5, 300, g_cy)
        ref.batch_grad(0, 1, X, y, theta, 1.0, 0.7, l2w, 1, idx, 5, 300, g_ref)
        np.testing.assert_allclose(g_cy, g_ref, rtol=RTOL[dtype])
    # a whole stochastic fit from read-only data with an int64 order
    state = np.zeros((2, theta.shape[0]), dtype=dtype)
    hp = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])
    shp = np.array([0.25, 0.99])
    order = np.stack([idx, idx[::-1]]).astype(np.int64)
    res = []
    for mod, XX, yy in ((cy, Xr, yr), (ref, X, y)):
        th = theta.copy()
        st = state.copy()
        g = np.zeros_like(theta)
        hist = np.empty(3)
        out = mod.run(
            0,
            0,
            XX,
            yy,
            th,
            1.0,
            1.0,
            l2w,
            1,
            5,
            hp,
            st,
            0,
            0,
            0.01,
            shp,
            0,
            2,
            16,
            order,
            0.0,
            1,
            g,
            float("nan"),
            hist,
            np.empty((0, theta.shape[0]), dtype),
        )
        res.append((out, th, hist))
    (out_c, th_c, h_c), (out_r, th_r, h_r) = res
    assert out_c[:3] == out_r[:3]
    np.testing.assert_allclose(th_c, th_r, rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(h_c, h_r, rtol=RTOL[dtype])


# ---------------------------------------------------------------- epoch loop


def _fit(backend, **kw):
    return fastgd.fit(backend=backend, **kw)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_sample_gd_path_matches_reference(fit_intercept, dtype):
    """batch_size=1 with plain gd takes a fused path; it walks the reference trajectory."""
    X, y, _, _, _ = _problem(0, dtype, n=500, p=6)
    kw = dict(
        X=X,
        y=y,
        loss="huber",
        delta=0.5,
        batch_size=1,
        lr=0.01,
        max_iter=4,
        tol=0.0,
        l2=0.02,
        seed=5,
        fit_intercept=fit_intercept,
        record="params",
    )
    got, want = _fit("cython", **kw), _fit("numpy", **kw)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(
        got.history.params,
        want.history.params,
        rtol=rtol,
        atol=rtol * np.abs(want.history.params).max(),
    )
    np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=rtol)
    assert got.info["steps"] == want.info["steps"] == 4 * 500
    if not fit_intercept:
        assert got.intercept == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("opt", ["gd", "nesterov", "adam"])
def test_poly_mse_moments_path_matches_reference(opt, dtype):
    """Full-batch polynomial MSE runs its epochs from the data's moments."""
    x, y, _, _ = fastgd.datasets.make_polynomial(50_000, 4, noise=0.1, seed=2, dtype=dtype)
    kw = dict(
        X=(3.0 * x).astype(dtype),
        y=y,
        degree=4,
        optimizer=opt,
        lr={"gd": 0.3, "nesterov": 0.1, "adam": 0.05}[opt],
        max_iter=60,
        tol=0.0,
        l2=0.001,
        record="params",
        precondition="none",
    )  # 60 epochs above the noise floor
    got, want = _fit("cython", **kw), _fit("numpy", **kw)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=rtol)
    np.testing.assert_allclose(
        got.history.params,
        want.history.params,
        rtol=rtol,
        atol=rtol * np.abs(want.history.params).max(),
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_linear_mse_gram_path_matches_reference(fit_intercept, dtype):
    """Full-batch linear MSE with more epochs than parameters runs from the Gram matrix."""
    X, y, _, _, _ = _problem(0, dtype, n=20_000, p=12)
    kw = dict(
        X=X,
        y=y,
        optimizer="momentum",
        lr=0.05,
        max_iter=40,
        tol=0.0,
        l2=0.01,
        fit_intercept=fit_intercept,
        record="params",
    )
    got, want = _fit("cython", **kw), _fit("numpy", **kw)
    rtol = RTOL[dtype]
    np.testing.assert_allclose(got.history.loss, want.history.loss, rtol=rtol)
    np.testing.assert_allclose(
        got.history.params,
        want.history.params,
        rtol=rtol,
        atol=rtol * np.abs(want.history.params).max(),
    )


def test_exact_fit_keeps_the_reference_loss_history():
    """y = x**2 fitted by a quadratic: the loss falls towards 0 and stays exact."""
    x = np.arange(1.0, 6.0)
    kw = dict(
        X=x,
        y=x**2,
        degree=2,
        optimizer="nesterov",
        lr=0.3,
        max_iter=3000,
        tol=0.0,
        precondition="none",
    )  # the textbook path: hundreds of epochs to the noise floor
    got, want = _fit("cython", **kw), _fit("numpy", **kw)
    # down to 1e-14 of the start (below that both are rounding noise of the parameters)
    keep = want.history.loss > 1e-14 * want.history.loss[0]
    assert keep.sum() > 300
    np.testing.assert_allclose(got.history.loss[keep], want.history.loss[keep], rtol=1e-8)
    np.testing.assert_allclose(np.r_[got.intercept, got.coef], [0.0, 0.0, 1.0], atol=1e-12)


def test_chunked_runs_equal_one_run():
    """A fit split into many ``run`` calls (a callback forces one epoch per call) is the same fit."""
    x, y, _, _ = fastgd.datasets.make_polynomial(5000, 3, noise=0.1, seed=4)
    kw = dict(X=x, y=y, degree=3, optimizer="momentum", lr=0.2, max_iter=30, tol=0.0)
    one = _fit("cython", **kw)
    seen = []
    many = _fit("cython", callback=lambda e, c, b, f: seen.append(f), **kw)
    assert len(seen) == 30
    np.testing.assert_array_equal(many.coef, one.coef)
    np.testing.assert_array_equal(many.history.loss, one.history.loss)


def test_polyfit_recovered_to_high_precision():
    x, y, _, _ = fastgd.datasets.make_polynomial(20_000, 3, noise=0.1, seed=7)
    res = fastgd.fit(
        x,
        y,
        degree=3,
        optimizer="nesterov",
        lr=0.3,
        momentum=0.9,
        max_iter=20_000,
        tol=1e-13,
        backend="cython",
        record=None,
    )
    want = np.polyfit(x, y, 3)[::-1]
    assert res.status == "converged"
    np.testing.assert_allclose(np.r_[res.intercept, res.coef], want, rtol=1e-8)


def test_tiny_fit_converges_to_identity():
    """The 11-point, one-parameter example: y = x without intercept gives slope 1."""
    x = np.array([0.18, 0.1, 0.16, 0.08, 0.09, 0.11, 0.12, 0.17, 0.15, 0.14, 0.13])
    kw = dict(fit_intercept=False, lr=1.0, max_iter=500, tol=0.0, precondition="none")
    res = fastgd.fit(x.reshape(-1, 1), x, backend="cython", **kw)
    want = fastgd.fit(x.reshape(-1, 1), x, backend="numpy", **kw)
    assert res.n_iter == 500
    assert res.coef[0] == pytest.approx(want.coef[0], rel=1e-12)
    assert res.coef[0] == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_allclose(res.history.loss, want.history.loss, rtol=1e-9)


@pytest.mark.parametrize("batch_size", [None, 1, 8])
def test_divergence_restores_last_finite_parameters(batch_size):
    X, y, _, _, _ = _problem(0, np.float64, n=400, p=4)
    kw = dict(
        X=X * 1e3,
        y=y,
        lr=5.0,
        batch_size=batch_size,
        max_iter=200,
        tol=0.0,
        seed=0,
        record="params",
    )
    with pytest.warns(fastgd.DivergenceWarning):
        got = _fit("cython", **kw)
    with pytest.warns(fastgd.DivergenceWarning):
        want = _fit("numpy", **kw)
    assert got.status == want.status == "diverged"
    assert got.n_iter == want.n_iter
    assert np.all(np.isfinite(got.coef))
    np.testing.assert_allclose(got.coef, want.coef, rtol=1e-9)


# ---------------------------------------------------------------- sample weights


HP = np.array([0.9, 0.9, 0.999, 1e-8, 0.99])


def _weights(n, dtype, seed=0):
    """Weights normalised to mean 1 (as the Python layer passes them), with zeros
    and light ones (below the shortcut guard's WLIGHT) among them."""
    rng = np.random.default_rng(seed + 50)
    w = rng.uniform(0.0, 2.0, n)
    w[rng.random(n) < 0.1] = 0.0
    w[rng.random(n) < 0.05] = 0.01
    return (w / w.mean()).astype(dtype)


def _kernel_run(
    mod,
    model,
    loss,
    X,
    y,
    theta,
    basis,
    l2w,
    opt,
    batch,
    n_ep,
    lr,
    w,
    pre=None,
    stats=None,
    sched=0,
    sched_hp=(0.3, 0.9),
    seed=0,
):
    """``mod.run`` from ``theta`` (updated) with the loss and parameter history."""
    n, m = X.shape[0], theta.shape[0]
    rng = np.random.default_rng(seed)
    order = (
        np.array([rng.permutation(n) for _ in range(n_ep)], dtype=np.int64)
        if batch
        else np.empty((0, 0), dtype=np.int64)
    )
    hist, params = np.zeros(n_ep + 1), np.zeros((n_ep + 1, m), dtype=X.dtype)
    with np.errstate(all="ignore"):  # diverging runs overflow on their way
        out = mod.run(
            model,
            loss,
            X,
            y,
            theta,
            basis,
            0.7,
            l2w,
            1,
            opt,
            HP,
            np.zeros((2, m), dtype=X.dtype),
            0,
            sched,
            lr,
            np.array(sched_hp),
            0,
            n_ep,
            batch,
            order,
            0.0,
            1,
            np.zeros(m, dtype=X.dtype),
            math.nan,
            hist,
            params,
            pre=pre,
            stats=stats,
            w=w,
        )
    return out, hist, params


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", [0, 1])
@pytest.mark.parametrize("model", [0, 1])
def test_weighted_passes_match_reference(model, loss, dtype):
    """Row-parallel sizes: objective, gradient, mini-batch gradients and statistics."""
    X, y, theta, xscale, l2w = _problem(model, dtype)
    basis = np.array([0.0, xscale])
    w = _weights(X.shape[0], dtype)
    rtol = {np.float64: 1e-12, np.float32: 1e-5}[dtype]
    g_cy, g_ref = np.empty_like(theta), np.empty_like(theta)
    f_cy = cy.objective_grad(model, loss, X, y, theta, basis, 0.7, l2w, 1, g_cy, w=w)
    f_ref = ref.objective_grad(model, loss, X, y, theta, basis, 0.7, l2w, 1, g_ref, w=w)
    assert f_cy == pytest.approx(f_ref, rel=rtol)
    np.testing.assert_allclose(g_cy, g_ref, rtol=rtol, atol=rtol * np.abs(g_ref).max())
    assert cy.objective(model, loss, X, y, theta, basis, 0.7, l2w, w=w) == pytest.approx(
        ref.objective(model, loss, X, y, theta, basis, 0.7, l2w, w=w), rel=rtol
    )
    idx = np.random.default_rng(2).permutation(X.shape[0]).astype(np.int32)
    for start, stop in ((0, 1), (5, 8), (100, 164), (0, X.shape[0])):
        cy.batch_grad(model, loss, X, y, theta, basis, 0.7, l2w, 1, idx, start, stop, g_cy, w=w)
        ref.batch_grad(model, loss, X, y, theta, basis, 0.7, l2w, 1, idx, start, stop, g_ref, w=w)
        np.testing.assert_allclose(
            g_cy, g_ref, rtol=10 * rtol, atol=10 * rtol * np.abs(g_ref).max()
        )
    p = theta.shape[0] - 1
    for got, want in zip(
        cy.lsq_stats(model, X, y, basis, p, w=w), ref.lsq_stats(model, X, y, basis, p, w=w)
    ):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11 * np.abs(want).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", [0, 1])
def test_integer_weights_repeat_rows_and_zero_drops_them(model, dtype):
    X, y, theta, xscale, l2w = _problem(model, dtype, n=30_000, p=6)
    basis = np.array([0.0, xscale])
    k = np.random.default_rng(3).integers(0, 4, X.shape[0])  # 0 drops the row
    Xr, yr = np.repeat(X, k, axis=0), np.repeat(y, k)
    p = theta.shape[0] - 1
    for got, want in zip(
        cy.lsq_stats(model, X, y, basis, p, w=k.astype(dtype)),
        cy.lsq_stats(model, Xr, yr, basis, p),
    ):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # the weighted sums are divided by n, the repeated ones by sum(k)
    ratio = k.sum() / X.shape[0]
    zero = np.zeros_like(l2w)
    rtol = {np.float64: 1e-12, np.float32: 2e-5}[dtype]
    for loss in (0, 1):
        g_w, g_r = np.empty_like(theta), np.empty_like(theta)
        f_w = cy.objective_grad(
            model, loss, X, y, theta, basis, 0.7, zero, 1, g_w, w=k.astype(dtype)
        )
        f_r = cy.objective_grad(model, loss, Xr, yr, theta, basis, 0.7, zero, 1, g_r)
        assert f_w == pytest.approx(f_r * ratio, rel=rtol)
        np.testing.assert_allclose(
            g_w, g_r * ratio, rtol=10 * rtol, atol=10 * rtol * np.abs(g_w).max()
        )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", [0, 1])
def test_unit_weights_give_the_unweighted_bits(model, dtype):
    """w = 1 multiplies every term by an exact 1: every pass and fast path of ``run``
    (paired rows, fused one-sample gd with and without ``pre``, mini-batches, the
    Gram matrix and moments of the shortcut) gives the unweighted bits."""
    X, y, theta, xscale, l2w = _problem(model, dtype, n=20_000, p=9)
    basis = np.array([0.1, xscale])
    m = theta.shape[0]
    ones = np.ones(X.shape[0], dtype)
    g1, g2 = np.empty_like(theta), np.empty_like(theta)
    assert cy.objective_grad(
        model, 1, X, y, theta, basis, 0.7, l2w, 1, g1, w=ones
    ) == cy.objective_grad(model, 1, X, y, theta, basis, 0.7, l2w, 1, g2)
    np.testing.assert_array_equal(g1, g2)
    pre1 = np.vstack([np.linspace(0.5, 1.5, m), np.linspace(-0.1, 0.1, m)])
    cases = [(0, 0, 0, 2 * m, None), (1, 5, 8, 2, None), (0, 0, 1, 2, None)]
    if model == 0:
        cases.append((0, 0, 1, 2, pre1))
    for loss, opt, batch, n_ep, pre in cases:
        th1, th2 = theta.copy(), theta.copy()
        out1 = _kernel_run(
            cy, model, loss, X, y, th1, basis, l2w, opt, batch, n_ep, 1e-3, ones, pre=pre
        )
        out2 = _kernel_run(
            cy, model, loss, X, y, th2, basis, l2w, opt, batch, n_ep, 1e-3, None, pre=pre
        )
        assert out1[0] == out2[0]
        np.testing.assert_array_equal(out1[1], out2[1])
        np.testing.assert_array_equal(out1[2], out2[2])


RUN_CASES = [
    (model, opt, batch, kind, dtype)
    for model in (0, 1)
    for opt in range(6)
    for batch in (0, 1, 3, 8)
    for kind in (0, 1, 2)
    for dtype in (np.float64, np.float32)
    if not (model == 1 and kind == 1)
]


@pytest.mark.parametrize(
    "model,opt,batch,kind,dtype", RUN_CASES, ids=lambda v: getattr(v, "__name__", str(v))
)
def test_weighted_run_matches_reference(model, opt, batch, kind, dtype):
    """Every pass of ``run`` weighted, with a schedule offset; full-batch MSE takes the
    least-squares shortcut (12 epochs > p + 1), with and without ``stats``."""
    n, p = 200, (4 if model == 0 else 3)
    rng = np.random.default_rng(opt + 7 * batch)
    if model == 0:
        X = (rng.normal(size=(n, p)) * np.linspace(0.5, 2.0, p) + 1.0).astype(dtype)
        y = (X @ rng.normal(size=p) + 0.5 + 0.3 * rng.normal(size=n)).astype(dtype)
        basis = np.array([0.0, 1.0])
    else:
        x = rng.uniform(-2.0, 2.0, n)
        X, y = x.astype(dtype)[:, None], (x**3 - x + 0.1 * rng.normal(size=n)).astype(dtype)
        basis = np.array([0.25, 0.45])
    m = p + 1
    theta0 = (0.3 * rng.normal(size=m)).astype(dtype)
    l2w = np.r_[np.full(p, 0.01), 0.0].astype(dtype)
    w = _weights(n, dtype, seed=opt)
    if kind == 0:
        pre = None
    elif kind == 1:
        pre = np.vstack([np.linspace(0.5, 2.0, m), np.linspace(-0.1, 0.1, m)])
    else:
        T = np.eye(m) + 0.05 * np.random.default_rng(2).normal(size=(m, m))
        pre = np.vstack([T, np.linalg.inv(T)])
    lr = {0: 0.02, 1: 0.005, 2: 0.005, 3: 0.05, 4: 0.005, 5: 0.01}[opt] * (0.2 if batch == 1 else 1)
    n_ep = 8 if batch else 12
    loss = opt % 2 if batch else (opt // 3) % 2  # full batch: mse (the shortcut) for opt 0..2
    kw = dict(pre=pre, sched=opt % 3, sched_hp=(0.3, 0.9, 7.0), seed=opt)
    rtol = {np.float64: 1e-11, np.float32: 2e-5}[dtype]
    want_theta = theta0.copy()
    want = _kernel_run(
        ref, model, loss, X, y, want_theta, basis, l2w, opt, batch, n_ep, lr, w, **kw
    )
    stats_options = [None]
    if batch == 0 and loss == 0:
        stats_options.append(ref.lsq_stats(model, X, y, basis, p, w=w))
    for stats in stats_options:
        got_theta = theta0.copy()
        got = _kernel_run(
            cy, model, loss, X, y, got_theta, basis, l2w, opt, batch, n_ep, lr, w, stats=stats, **kw
        )
        assert got[0][:3] == want[0][:3] == (n_ep, 0, n_ep * (1 if batch == 0 else -(-n // batch)))
        np.testing.assert_allclose(got[1], want[1], rtol=rtol)
        scale = float(np.abs(want[2]).max())
        np.testing.assert_allclose(got[2], want[2], rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(got_theta, want_theta, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("model", [0, 1])
def test_weighted_shortcut_diverges_where_the_reference_does(model, dtype):
    """An outlier row of weight 0 or below the guard's WLIGHT overflows first: weighted
    statistics cannot see it, the guard sends that epoch to the exact pass."""
    n, p = 200, (3 if model == 0 else 4)
    seen = set()
    for w_out, scale, lr, stats in itertools.product(
        (0.0, 0.01, 0.2, 1.0), (1.0, 1e3, 1e6), (0.5, 2.0, 8.0), (False, True)
    ):
        rng = np.random.default_rng(1)
        if model == 0:
            X = rng.normal(size=(n, p))
            X[0] *= scale
            y = X @ np.ones(p) + 0.1 * rng.normal(size=n)
        else:
            x = rng.uniform(-1.0, 1.0, n)
            x[0] = scale
            X, y = x[:, None], x**2 + 0.1 * rng.normal(size=n)
        X, y = X.astype(dtype), y.astype(dtype)
        w = np.ones(n)
        w[0] = w_out
        w = (w / w.mean()).astype(dtype)
        basis = np.array([0.0, 1.0])
        st = ref.lsq_stats(model, X, y, basis, p, w=w) if stats else None
        got_theta, want_theta = np.zeros(p + 1, dtype), np.zeros(p + 1, dtype)
        want = _kernel_run(
            ref, model, 0, X, y, want_theta, basis, np.zeros(p + 1, dtype), 0, 0, 300, lr, w
        )
        if want[0][1] != 2:  # only the diverging runs: converged ones stop at tol = 0 on
            continue  # an exact fixed point, which the shortcut's rounding may miss
        got = _kernel_run(
            cy, model, 0, X, y, got_theta, basis, np.zeros(p + 1, dtype), 0, 0, 300, lr, w, stats=st
        )
        assert got[0][:3] == want[0][:3], (w_out, scale, lr, stats)
        np.testing.assert_allclose(
            got_theta, want_theta, rtol=1e-4 if dtype == np.float32 else 1e-9
        )
        seen.add(w_out)
    assert {0.0, 0.01} <= seen  # zero and light outlier rows among the diverging runs


def test_weights_must_match_the_rows():
    X, y, theta, xscale, l2w = _problem(0, np.float64, n=100, p=3)
    g = np.empty_like(theta)
    with pytest.raises(ValueError, match="one weight per row"):
        cy.objective_grad(0, 0, X, y, theta, 1.0, 0.7, l2w, 1, g, w=np.ones(99))
    with pytest.raises(ValueError):  # the data dtype: float64 here
        cy.objective_grad(0, 0, X, y, theta, 1.0, 0.7, l2w, 1, g, w=np.ones(100, np.float32))


def test_schedule_offset():
    """sched_hp[2] shifts the schedule's epoch; a length-2 sched_hp is offset 0."""
    for sched in (0, 1, 2):
        for epoch in (0, 1, 9):
            for hp in ([0.25, 0.5], [0.25, 0.5, 0.0], [0.25, 0.5, 3.0]):
                a = np.array(hp)
                assert cy.schedule(sched, 0.8, a, epoch) == ref.schedule(sched, 0.8, a, epoch)
            assert cy.schedule(sched, 0.8, np.array([0.25, 0.5, 3.0]), epoch) == cy.schedule(
                sched, 0.8, np.array([0.25, 0.5]), epoch + 3
            )


# ---------------------------------------------------------------- threads


def test_eight_threads_give_the_sequential_results():
    """Concurrent fits (full batch on the parallel path, SGD, moments) share no state."""
    jobs = []
    for i in range(8):
        dtype = np.float32 if i % 4 == 3 else np.float64
        if i % 3 == 0:
            X, y, _, _, _ = _problem(0, dtype, n=20_000 + 100 * i, p=8, seed=i)
            kw = dict(X=X, y=y, loss="huber", optimizer="adam", lr=0.05, max_iter=15, tol=0.0)
        elif i % 3 == 1:
            X, y, _, _, _ = _problem(0, dtype, n=3000, p=5, seed=i)
            kw = dict(X=X, y=y, batch_size=1 + i, lr=0.005, max_iter=3, tol=0.0, seed=i)
        else:
            x, y, _, _ = fastgd.datasets.make_polynomial(30_000, 3, seed=i, dtype=dtype)
            kw = dict(X=x, y=y, degree=3, optimizer="nesterov", lr=0.2, max_iter=200, tol=0.0)
        jobs.append(kw)
    sequential = [_fit("cython", record="params", **kw) for kw in jobs]

    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)
    errors = []

    def worker(k):
        try:
            barrier.wait()
            results[k] = _fit("cython", record="params", **jobs[k])
        except BaseException as exc:  # noqa: BLE001 # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for got, want in zip(results, sequential):
        np.testing.assert_array_equal(got.coef, want.coef)
        assert got.intercept == want.intercept
        np.testing.assert_array_equal(got.history.params, want.history.params)
        np.testing.assert_array_equal(got.history.loss, want.history.loss)


def test_minimize_through_the_cython_backend():
    res = fastgd.minimize(
        lambda v: float(v @ v),
        lambda v: 2 * v,
        np.array([3.0, -4.0]),
        optimizer="adam",
        lr=0.1,
        max_iter=2000,
        tol=1e-10,
        backend="cython",
    )
    assert res.backend == "cython"
    np.testing.assert_allclose(res.x, 0.0, atol=1e-4)


def test_simd_variants_give_the_same_bits(tmp_path):
    """The AVX2 row primitives (chosen at import) and the baseline ones agree bit for bit."""
    X, y, theta, _, l2w = _problem(0, np.float64, n=3000, p=37)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    np.savez(tmp_path / "d.npz", X=X, y=y, X32=X32, y32=y32, theta=theta, l2w=l2w)
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        import fastgd
        from fastgd.backends import _cython as cy
        d = np.load({str(tmp_path / "d.npz")!r})
        out = {{"simd": cy.simd}}
        for tag, X, y in (("64", d["X"], d["y"]), ("32", d["X32"], d["y32"])):
            th = d["theta"].astype(X.dtype); l2w = d["l2w"].astype(X.dtype)
            g = np.empty_like(th)
            f = cy.objective_grad(0, 1, X, y, th, 1.0, 0.7, l2w, 1, g)
            r = fastgd.fit(X, y, batch_size=1, lr=0.002, max_iter=2, tol=0.0, seed=1, l2=0.01,
                           backend="cython")
            out[tag] = np.r_[f, g.astype(np.float64), r.coef.astype(np.float64), r.intercept,
                             r.history.loss].tolist()
        print(repr(out))
    """)
    runs = {}
    for simd in ("", "baseline"):
        env = dict(os.environ, FASTGD_SIMD=simd)
        proc = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[simd] = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    assert runs["baseline"]["simd"] == "baseline"
    for tag in ("64", "32"):
        assert runs[""][tag] == runs["baseline"][tag]
