"""The numpy reference on its own: finite differences, closed forms, hand-computed steps."""

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg
from fastgd.backends import _numpy as ref

from .conftest import small_linear, small_poly

# ---------------------------------------------------------------- losses


@pytest.mark.parametrize("loss", list(reg.LOSSES))
def test_loss_vectors(loss):
    spec = reg.LOSSES[loss]
    for r, delta, rho_val, psi_val in spec.vectors:
        assert ref.rho(spec.code, np.array([r]), delta)[0] == pytest.approx(rho_val)
        assert ref.psi(spec.code, np.array([r]), delta)[0] == pytest.approx(psi_val)


def test_huber_matches_torch_convention():
    r = np.linspace(-4, 4, 81)
    d = 1.5
    expected = np.where(np.abs(r) <= d, 0.5 * r**2, d * (np.abs(r) - 0.5 * d))
    np.testing.assert_allclose(ref.rho(1, r, d), expected)


# ---------------------------------------------------------------- gradients


def _fd4(f, theta, h=1e-4):
    """4th-order central finite difference of f at theta."""
    g = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        g[j] = (-f(theta + 2 * e) + 8 * f(theta + e) - 8 * f(theta - e) + f(theta - 2 * e)) / (
            12 * h
        )
    return g


@pytest.mark.parametrize("loss", list(reg.LOSSES))
@pytest.mark.parametrize("model", ["linear", "poly"])
def test_gradient_matches_finite_differences(loss, model):
    if model == "linear":
        X, y, coef, b = small_linear(n=80, p=4)
        kw = {}
    else:
        X, y, coef, b = small_poly(n=80, degree=3)
        kw = {"degree": 3}
    theta = np.r_[0.6 * coef - 0.2, b + 0.4]

    def f(th):
        return fastgd.loss_and_grad(
            X, y, th[:-1], th[-1], loss=loss, delta=0.7, l2=0.3, backend="numpy", **kw
        )[0]

    val, gc, gb = fastgd.loss_and_grad(
        X, y, theta[:-1], theta[-1], loss=loss, delta=0.7, l2=0.3, backend="numpy", **kw
    )
    assert val == pytest.approx(f(theta))
    np.testing.assert_allclose(np.r_[gc, gb], _fd4(f, theta), rtol=1e-7, atol=1e-8)


def test_objective_definition_by_hand():
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    y = np.array([1.0, 0.0, 2.0])
    coef = np.array([0.5, -0.25])
    r = X @ coef + 0.1 - y
    val, gc, gb = fastgd.loss_and_grad(X, y, coef, 0.1, l2=0.2, backend="numpy")
    assert val == pytest.approx(np.mean(r**2) + 0.1 * np.sum(coef**2))
    np.testing.assert_allclose(gc, 2 * X.T @ r / 3 + 0.2 * coef)
    assert gb == pytest.approx(2 * r.mean())


# ---------------------------------------------------------------- closed forms


def _design(X):
    return np.c_[X, np.ones(len(X))]


@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_mse_converges_to_closed_form(l2):
    X, y, _, _ = small_linear(n=200, p=4, seed=5)
    res = fastgd.fit(X, y, l2=l2, tol=1e-13, max_iter=20000, backend="numpy")
    assert res.status == "converged"
    A = _design(X)
    n = len(y)
    D = np.diag(np.r_[np.full(4, l2), 0.0])
    theta = np.linalg.solve(2 * A.T @ A / n + D, 2 * A.T @ y / n)
    if l2 == 0:
        np.testing.assert_allclose(theta, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-10)
    np.testing.assert_allclose(np.r_[res.coef, res.intercept], theta, rtol=1e-8)


def test_polynomial_degree3_matches_polyfit():
    x, y, _, _ = small_poly(n=300, degree=3)
    res = fastgd.fit(
        x, y, degree=3, optimizer="nesterov", tol=1e-14, max_iter=100000, backend="numpy"
    )
    assert res.status == "converged"
    expected = np.polynomial.polynomial.polyfit(x, y, 3)
    np.testing.assert_allclose(np.r_[res.intercept, res.coef], expected, rtol=1e-8)


@pytest.mark.parametrize("precondition", ["none", "auto"])
def test_tutorial_quadratic_on_one_to_five(precondition):
    x = np.arange(1.0, 6.0)
    res = fastgd.fit(
        x,
        x**2,
        degree=2,
        optimizer="nesterov",
        tol=1e-14,
        max_iter=200000,
        backend="numpy",
        precondition=precondition,
    )
    assert res.converged
    np.testing.assert_allclose(res.coef, [0.0, 1.0], atol=1e-7)
    assert res.intercept == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(res.predict(np.array([6.0])), [36.0], rtol=1e-7)


@pytest.mark.parametrize("precondition", ["none", "auto"])
def test_tutorial_mean_as_one_parameter_fit(precondition):
    y = np.array([12.1, 12.8, 14.9, 16.3, 17.2])
    X = np.empty((5, 0))
    one = fastgd.fit(
        X,
        y,
        lr=0.3,
        intercept_init=12.0,
        max_iter=1,
        tol=0.0,
        backend="numpy",
        precondition=precondition,
    )
    assert one.intercept == pytest.approx(13.596)
    res = fastgd.fit(
        X, y, lr=0.3, intercept_init=12.0, tol=1e-12, backend="numpy", precondition=precondition
    )
    assert res.converged and res.intercept == pytest.approx(y.mean(), rel=1e-10)
    assert res.coef.shape == (0,)


def test_huber_resists_outliers():
    X, y, coef, b = small_linear(n=2000, p=3, seed=2, outliers=0.1)
    mse = fastgd.fit(X, y, loss="mse", tol=1e-10, backend="numpy")
    hub = fastgd.fit(X, y, loss="huber", delta=0.5, tol=1e-10, max_iter=5000, backend="numpy")
    err_mse = np.linalg.norm(mse.coef - coef)
    err_hub = np.linalg.norm(hub.coef - coef)
    assert err_hub < 0.2 * err_mse


# ---------------------------------------------------------------- optimizers by hand

HP = np.array([0.9, 0.8, 0.7, 0.5, 0.6])  # momentum, beta1, beta2, eps, rho (round numbers)


def _steps(opt, grads, lr=0.1, theta0=1.0):
    theta = np.array([theta0])
    state = np.zeros((2, 1))
    out = []
    for t, g in enumerate(grads, start=1):
        ref.update(reg.OPTIMIZERS[opt].code, theta, np.array([g]), state, lr, HP, t)
        out.append(theta[0])
    return out


def test_update_rules_by_hand():
    g = [1.0, 2.0, -1.0]
    np.testing.assert_allclose(_steps("gd", g), [0.9, 0.7, 0.8])
    # v = .9 v + g: 1, 2.9, 1.61
    np.testing.assert_allclose(_steps("momentum", g), [0.9, 0.61, 0.449])
    # nesterov: step g + .9 v: 1.9, 4.61, 0.449
    np.testing.assert_allclose(_steps("nesterov", g), [0.81, 0.349, 0.3041])
    # adagrad: s = 1, 5, 6; step g/(sqrt(s)+.5)
    exp = np.cumsum([-0.1 * 1 / 1.5, -0.1 * 2 / (5**0.5 + 0.5), 0.1 / (6**0.5 + 0.5)]) + 1
    np.testing.assert_allclose(_steps("adagrad", g), exp)
    # rmsprop (rho .6): s = .4, .24 + 1.6 = 1.84, 1.104 + .4 = 1.504
    exp = (
        np.cumsum([-0.1 / (0.4**0.5 + 0.5), -0.2 / (1.84**0.5 + 0.5), 0.1 / (1.504**0.5 + 0.5)]) + 1
    )
    np.testing.assert_allclose(_steps("rmsprop", g), exp)
    # adam (b1 .8, b2 .7): t=1: mhat = 1, vhat = 1 -> step 1/1.5
    m1, v1 = 0.2, 0.3
    m2, v2 = 0.8 * m1 + 0.4, 0.7 * v1 + 0.3 * 4
    exp2 = 1 - 0.1 / 1.5 - 0.1 * (m2 / (1 - 0.64)) / ((v2 / (1 - 0.49)) ** 0.5 + 0.5)
    got = _steps("adam", g[:2])
    np.testing.assert_allclose(got, [1 - 0.1 / 1.5, exp2])


def test_schedules():
    shp = np.array([0.5, 0.9])
    assert ref.schedule(0, 0.2, shp, 7) == 0.2
    assert ref.schedule(1, 0.2, shp, 3) == pytest.approx(0.2 / 2.0)
    assert ref.schedule(2, 0.2, shp, 2) == pytest.approx(0.2 * 0.81)


def _rosen(x):
    return float((1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)


def _rosen_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


@pytest.mark.parametrize(
    "opt,lr,iters",
    [
        ("gd", 0.1, 2000),
        ("momentum", 0.05, 2000),
        ("nesterov", 0.05, 2000),
        ("adagrad", 1.0, 3000),
        ("rmsprop", 0.01, 3000),
        ("adam", 0.1, 3000),
    ],
)
def test_optimizers_on_parabola(opt, lr, iters):
    A = np.diag([1.0, 4.0])
    r = fastgd.minimize(
        lambda x: float(x @ A @ x),
        lambda x: 2 * A @ x,
        np.array([3.0, -2.0]),
        optimizer=opt,
        lr=lr,
        max_iter=iters,
        tol=1e-9,
        backend="numpy",
    )
    np.testing.assert_allclose(r.x, [0, 0], atol=2e-3)
    assert r.history.loss[0] == pytest.approx(25.0) and r.fun < 1e-5


@pytest.mark.parametrize("opt,lr", [("momentum", 1e-3), ("nesterov", 1e-3), ("adam", 0.02)])
def test_optimizers_on_rosenbrock(opt, lr):
    r = fastgd.minimize(
        _rosen,
        _rosen_grad,
        np.array([-1.2, 1.0]),
        optimizer=opt,
        lr=lr,
        max_iter=50000,
        tol=1e-12,
        backend="numpy",
    )
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-3)


# ---------------------------------------------------------------- results, history, dtypes


def test_history_and_result_fields():
    X, y, _, _ = small_linear()
    res = fastgd.fit(X, y, max_iter=7, tol=0.0, record="params", backend="numpy")
    assert res.status == "max_iter" and not res.converged and res.n_iter == 7
    assert res.history.loss.shape == (8,) and res.history.params.shape == (8, 4)
    assert np.all(np.diff(res.history.loss) < 0)  # lr="auto" decreases monotonically
    assert res.history.loss[-1] == pytest.approx(res.objective)
    np.testing.assert_allclose(res.history.params[-1], np.r_[res.coef, res.intercept])
    np.testing.assert_allclose(res.predict(X), X @ res.coef + res.intercept)
    assert res.elapsed > 0 and res.backend == "numpy"
    none = fastgd.fit(X, y, max_iter=3, record=None, backend="numpy")
    assert none.history.loss.size == 0 and none.history.params is None


def test_poly_history_params_in_original_basis():
    x, y, _, _ = small_poly()
    res = fastgd.fit(x, y, degree=3, max_iter=5, tol=0.0, record="params", backend="numpy")
    np.testing.assert_allclose(res.history.params[-1], np.r_[res.coef, res.intercept])
    v, _, _ = fastgd.loss_and_grad(x, y, res.coef, res.intercept, degree=3, backend="numpy")
    assert v == pytest.approx(res.objective, rel=1e-10)


def test_float32_end_to_end():
    X, y, coef, _ = small_linear(n=500, dtype=np.float32)
    res = fastgd.fit(X, y, tol=1e-5, backend="numpy", record="params")
    assert res.coef.dtype == np.float32 and res.history.params.dtype == np.float32
    np.testing.assert_allclose(res.coef, coef, atol=0.1)
    v, gc, gb = fastgd.loss_and_grad(X, y, res.coef, res.intercept, backend="numpy")
    assert gc.dtype == np.float32


def test_integer_and_list_inputs_become_float64():
    res = fastgd.fit([[1], [2], [3], [4]], [3, 5, 7, 9], tol=1e-12, max_iter=20000, backend="numpy")
    assert res.coef.dtype == np.float64
    assert res.coef[0] == pytest.approx(2.0) and res.intercept == pytest.approx(1.0)


def test_sgd_and_minibatch_converge_near_solution():
    X, y, _, _ = small_linear(n=300, p=3, seed=4)
    exact = np.linalg.lstsq(_design(X), y, rcond=None)[0]
    for bs in (1, 16):
        res = fastgd.fit(
            X,
            y,
            batch_size=bs,
            schedule="invscaling",
            power_t=0.6,
            max_iter=60,
            tol=0.0,
            seed=0,
            backend="numpy",
        )
        np.testing.assert_allclose(np.r_[res.coef, res.intercept], exact, atol=0.05)


def test_same_seed_same_stochastic_trajectory():
    X, y, _, _ = small_linear()
    a = fastgd.fit(X, y, batch_size=5, max_iter=4, seed=11, backend="numpy")
    b = fastgd.fit(X, y, batch_size=5, max_iter=4, seed=11, backend="numpy")
    c = fastgd.fit(X, y, batch_size=5, max_iter=4, seed=12, backend="numpy")
    np.testing.assert_array_equal(a.history.loss, b.history.loss)
    assert not np.array_equal(a.history.loss, c.history.loss)


def test_divergence_is_reported_not_returned():
    X, y, _, _ = small_linear()
    with pytest.warns(fastgd.DivergenceWarning, match="smaller lr"):
        res = fastgd.fit(X, y, lr=1e3, max_iter=500, backend="numpy")
    assert res.status == "diverged" and not res.converged
    assert np.all(np.isfinite(res.coef)) and np.isfinite(res.intercept)


def test_callback_can_stop():
    X, y, _, _ = small_linear()
    seen = []

    def cb(epoch, coef, intercept, objective):
        seen.append((epoch, objective))
        return epoch >= 3

    res = fastgd.fit(X, y, callback=cb, tol=0.0, backend="numpy")
    assert res.status == "callback" and res.n_iter == 3
    assert [e for e, _ in seen] == [1, 2, 3]
    assert seen[-1][1] == pytest.approx(res.history.loss[3])


# ---------------------------------------------------------------- backends registry


def test_backend_registry_errors():
    X, y, _, _ = small_linear()
    with pytest.raises(ValueError, match="numpy"):
        fastgd.fit(X, y, backend="fortran")
    assert "numpy" in fastgd.available_backends()
    res = fastgd.fit(X, y, max_iter=2, backend="auto")
    assert res.backend in fastgd.available_backends()


def test_unavailable_backend_says_what_to_install(monkeypatch):
    from fastgd import backends

    monkeypatch.setitem(backends._failed, "numba", "No module named 'numba'")
    monkeypatch.delitem(backends._loaded, "numba", raising=False)
    with pytest.raises(ImportError, match="pip install"):
        backends.resolve("numba")


def test_loss_and_grad_check_finite_false_still_names_bad_data(backend):
    X = np.ones((6, 2))
    y = np.zeros(6)
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"X contains inf at position \(4, 1\)"):
        fastgd.loss_and_grad(X, y, np.zeros(2), backend=backend, check_finite=False)
    y2 = y.copy()
    y2[2] = np.nan
    with pytest.raises(ValueError, match="y contains nan at position 2"):
        fastgd.loss_and_grad(np.ones((6, 2)), y2, np.zeros(2), backend=backend, check_finite=False)
    v, gc, gb = fastgd.loss_and_grad(
        np.ones((6, 2)), y + 1, np.ones(2), backend=backend, check_finite=False
    )
    assert v == pytest.approx(1.0) and gb == pytest.approx(2.0)  # residual 1 on every row
    np.testing.assert_allclose(gc, [2.0, 2.0])


@pytest.mark.parametrize("batch", [None, 1])
def test_fit_check_finite_false_still_names_bad_data(backend, batch):
    X, y, _, _ = small_linear()
    X = X.copy()
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match=r"X contains nan at position \(17, 2\)"):
        fastgd.fit(X, y, batch_size=batch, record=None, backend=backend, check_finite=False)
    X2, y2, _, _ = small_linear()
    a = fastgd.fit(
        X2, y2, batch_size=batch, max_iter=5, seed=0, backend=backend, check_finite=False
    )
    b = fastgd.fit(X2, y2, batch_size=batch, max_iter=5, seed=0, backend=backend)
    np.testing.assert_array_equal(a.coef, b.coef)


@pytest.mark.parametrize("batch", [None, 1, 4])
@pytest.mark.parametrize("record", [None, "loss"])
def test_fit_check_finite_false_names_inf_y_under_huber(backend, batch, record):
    """Huber's slope is bounded: an infinite y leaves the parameters finite, so
    only the objective shows it; the fit must still raise, naming y."""
    X, y, _, _ = small_linear()
    y = y.copy()
    y[9] = np.inf
    with pytest.raises(ValueError, match="y contains inf at position 9"):
        fastgd.fit(
            X,
            y,
            loss="huber",
            batch_size=batch,
            record=record,
            max_iter=3,
            seed=0,
            backend=backend,
            check_finite=False,
        )
