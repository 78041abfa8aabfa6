"""Plots of fits: loss curves, parameter paths over the loss surface, data and fitted curve.

matplotlib (the ``plot`` extra) is imported only when a function is called.
Figures are built with :class:`matplotlib.figure.Figure` directly, not through
``pyplot``: nothing is registered globally, no window is opened, and the
functions work headless (Agg) in scripts, servers and tests.  Every function
returns the Figure and saves it when given ``path``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._result import FitResult, MinimizeResult

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(figsize: tuple[float, float]) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("fastgd.plotting needs matplotlib: pip install 'fastgd[plot]'") from exc
    return Figure(figsize=figsize, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str] | None, dpi: int = 110) -> None:
    if path is not None:
        # mplot3d's projection can raise spurious floating-point flags in np.dot.
        with np.errstate(over="ignore", invalid="ignore"):
            fig.savefig(os.fspath(path), dpi=dpi)


def _label(res: Any, i: int) -> str:
    if isinstance(res, FitResult):
        opt = res.info.get("optimizer", "fit")
        bs = res.info.get("batch_size")
        return f"{opt}" + (f" (batch {bs})" if bs else "") + f", {res.backend}"
    return f"run {i + 1}"


def plot_history(
    *results: FitResult | MinimizeResult,
    labels: Sequence[str] | None = None,
    baseline: float | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The objective per epoch of one or more fits, on a log scale.

    Parameters
    ----------
    *results : FitResult or MinimizeResult
        Fitted with ``record="loss"`` or ``"params"`` (the default records loss).
    labels : sequence of str, optional
        One legend entry per result (default: optimizer and backend).
    baseline : float, optional
        Plot ``objective - baseline`` instead (e.g. the optimum from the
        closed form, to show the suboptimality).  Values at or below zero are
        not drawn on the log scale.
    title : str, optional
    path : path-like, optional
        Save the figure there (the format follows the extension).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import fastgd
    >>> from fastgd.plotting import plot_history
    >>> X, y, coef, b = fastgd.datasets.make_linear(500, 2, seed=0)
    >>> fig = plot_history(fastgd.fit(X, y), fastgd.fit(X, y, optimizer="adam"))
    >>> len(fig.axes[0].lines)
    2
    """
    if not results:
        raise ValueError("plot_history needs at least one result")
    if labels is not None and len(labels) != len(results):
        raise ValueError(f"got {len(labels)} labels for {len(results)} results")
    fig = _figure((7.0, 4.5))
    ax = fig.add_subplot()
    drawn = 0
    for i, res in enumerate(results):
        if not isinstance(res, (FitResult, MinimizeResult)):
            raise TypeError(
                f"results must be FitResult or MinimizeResult, got {type(res).__name__}"
            )
        loss = np.asarray(res.history.loss, dtype=np.float64)
        if loss.size == 0:
            raise ValueError(f"result {i} has no recorded loss (fit it with record='loss')")
        if baseline is not None:
            loss = loss - float(baseline)
        loss = np.where(loss > 0, loss, np.nan)
        label = labels[i] if labels is not None else _label(res, i)
        ax.plot(np.arange(loss.size), loss, color=_COLORS[i % len(_COLORS)], lw=1.8, label=label)
        drawn += int(np.isfinite(loss).any())
    if drawn:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("objective − optimum" if baseline is not None else "objective")
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", alpha=0.15)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig


def _path_of(result: FitResult | MinimizeResult) -> np.ndarray:
    params = result.history.params
    if params is None or len(params) == 0:
        raise ValueError("the result has no parameter path: fit with record='params'")
    params = np.asarray(params, dtype=np.float64)
    if params.shape[1] != 2:
        raise ValueError(
            f"plot_path needs exactly 2 parameters, the result has {params.shape[1]} "
            "(for fit: one feature and the intercept)"
        )
    return params


def plot_path(
    result: FitResult | MinimizeResult,
    fun: Callable[[np.ndarray], float],
    *,
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
    grid: int = 80,
    levels: int = 25,
    names: tuple[str, str] | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The parameter path of a 2-parameter fit over its loss surface: contour and 3-D.

    Parameters
    ----------
    result : FitResult or MinimizeResult
        Run with ``record="params"``; exactly two parameters (``fit``: one
        feature and the intercept, path columns ``(coef, intercept)``).
    fun : callable
        ``fun(theta) -> float`` for a length-2 ``theta``, the surface drawn
        (for a fit, the objective; e.g. built with :func:`fastgd.loss_and_grad`).
    bounds : ((lo0, hi0), (lo1, hi1)), optional
        The plotted window (default: the path with a margin).
    grid : int
        Points per axis at which ``fun`` is evaluated (``grid**2`` calls).
    levels : int
        Contour levels (log-spaced above the minimum of the window).
    names : (str, str), optional
        Axis labels (default ``coef``/``intercept`` for a fit, ``x[0]``/``x[1]``).
    title : str, optional
    path : path-like, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure
        The contour plot (first axes, with its colorbar) and the 3-D surface
        (last axes), each with the path.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> from fastgd.plotting import plot_path
    >>> f = lambda x: float(x[0] ** 2 + 10 * x[1] ** 2)
    >>> g = lambda x: np.array([2 * x[0], 20 * x[1]])
    >>> r = fastgd.minimize(f, g, np.array([3.0, 1.0]), lr=0.09, record="params")
    >>> fig = plot_path(r, f, grid=30)
    >>> fig.axes[0].get_xlabel(), fig.axes[-1].name
    ('x[0]', '3d')
    """
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    grid = int(grid)
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    P = _path_of(result)
    if names is None:
        names = ("coef", "intercept") if isinstance(result, FitResult) else ("x[0]", "x[1]")
    if bounds is None:
        lo, hi = P.min(axis=0), P.max(axis=0)
        span = np.maximum(hi - lo, 1e-3 * np.maximum(1.0, np.abs(hi)))
        bounds = (
            (lo[0] - 0.25 * span[0], hi[0] + 0.25 * span[0]),
            (lo[1] - 0.25 * span[1], hi[1] + 0.25 * span[1]),
        )
    a = np.linspace(*bounds[0], grid)
    b = np.linspace(*bounds[1], grid)
    A, B = np.meshgrid(a, b)
    Z = np.empty_like(A)
    for i in range(grid):
        for j in range(grid):
            Z[i, j] = float(fun(np.array([A[i, j], B[i, j]])))
    zpath = np.array([float(fun(t)) for t in P])
    zmin = min(float(np.nanmin(Z)), float(np.nanmin(zpath)))
    zmax = float(np.nanmax(Z))

    from matplotlib import colors as mcolors

    fig = _figure((12.0, 5.0))
    ax = fig.add_subplot(1, 2, 1)
    # Log-spaced levels of (objective - min): the valley floor stays visible.
    off = max(zmax - zmin, 1e-300) * 1e-4
    Zs = Z - zmin + off
    lv = np.geomspace(off, zmax - zmin + off, levels)
    cs = ax.contourf(A, B, Zs, levels=lv, cmap="viridis", norm=mcolors.LogNorm(), extend="max")
    ax.contour(A, B, Zs, levels=lv, colors="white", linewidths=0.4, alpha=0.5)
    fig.colorbar(cs, ax=ax, label="objective − min (log)", format="%.2g")
    ax.plot(P[:, 0], P[:, 1], "-o", color="#ff4040", ms=2.5, lw=1.3, label="path")
    ax.plot(P[0, 0], P[0, 1], "s", color="white", mec="black", ms=8, label="start")
    ax.plot(P[-1, 0], P[-1, 1], "*", color="yellow", mec="black", ms=14, label="end")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_xlim(bounds[0])
    ax.set_ylim(bounds[1])
    ax.legend(loc="best", framealpha=0.8)
    ax.set_title(f"{len(P) - 1} steps" + (f" — {title}" if title else ""))

    # computed_zorder=False: the path is drawn over the surface, never hidden by it.
    ax3 = fig.add_subplot(1, 2, 2, projection="3d", computed_zorder=False)
    ax3.plot_surface(
        A,
        B,
        Z,
        cmap="viridis",
        alpha=0.75,
        linewidth=0,
        antialiased=True,
        rstride=max(1, grid // 40),
        cstride=max(1, grid // 40),
        zorder=1,
    )
    ax3.plot(P[:, 0], P[:, 1], zpath, "-o", color="#ff2020", ms=2.5, lw=1.6, zorder=10)
    ax3.scatter(
        [P[-1, 0]],
        [P[-1, 1]],
        [zpath[-1]],
        marker="*",
        s=120,
        color="yellow",
        edgecolors="black",
        zorder=11,
    )
    ax3.set_xlabel(names[0])
    ax3.set_ylabel(names[1])
    ax3.set_zlabel("objective")
    ax3.view_init(elev=35, azim=-60)
    ax3.set_box_aspect(None, zoom=0.88)  # keeps the z label inside the figure
    _save(fig, path)
    return fig


def plot_fit(
    result: FitResult,
    x: Any,
    y: Any,
    *,
    truth: tuple[Any, float] | None = None,
    max_points: int = 5000,
    seed: int = 0,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The data and the fitted line or curve.

    Parameters
    ----------
    result : FitResult
    x : array_like
        The data fitted: 1-D ``x`` for a polynomial fit, ``X`` of shape (n, 1)
        or (n,) for a one-feature linear fit.  With more features the plot
        shows predicted against observed ``y``.
    y : array_like, shape (n,)
    truth : (coef, intercept), optional
        The true model, drawn dashed.
    max_points : int
        At most this many points are scattered (a random subsample of big data).
    seed : int
        Seeds that subsample.
    title : str, optional
    path : path-like, optional
        Save the figure there.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import fastgd
    >>> from fastgd.plotting import plot_fit
    >>> x, y, coef, b = fastgd.datasets.make_polynomial(300, 2, seed=0)
    >>> fig = plot_fit(fastgd.fit(x, y, degree=2), x, y, truth=(coef, b))
    >>> fig.axes[0].get_xlabel()
    'x'
    """
    if not isinstance(result, FitResult):
        raise TypeError(f"result must be a FitResult, got {type(result).__name__}")
    X = np.asarray(x)
    Y = np.asarray(y, dtype=np.float64)
    if Y.ndim != 1 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {X.shape} and {Y.shape}")
    n = Y.shape[0]
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    Xs, Ys = X[idx], Y[idx]
    fig = _figure((7.0, 4.8))
    ax = fig.add_subplot()
    one_d = result.degree is not None or (X.ndim == 1 or X.shape[1] == 1)
    if one_d:
        xs = np.asarray(Xs, dtype=np.float64).reshape(-1)
        ax.scatter(
            xs,
            Ys,
            s=5,
            alpha=0.35,
            color="#7f7f7f",
            lw=0,
            label=f"data ({len(idx):,} of {n:,} points)" if n > len(idx) else "data",
        )
        grid = np.linspace(xs.min(), xs.max(), 400)
        arg = grid if result.degree is not None else grid.reshape(-1, 1)
        fitted = result.predict(arg.astype(result.coef.dtype))
        ax.plot(grid, fitted, color="#d62728", lw=2.2, label=f"fit ({result.info.get('loss', '')})")
        if truth is not None:
            c, b0 = np.atleast_1d(np.asarray(truth[0], dtype=np.float64)), float(truth[1])
            true = (
                np.polynomial.polynomial.polyval(grid, np.r_[b0, c])
                if result.degree is not None
                else grid * c[0] + b0
            )
            ax.plot(grid, true, "--", color="black", lw=1.5, label="truth")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    else:
        pred = result.predict(np.asarray(Xs, dtype=result.coef.dtype))
        ax.scatter(Ys, pred, s=5, alpha=0.35, color="#1f77b4", lw=0, label="fit")
        if truth is not None:
            c, b0 = np.asarray(truth[0], dtype=np.float64), float(truth[1])
            ax.scatter(
                Ys,
                np.asarray(Xs, dtype=np.float64) @ c + b0,
                s=5,
                alpha=0.25,
                color="black",
                lw=0,
                label="truth",
            )
        lo, hi = float(Ys.min()), float(Ys.max())
        ax.plot([lo, hi], [lo, hi], "--", color="#7f7f7f", lw=1, label="y = prediction")
        ax.set_xlabel("observed y")
        ax.set_ylabel("predicted y")
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False, markerscale=3)
    if title:
        ax.set_title(title)
    _save(fig, path)
    return fig
