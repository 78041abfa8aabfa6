"""``fastgd.GDRegressor`` against scikit-learn itself: its estimator checks,
pipelines, search, cross-validation, clone, pickle, DataFrames, warnings,
sample_weight and a partial_fit that continues the optimizer."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastgd  # noqa: E402
from fastgd import GDRegressor, _registry as reg  # noqa: E402

from .conftest import small_linear  # noqa: E402


def _expected_failures(est):
    if est.batch_size is None:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": "mini-batches: a weighted row and its repetitions land in different batches, so "
        "the stochastic paths differ (the weighted batch gradient is unbiased, equal in "
        "expectation only; full batch passes this check)"
    }


@parametrize_with_checks(
    [
        GDRegressor(),
        GDRegressor(optimizer="adam", batch_size=4, random_state=0),
        GDRegressor(loss="huber", optimizer="nesterov"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_import_fastgd_does_not_import_sklearn():
    code = (
        "import sys, fastgd; assert 'sklearn' not in sys.modules; "
        "fastgd.GDRegressor; assert 'sklearn' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_same_meaning_as_fit():
    X, y, _, _ = small_linear()
    w = np.arange(60) % 4
    est = GDRegressor(
        optimizer="adam",
        l2=0.1,
        schedule="invscaling",
        power_t=0.5,
        beta1=0.8,
        max_iter=50,
        tol=0.0,
    ).fit(X, y, sample_weight=w)
    res = fastgd.fit(
        X,
        y,
        optimizer="adam",
        l2=0.1,
        schedule="invscaling",
        power_t=0.5,
        beta1=0.8,
        max_iter=50,
        tol=0.0,
        sample_weight=w,
    )
    np.testing.assert_array_equal(est.coef_, res.coef)
    assert est.intercept_ == res.intercept
    np.testing.assert_array_equal(est.loss_curve_, res.history.loss[1:])
    assert est.n_iter_ == 50 and est.status_ == "max_iter" and est.result_.lr == res.lr
    np.testing.assert_allclose(est.predict(X), res.predict(X))


def test_polynomial_degree_needs_one_column():
    x = np.linspace(-2, 3, 40)
    y = 1 - x + 0.5 * x**3
    est = GDRegressor(degree=3, tol=1e-13, max_iter=20_000).fit(x.reshape(-1, 1), y)
    np.testing.assert_allclose(est.coef_, [-1, 0, 0.5], atol=1e-8)
    assert est.n_features_in_ == 1
    with pytest.raises(ValueError, match="exactly one column, got 2"):
        GDRegressor(degree=2).fit(np.c_[x, x], y)


def test_pipeline_search_and_cross_validation():
    X, y, _, _ = fastgd.datasets.make_linear(300, 4, noise=0.1, seed=0)
    X = X * np.array([1.0, 100.0, 0.01, 5.0]) + 1000.0  # badly scaled, off-centre
    pipe = make_pipeline(StandardScaler(), GDRegressor(optimizer="adam", max_iter=300, tol=0.0))
    assert pipe.fit(X, y).score(X, y) > 0.99
    grid = GridSearchCV(
        pipe,
        {
            "gdregressor__beta1": [0.5, 0.9],
            "gdregressor__lr": ["auto", 0.05],
            "gdregressor__batch_size": [None, 32],
        },
        cv=3,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 8
    assert grid.best_score_ > 0.99
    scores = cross_val_score(GDRegressor(), X, y, cv=4)
    assert scores.min() > 0.99


def test_clone_and_pickle_predict_identically():
    X, y, _, _ = small_linear()
    est = GDRegressor(optimizer="rmsprop", batch_size=8, random_state=3, max_iter=20, tol=0.0)
    est.fit(X, y)
    cl = clone(est)
    assert cl.get_params() == est.get_params() and not hasattr(cl, "coef_")
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    # a loaded estimator continues where the pickled one stopped
    est.partial_fit(X, y)
    loaded.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.coef_, est.coef_)


def test_dataframes_and_feature_name_warnings():
    X, y, _, _ = small_linear()
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    est = GDRegressor().fit(df, pd.Series(y))
    assert list(est.feature_names_in_) == ["a", "b", "c"]
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df[["c", "b", "a"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(df)


def test_html_repr():
    html = GDRegressor(optimizer="adam")._repr_html_()
    assert "GDRegressor" in html and "adam" in html


def test_max_iter_warns_convergence_warning():
    X, y, _, _ = small_linear()
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        est = GDRegressor(optimizer="adam", max_iter=3).fit(X, y)
    assert est.status_ == "max_iter"
    with warnings.catch_warnings():  # tol=0 asks for max_iter epochs: nothing to warn about
        warnings.simplefilter("error")
        GDRegressor(max_iter=3, tol=0.0).fit(X, y)


def test_divergence_keeps_finite_coefficients():
    X, y, _, _ = small_linear()
    with pytest.warns(fastgd.DivergenceWarning):
        est = GDRegressor(lr=1e6, precondition="none").fit(X, y)
    assert est.status_ == "diverged"
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_)
    assert np.isfinite(est.predict(X)).all()


def test_invalid_parameters_are_named():
    X, y, _, _ = small_linear()
    with pytest.raises(ValueError, match="'optimizer' parameter"):
        GDRegressor(optimizer="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="'beta2' parameter"):
        GDRegressor(beta2=1.0).fit(X, y)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        GDRegressor().fit(X, y, sample_weight=-np.ones(60))


@pytest.mark.parametrize("opt", list(reg.OPTIMIZERS))
def test_partial_fit_continues_every_optimizer(backend, opt):
    X, y, _, _ = small_linear()
    params = dict(optimizer=opt, schedule="invscaling", backend=backend, l2=0.01)
    whole = GDRegressor(max_iter=9, tol=0.0, **params).fit(X, y)
    est = GDRegressor(**params)
    for _ in range(9):
        est.partial_fit(X, y)
    np.testing.assert_allclose(est.coef_, whole.coef_, rtol=1e-12, atol=1e-12)
    assert est.intercept_ == pytest.approx(whole.intercept_, rel=1e-12, abs=1e-12)
    assert est.t_ == 9 and est.n_iter_ == 1
    np.testing.assert_allclose(est.loss_curve_, whole.loss_curve_, rtol=1e-12)


def test_partial_fit_minibatches_match_fit_with_the_same_random_state():
    X, y, _, _ = small_linear()
    params = dict(optimizer="adam", batch_size=8, random_state=7)
    whole = GDRegressor(max_iter=5, tol=0.0, **params).fit(X, y)
    est = GDRegressor(**params)
    for _ in range(5):
        est.partial_fit(X, y)
    np.testing.assert_allclose(est.coef_, whole.coef_, rtol=1e-12, atol=1e-12)
    assert est.t_ == 5 * 8


def test_partial_fit_on_streamed_chunks():
    X, y, coef, _ = fastgd.datasets.make_linear(2000, 3, noise=0.0, seed=1)
    est = GDRegressor(optimizer="momentum")
    for _ in range(100):
        for lo in range(0, 2000, 500):
            est.partial_fit(X[lo : lo + 500], y[lo : lo + 500])
    np.testing.assert_allclose(est.coef_, coef, atol=1e-7)
    assert est.t_ == 400 and est.loss_curve_.shape == (400,)
    with pytest.raises(ValueError, match="X has 2 features"):
        est.partial_fit(X[:, :2], y)


def test_warm_start_continues_the_optimizer():
    X, y, _, _ = small_linear()
    whole = GDRegressor(optimizer="adam", max_iter=8, tol=0.0).fit(X, y)
    est = GDRegressor(optimizer="adam", max_iter=4, tol=0.0, warm_start=True).fit(X, y)
    est.fit(X, y)
    np.testing.assert_allclose(est.coef_, whole.coef_, rtol=1e-12, atol=1e-12)
    assert est.t_ == 8
    # other settings: only the coefficients carry over (fresh optimizer)
    est.set_params(l2=0.5, max_iter=1)
    before = est.coef_.copy()
    est.fit(X, y)
    assert est.t_ == 1
    assert np.abs(est.coef_ - before).max() < np.abs(before).max()
    # without warm_start every fit starts afresh
    cold = GDRegressor(optimizer="adam", max_iter=4, tol=0.0)
    a = cold.fit(X, y).coef_.copy()
    np.testing.assert_array_equal(cold.fit(X, y).coef_, a)


def test_random_state_conventions():
    X, y, _, _ = small_linear()
    kw = dict(optimizer="gd", batch_size=4, max_iter=3, tol=0.0)
    a = GDRegressor(random_state=0, **kw).fit(X, y).coef_
    b = GDRegressor(random_state=0, **kw).fit(X, y).coef_
    np.testing.assert_array_equal(a, b)
    c = GDRegressor(random_state=np.random.RandomState(0), **kw).fit(X, y).coef_
    np.testing.assert_array_equal(a, c)  # a RandomState seeded alike draws alike
    GDRegressor(random_state=np.random.default_rng(0), **kw).fit(X, y)
