"""``fastgd demo``: fit large synthetic problems and show what gradient descent does.

The default run (``--scale 1``) generates 3 million rows of linear data with
10 % gross outliers and a 10-million-point cubic, then prints

1. data generation throughput;
2. MSE against Huber on the outliers (coefficient error against the truth);
3. the closed-form check: the MSE fit against ``np.linalg.lstsq``;
4. GD, momentum, Adam and mini-batch SGD on the cubic (loss curves);
5. the compilation (JIT warm-up) time of each compiled backend, and every
   available backend's time per epoch and speedup over the numpy reference
   (the reference is timed on a subsample of rows, for one epoch);

and writes PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from . import datasets
from .api import fit
from .backends import available_backends

N_LINEAR = 3_000_000
N_FEATURES = 8
N_CUBIC = 10_000_000
OUTLIERS = 0.10
#: Rows on which the numpy reference is timed (it is slow by design).
NUMPY_ROWS = 1_000_000
#: Epochs of the optimizer comparison (SGD: fewer, each epoch has many steps).
EPOCHS = 100
SGD_EPOCHS = 3
SGD_BATCH = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``fastgd demo``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> from fastgd._demo import add_arguments
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--scale", "0.1"]).scale
    0.1
    """
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help="multiply the data sizes (default 1: 3e6 linear rows, 1e7 cubic "
        "points; 0.1 without a compiled backend)",
    )
    parser.add_argument(
        "--out",
        default="fastgd-demo",
        metavar="DIR",
        help="directory for the PNG plots (default ./fastgd-demo)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not write plots")
    parser.add_argument(
        "--backend",
        default="auto",
        help="backend of the fits (default auto: the fastest available); the "
        "timing table always covers every available backend",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data (default 0)")
    parser.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="fit a dataset on disk larger than the workers' memory on a dask "
        "cluster: a LocalCluster started here (default), or the scheduler "
        "at ADDRESS (needs the dask extra)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser set up with :func:`add_arguments`.

    Returns
    -------
    int
        0.

    Examples
    --------
    >>> import argparse, contextlib, io
    >>> from fastgd._demo import add_arguments, run
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> with contextlib.redirect_stdout(io.StringIO()):
    ...     status = run(p.parse_args(["--scale", "0.001", "--no-plots"]))
    >>> status
    0
    """
    if args.dask is not None:
        from ._demo_dask import run_dask_demo

        run_dask_demo(scale=args.scale, address=None if args.dask == "local" else args.dask)
        return 0
    run_demo(
        scale=args.scale,
        out=args.out,
        plots=not args.no_plots,
        backend=args.backend,
        seed=args.seed,
    )
    return 0


class _Printer:
    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def section(self, title: str) -> None:
        self()
        self(title)
        self("-" * len(title))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        fmt = "  " + "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
        self(fmt.format(*header))
        self("  " + "  ".join("-" * w for w in widths))
        for r in rows:
            self(fmt.format(*r))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _warm_up(backend: str) -> float:
    """Compile (or load from the cache) every kernel variant the demo uses."""
    X, y, _, _ = datasets.make_linear(64, 2, seed=0)
    x = X[:, 0].copy()
    t = time.perf_counter()
    for opt in ("gd", "momentum", "adam"):
        for loss in ("mse", "huber"):
            fit(X, y, loss=loss, optimizer=opt, max_iter=2, backend=backend)
            fit(x, y, degree=3, loss=loss, optimizer=opt, max_iter=2, backend=backend)
        fit(X, y, optimizer=opt, batch_size=8, max_iter=2, backend=backend, seed=0)
        fit(x, y, degree=3, optimizer=opt, batch_size=8, max_iter=2, backend=backend, seed=0)
    return time.perf_counter() - t


def _ms(v: float) -> str:
    return f"{v:,.1f}" if v >= 100 else f"{v:.3g}"


def _start_background_warm_up(backends: list[str]) -> dict[str, Any]:
    """Compile numba kernels in a child process; they land in numba's disk cache."""
    import subprocess

    started = {}
    if "numba" in backends:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        code = "from fastgd._demo import _warm_up; _warm_up('numba')"
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started["numba"] = (proc, time.perf_counter())
    return started


def _lstsq_linear(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    A = np.empty((X.shape[0], X.shape[1] + 1))
    A[:, :-1] = X
    A[:, -1] = 1.0
    return np.linalg.lstsq(A, y, rcond=None)[0]


def _lstsq_poly(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least squares in the power basis [x, ..., x**k, 1], by the normal equations.

    The moments are summed in float64 row blocks (no n x k matrix); with x in
    [-1, 1] and k = 3 the system is well conditioned (cond ~ 1e3).
    """
    k = degree
    mom, rhs = np.zeros(2 * k + 1), np.zeros(k + 1)
    for lo in range(0, x.shape[0], 1 << 16):
        xb = x[lo : lo + (1 << 16)].astype(np.float64)
        yb = y[lo : lo + (1 << 16)].astype(np.float64)
        pw = np.ones_like(xb)
        for j in range(2 * k + 1):
            mom[j] += pw.sum()
            if j <= k:
                rhs[j] += pw @ yb
            pw *= xb
    powers = np.r_[np.arange(1, k + 1), 0]
    G = mom[powers[:, None] + powers[None, :]]
    return np.linalg.solve(G, rhs[powers])


def _mse(pred_minus_y: np.ndarray) -> float:
    return float(np.mean(pred_minus_y * pred_minus_y))


def _poly_objective(x: np.ndarray, y: np.ndarray, coef: np.ndarray, b: float) -> float:
    return _mse(np.polynomial.polynomial.polyval(x, np.r_[b, coef]) - y)


def run_demo(
    scale: float | None = None,
    out: str | os.PathLike[str] | None = "fastgd-demo",
    plots: bool = True,
    backend: str = "auto",
    seed: int = 0,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """The ``fastgd demo`` run, callable from Python.

    Parameters
    ----------
    scale : float, optional
        Multiplies the data sizes (default 1, or 0.1 when no compiled backend
        is available).
    out : path-like, optional
        Directory for the PNG plots (created).
    plots : bool
        Write the plots (needs matplotlib).
    backend : str
        Backend of the fits; the timing table covers every available backend.
    seed : int
        Seed of the synthetic data.
    stream : file-like, optional
        Where the report goes (default ``sys.stdout``).

    Returns
    -------
    dict
        The measured numbers: ``"huber"``/``"mse"`` coefficient errors,
        ``"lstsq_rel_diff"``, ``"optimizers"``, ``"backends"``, ``"plots"``,
        ``"elapsed"``.

    Examples
    --------
    >>> import io
    >>> from fastgd._demo import run_demo
    >>> r = run_demo(scale=0.001, plots=False, stream=io.StringIO())
    >>> r["huber"]["coef_err"] < r["mse"]["coef_err"]
    True
    """
    t_start = time.perf_counter()
    say = _Printer(stream or sys.stdout)
    backends = available_backends()
    compiled = [b for b in backends if b != "numpy"]
    if scale is None:
        scale = 1.0 if compiled else 0.1
    if not (isinstance(scale, (int, float)) and 0 < scale <= 100):
        raise ValueError(f"--scale must be in (0, 100], got {scale!r}")
    n_lin = max(2000, round(N_LINEAR * scale))
    n_cub = max(2000, round(N_CUBIC * scale))
    from .backends import resolve

    fit_backend, _ = resolve(backend)
    result: dict[str, Any] = {"scale": scale, "backend": fit_backend}

    say(
        f"fastgd demo  (scale {scale:g}; backends available: {', '.join(backends)}; "
        f"fits use {fit_backend!r})"
    )
    if not compiled:
        say(
            "  note: no compiled backend (numba / cython) is available: the numpy reference runs "
            "everything, at a reduced scale"
        )

    # ------------------------------------------------------------ compilation
    # The kernels the fits use are compiled first; the others (timed in section 5)
    # compile in a background process during sections 2-4 (started after the data
    # so as not to slow their generation), filling numba's on-disk cache.
    compile_s: dict[str, str] = {}
    if fit_backend in compiled:
        t_w = _warm_up(fit_backend)
        compile_s[fit_backend] = f"{t_w:.2f} s before the fits"
    result["compile_s"] = compile_s

    # ------------------------------------------------------------ data
    say.section("1. Data")
    (X, y, coef, b), t_lin = _timed(
        lambda: datasets.make_linear(n_lin, N_FEATURES, noise=0.5, outliers=OUTLIERS, seed=seed)
    )
    (x, yc, ccoef, cb), t_cub = _timed(
        lambda: datasets.make_polynomial(n_cub, 3, noise=0.1, seed=seed + 1)
    )
    mb = (X.nbytes + y.nbytes + x.nbytes + yc.nbytes) / 1e6
    say(
        f"  linear: {n_lin:,} rows x {N_FEATURES} features, noise 0.5, "
        f"{OUTLIERS:.0%} gross outliers"
    )
    say(f"  cubic : {n_cub:,} points, noise 0.1")
    say(f"  generated {mb:,.0f} MB in {t_lin + t_cub:.2f} s ({mb / (t_lin + t_cub):,.0f} MB/s)")
    result["data_mb_per_s"] = mb / (t_lin + t_cub)
    background = _start_background_warm_up([be for be in compiled if be != fit_backend])

    # ------------------------------------------------------------ losses
    say.section(f"2. MSE vs Huber on {OUTLIERS:.0%} outliers (linear data, full-batch GD)")
    rows, fits = [], {}
    for loss in ("mse", "huber"):
        r = fit(X, y, loss=loss, backend=fit_backend, max_iter=1000, tol=1e-7)
        fits[loss] = r
        err = float(np.max(np.abs(r.coef - coef)))
        result[loss] = {
            "coef_err": err,
            "intercept_err": abs(r.intercept - b),
            "n_iter": r.n_iter,
            "elapsed": r.elapsed,
            "status": r.status,
        }
        rows.append(
            [
                loss,
                f"{err:.4f}",
                f"{abs(r.intercept - b):.4f}",
                str(r.n_iter),
                r.status,
                f"{r.elapsed:.2f}",
            ]
        )
    say.table(
        ["loss", "max |coef - true|", "|intercept - true|", "epochs", "status", "time (s)"], rows
    )
    ratio = result["mse"]["coef_err"] / max(result["huber"]["coef_err"], 1e-300)
    say(
        f"  Huber's coefficients are {ratio:.0f}x closer to the truth: the outliers pull MSE "
        "towards the wrong slope."
    )

    # ------------------------------------------------------------ closed form
    say.section("3. Closed-form check (np.linalg.lstsq on the same data)")
    sol, t_ls = _timed(lambda: _lstsq_linear(X, y))
    mse_fit = fits["mse"]
    theta = np.r_[mse_fit.coef, mse_fit.intercept]
    rel = float(np.max(np.abs(theta - sol)) / np.max(np.abs(sol)))
    say(
        f"  linear MSE fit vs lstsq: max relative difference {rel:.2e}  "
        f"(lstsq {t_ls:.2f} s, GD {mse_fit.elapsed:.2f} s)"
    )
    result["lstsq_rel_diff"] = rel
    csol = _lstsq_poly(x, yc, 3)
    f_star = _poly_objective(x, yc, csol[:3], float(csol[3]))
    result["cubic_lstsq"] = csol

    # ------------------------------------------------------------ optimizers
    say.section(f"4. Optimizers on the cubic ({n_cub:,} points, MSE)")
    specs: list[tuple[str, dict[str, Any], int]] = [
        ("GD", dict(optimizer="gd"), EPOCHS),
        ("momentum", dict(optimizer="momentum"), EPOCHS),
        ("Adam", dict(optimizer="adam", lr=0.1), EPOCHS),
        (
            f"SGD (batch {SGD_BATCH})",
            dict(optimizer="sgd", batch_size=SGD_BATCH, lr=0.05),
            SGD_EPOCHS,
        ),
    ]
    opt_fits, rows = [], []
    result["optimizers"] = {}
    for label, kw, epochs in specs:
        r = fit(x, yc, degree=3, backend=fit_backend, max_iter=epochs, tol=0, seed=seed, **kw)
        opt_fits.append((label, r))
        gap = r.objective - f_star
        cerr = float(np.max(np.abs(np.r_[r.coef, r.intercept] - csol)))
        result["optimizers"][label] = {
            "gap": gap,
            "coef_vs_lstsq": cerr,
            "epochs": r.n_iter,
            "elapsed": r.elapsed,
        }
        rows.append(
            [label, f"{r.lr:.3g}", str(r.n_iter), f"{gap:.2e}", f"{cerr:.2e}", f"{r.elapsed:.2f}"]
        )
    say.table(
        ["optimizer", "lr", "epochs", "objective - optimum", "max |coef - lstsq|", "time (s)"], rows
    )
    say(f"  optimum (lstsq) objective {f_star:.6f}; lr 'auto' for GD and momentum is 1/L")

    # ------------------------------------------------------------ backends
    say.section("5. Backends: time per epoch on the full data")
    for be in compiled:
        if be in compile_s:
            continue
        t_bg, ok = 0.0, False
        if be in background:
            proc, t0 = background[be]
            try:
                proc.communicate()
            except KeyboardInterrupt:
                proc.kill()
                raise
            t_bg, ok = time.perf_counter() - t0, proc.returncode == 0
        t_w = _warm_up(be)  # loads what the background process cached (or compiles)
        compile_s[be] = (
            f"{t_bg:.2f} s (in a background process during 2-4), {t_w:.2f} s to load"
            if ok
            else f"{t_w:.2f} s"
        )
    say("  Compilation (JIT warm-up):")
    for be in compiled:
        how = "JIT, cached on disk for later runs" if be == "numba" else "ahead of time"
        say(f"    {be:<7}{compile_s[be]}  [{how}]")
    say()
    m = min(NUMPY_ROWS, n_lin, n_cub)
    sgd = f"linear MSE, SGD (batch {SGD_BATCH})"
    workloads: list[tuple[str, np.ndarray, np.ndarray, dict[str, Any]]] = [
        ("linear MSE, GD", X, y, {}),
        ("linear Huber, GD", X, y, {"loss": "huber"}),
        ("cubic MSE, GD", x, yc, {"degree": 3}),
        (sgd, X, y, {"batch_size": SGD_BATCH, "seed": 0}),
    ]
    rows = []
    result["backends"] = {}
    for name, A, B, kw in workloads:
        n_full = B.shape[0]
        per_row = {}
        for be in backends:
            k = min(m, n_full) if be == "numpy" else n_full
            epochs = 2 if be == "numpy" or "batch_size" in kw else 6
            stamps: list[float] = []
            # Time per epoch from the clock at the end of each epoch (callback): the fixed
            # cost of the call (input checks) and the first epoch are left out.
            fit(
                A[:k],
                B[:k],
                lr=0.01,
                tol=0,
                max_iter=epochs,
                backend=be,
                callback=lambda *_, stamps=stamps: stamps.append(time.perf_counter()),
                **kw,
            )
            per_row[be] = (stamps[-1] - stamps[0]) / (len(stamps) - 1) / k
        base = per_row["numpy"]
        for be in backends:
            s_epoch = per_row[be] * n_full
            speed = base / per_row[be]
            gbs = (A.nbytes + B.nbytes) / n_full / per_row[be] / 1e9
            rows.append(
                [
                    name if be == backends[0] else "",
                    be,
                    _ms(s_epoch * 1e3),
                    f"{1e-6 / per_row[be]:,.1f}",
                    f"{gbs:.2f}",
                    f"{speed:,.1f}x",
                ]
            )
            result["backends"].setdefault(name, {})[be] = {"s_per_epoch": s_epoch, "speedup": speed}
    say.table(["workload", "backend", "ms / epoch", "M rows / s", "GB/s read", "vs numpy"], rows)
    say(
        f"  numpy (the reference) is timed for one epoch on its first {m:,} rows and scaled to "
        "the full"
    )
    say(
        "  data (its time is linear in the rows); compiled backends for 5 epochs (SGD: 1) on "
        "all rows."
    )
    say(
        "  Times run from the end of the first epoch to the end of the last: the fixed cost of "
        "a call is left out."
    )
    say(
        "  A full-batch linear epoch reads X once and does little arithmetic per byte: every "
        "backend is bound"
    )
    say(
        "  by memory bandwidth there.  Compiled kernels pull ahead where the work per row grows "
        "(polynomial, mini-batches)."
    )

    # ------------------------------------------------------------ plots
    written: list[str] = []
    if plots and out is not None:
        written = _plots(
            out,
            X,
            y,
            coef,
            b,
            fits,
            x,
            yc,
            ccoef,
            cb,
            opt_fits,
            f_star,
            result["backends"],
            fit_backend,
            seed,
        )
        say.section("Plots")
        for p in written:
            say(f"  {p}")
    result["plots"] = written
    result["elapsed"] = time.perf_counter() - t_start
    say()
    say(f"Done in {result['elapsed']:.1f} s.")
    return result


def _plots(
    out: str | os.PathLike[str],
    X: np.ndarray,
    y: np.ndarray,
    coef: np.ndarray,
    b: float,
    fits: dict[str, Any],
    x: np.ndarray,
    yc: np.ndarray,
    ccoef: np.ndarray,
    cb: float,
    opt_fits: list[tuple[str, Any]],
    f_star: float,
    timings: dict[str, Any],
    backend: str,
    seed: int,
) -> list[str]:
    from . import plotting

    os.makedirs(out, exist_ok=True)
    paths = []

    # MSE vs Huber: estimated against true coefficients.
    fig = plotting._figure((6.2, 5.2))
    ax = fig.add_subplot()
    truth = np.r_[coef, b]
    lo, hi = float(truth.min()) - 0.4, float(truth.max()) + 0.4
    ax.plot([lo, hi], [lo, hi], "--", color="#7f7f7f", lw=1, label="estimate = truth")
    for loss, color, marker in (("mse", "#d62728", "o"), ("huber", "#2ca02c", "s")):
        r = fits[loss]
        err = np.max(np.abs(r.coef - coef))
        ax.scatter(
            truth,
            np.r_[r.coef, r.intercept],
            s=55,
            color=color,
            marker=marker,
            edgecolors="black",
            lw=0.5,
            zorder=3,
            label=f"{loss.upper() if loss == 'mse' else 'Huber'} (max error {err:.3f})",
        )
    ax.set_xlabel("true coefficient (and intercept)")
    ax.set_ylabel("fitted value")
    ax.set_title(f"MSE vs Huber with {OUTLIERS:.0%} gross outliers\n({len(y):,} rows)")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, loc="upper left")
    p = os.path.join(out, "mse_vs_huber.png")
    plotting._save(fig, p)
    paths.append(p)

    # Optimizers: suboptimality per epoch.
    p = os.path.join(out, "optimizers.png")
    plotting.plot_history(
        *[r for _, r in opt_fits],
        labels=[lab for lab, _ in opt_fits],
        baseline=f_star,
        path=p,
        title=f"Cubic fit, {len(x):,} points: objective above the optimum",
    )
    paths.append(p)

    # The cubic: data and the best fit.
    best_label, best = min(opt_fits, key=lambda t: t[1].objective)
    p = os.path.join(out, "cubic_fit.png")
    plotting.plot_fit(best, x, yc, truth=(ccoef, cb), path=p, title=f"Cubic fitted by {best_label}")
    paths.append(p)

    # A 2-parameter problem: the path of gradient descent over the loss surface,
    # textbook (precondition="none") and in the centred, scaled basis ("auto").
    k = min(20_000, len(y))
    x1 = X[:k, 0] + 2.0  # shifted feature: slope and intercept are correlated (a long valley)
    y1 = coef[0] * x1 + b + 0.5 * np.random.default_rng(seed).standard_normal(k)
    mom = np.array([[np.mean(x1 * x1), np.mean(x1)], [np.mean(x1), 1.0]])
    lin = np.array([np.mean(x1 * y1), np.mean(y1)])
    c0 = float(np.mean(y1 * y1))

    def objective(theta: np.ndarray) -> float:
        return float(theta @ mom @ theta - 2 * theta @ lin + c0)

    runs = {
        pc: fit(
            x1.reshape(-1, 1),
            y1,
            optimizer="gd",
            record="params",
            tol=1e-6,
            backend=backend,
            precondition=pc,
            intercept_init=0.0,
        )
        for pc in ("none", "auto")
    }
    P = runs["none"].history.params
    assert P is not None  # record="params"
    span = [(float(P[:, j].min()), float(P[:, j].max())) for j in range(2)]
    pad = [(lo - 0.15 * (hi - lo + 1e-9), hi + 0.15 * (hi - lo + 1e-9)) for lo, hi in span]
    bounds = (pad[0], pad[1])
    for pc, name in (("none", "path.png"), ("auto", "path_preconditioned.png")):
        p = os.path.join(out, name)
        plotting.plot_path(
            runs[pc],
            objective,
            path=p,
            bounds=bounds,
            title=f"gd, precondition={pc!r}: y = w x + b, x centred at 2",
        )
        paths.append(p)

    # Backends: time per epoch.
    fig = plotting._figure((8.0, 4.2))
    ax = fig.add_subplot()
    names = list(timings)
    bes = list(next(iter(timings.values())))
    width = 0.8 / len(bes)
    colors = {"numpy": "#7f7f7f", "numba": "#1f77b4", "cython": "#ff7f0e"}
    for j, be in enumerate(bes):
        vals = [timings[nm][be]["s_per_epoch"] * 1e3 for nm in names]
        pos = np.arange(len(names)) + (j - (len(bes) - 1) / 2) * width
        bars = ax.bar(pos, vals, width, label=be, color=colors.get(be))
        for rect, nm in zip(bars, names):
            sp = timings[nm][be]["speedup"]
            if be != "numpy":
                ax.annotate(
                    f"{sp:.0f}x" if sp >= 10 else f"{sp:.1f}x",
                    (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(names)), [nm.replace(", ", "\n") for nm in names])
    ax.set_ylabel("ms per epoch (log)")
    ax.set_title("Time per epoch on the full data (labels: speedup over numpy)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(frameon=False)
    p = os.path.join(out, "backends.png")
    plotting._save(fig, p)
    paths.append(p)
    return paths
