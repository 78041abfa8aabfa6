"""Plots, headless: each function returns a Figure, draws what it says and writes a real file."""

import subprocess
import sys

import numpy as np
import pytest

import fastgd

pytest.importorskip("matplotlib")
from fastgd import plotting

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 5000 and data.startswith(PNG_MAGIC)


def test_matplotlib_is_imported_lazily_and_pyplot_never():
    code = (
        "import sys, fastgd.plotting; assert 'matplotlib' not in sys.modules; "
        "import numpy as np, fastgd; from fastgd.plotting import plot_history; "
        "X, y, c, b = fastgd.datasets.make_linear(100, 2, seed=0); "
        "plot_history(fastgd.fit(X, y)); "
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def _env():
    import os

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(fastgd.__file__))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MPLBACKEND", None)  # no display here: must work without choosing a backend
    env.pop("DISPLAY", None)
    return env


def test_plot_history(tmp_path):
    X, y, coef, b = fastgd.datasets.make_linear(2000, 3, seed=0)
    fits = [fastgd.fit(X, y, optimizer=o, max_iter=60, tol=0) for o in ("gd", "momentum", "adam")]
    out = tmp_path / "hist.png"
    fig = plotting.plot_history(*fits, labels=["GD", "momentum", "Adam"], path=out, title="t")
    assert _is_png(out)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.lines] == ["GD", "momentum", "Adam"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), fits[0].history.loss)
    # suboptimality against a baseline, in another format
    best = min(f.objective for f in fits) - 1e-9
    fig2 = plotting.plot_history(*fits, baseline=best, path=tmp_path / "hist.svg")
    assert (tmp_path / "hist.svg").read_text().lstrip().startswith("<?xml")
    np.testing.assert_allclose(fig2.axes[0].lines[1].get_ydata(), fits[1].history.loss - best)
    assert fig2.axes[0].get_ylabel() == "objective − optimum"


def test_plot_history_errors():
    X, y, coef, b = fastgd.datasets.make_linear(200, 2, seed=0)
    res = fastgd.fit(X, y, max_iter=5)
    with pytest.raises(ValueError, match="at least one"):
        plotting.plot_history()
    with pytest.raises(ValueError, match="labels"):
        plotting.plot_history(res, labels=["a", "b"])
    with pytest.raises(ValueError, match="record"):
        plotting.plot_history(fastgd.fit(X, y, max_iter=5, record=None))
    with pytest.raises(TypeError, match="FitResult"):
        plotting.plot_history(res.history)


def test_plot_path_of_a_fit(tmp_path):
    X, y, coef, b = fastgd.datasets.make_linear(3000, 1, noise=0.3, seed=1)
    X = X + 2.0  # correlated slope and intercept: a long valley
    res = fastgd.fit(X, y, optimizer="momentum", record="params", tol=1e-8)
    x = X[:, 0]

    def objective(theta):
        return float(np.mean((x * theta[0] + theta[1] - y) ** 2))

    out = tmp_path / "path.png"
    fig = plotting.plot_path(res, objective, grid=40, path=out)
    assert _is_png(out)
    contour_ax, surface_ax = fig.axes[0], fig.axes[-1]
    assert surface_ax.name == "3d"
    path_line = contour_ax.lines[0]
    np.testing.assert_allclose(path_line.get_xdata(), res.history.params[:, 0])
    np.testing.assert_allclose(path_line.get_ydata(), res.history.params[:, 1])
    # the 3-D path lies on the surface: its heights are the objective at each point
    xs, ys, zs = surface_ax.lines[0].get_data_3d()
    np.testing.assert_allclose(zs, [objective(t) for t in res.history.params])
    assert contour_ax.get_xlabel() == "coef" and contour_ax.get_ylabel() == "intercept"


def test_plot_path_of_minimize(tmp_path):
    def f(v):
        return float((1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2)

    def g(v):
        return np.array(
            [-2 * (1 - v[0]) - 400 * v[0] * (v[1] - v[0] ** 2), 200 * (v[1] - v[0] ** 2)]
        )

    r = fastgd.minimize(
        f, g, np.array([-1.2, 1.0]), optimizer="adam", lr=0.02, max_iter=500, record="params"
    )
    out = tmp_path / "rosen.png"
    fig = plotting.plot_path(r, f, bounds=((-2, 2), (-1, 3)), grid=30, names=("a", "b"), path=out)
    assert _is_png(out)
    assert fig.axes[0].get_xlim() == (-2, 2) and fig.axes[0].get_xlabel() == "a"


def test_plot_path_errors():
    X, y, coef, b = fastgd.datasets.make_linear(200, 2, seed=0)
    with pytest.raises(ValueError, match="record='params'"):
        plotting.plot_path(fastgd.fit(X, y, max_iter=5), lambda t: 0.0)
    with pytest.raises(ValueError, match="exactly 2 parameters"):
        plotting.plot_path(fastgd.fit(X, y, max_iter=5, record="params"), lambda t: 0.0)
    with pytest.raises(TypeError, match="callable"):
        plotting.plot_path(fastgd.fit(X[:, :1], y, max_iter=5, record="params"), None)


def test_plot_fit_polynomial_subsamples_big_data(tmp_path):
    x, y, coef, b = fastgd.datasets.make_polynomial(20_000, 3, noise=0.1, seed=2)
    res = fastgd.fit(x, y, degree=3, optimizer="adam", max_iter=300)
    out = tmp_path / "fit.png"
    fig = plotting.plot_fit(res, x, y, truth=(coef, b), max_points=1000, path=out)
    assert _is_png(out)
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == 1000
    fitted, truth = ax.lines[0], ax.lines[1]
    grid = fitted.get_xdata()
    np.testing.assert_allclose(fitted.get_ydata(), res.predict(grid), rtol=1e-12)
    np.testing.assert_allclose(
        truth.get_ydata(), np.polynomial.polynomial.polyval(grid, np.r_[b, coef])
    )


def test_plot_fit_linear(tmp_path):
    X, y, coef, b = fastgd.datasets.make_linear(500, 1, seed=3)
    res = fastgd.fit(X, y)
    fig = plotting.plot_fit(res, X, y, path=tmp_path / "line.png")
    assert _is_png(tmp_path / "line.png")
    assert fig.axes[0].get_xlabel() == "x"
    # several features: predicted against observed
    X, y, coef, b = fastgd.datasets.make_linear(500, 4, seed=3)
    fig = plotting.plot_fit(fastgd.fit(X, y), X, y, truth=(coef, b), path=tmp_path / "pv.png")
    assert _is_png(tmp_path / "pv.png")
    assert fig.axes[0].get_xlabel() == "observed y"
    with pytest.raises(ValueError, match="same number of rows"):
        plotting.plot_fit(fastgd.fit(X, y), X, y[:10])
