"""Continuing a fit: ``fastgd.fit(..., state=res.state)`` and ``GDRegressor.partial_fit``.

k continued calls of one epoch give exactly one call of k epochs: the
optimizer's slots, the step counter and the schedule go on; the
preconditioner and the step size are fixed by the first call.
"""

import pickle

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg

from .conftest import small_linear, small_poly

OPTIMIZERS = list(reg.OPTIMIZERS)
SCHEDULE = {"gd": "invscaling", "momentum": "exponential", "adam": "invscaling"}


def _continued(X, y, k, **kw):
    res = fastgd.fit(X, y, max_iter=1, tol=0.0, **kw)
    for _ in range(k - 1):
        res = fastgd.fit(X, y, max_iter=1, tol=0.0, state=res.state, **kw)
    return res


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("model", ["linear", "poly"])
def test_k_continued_epochs_are_one_fit(backend, opt, model):
    X, y, _, _ = small_linear() if model == "linear" else small_poly()
    kw = dict(
        optimizer=opt,
        schedule=SCHEDULE.get(opt, "constant"),
        backend=backend,
        l2=0.01,
        sample_weight=np.arange(60) % 3,
    )
    if model == "poly":
        kw["degree"] = 3
    whole = fastgd.fit(X, y, max_iter=12, tol=0.0, **kw)
    cont = _continued(X, y, 12, **kw)
    np.testing.assert_allclose(cont.coef, whole.coef, rtol=1e-12, atol=1e-12)
    assert cont.intercept == pytest.approx(whole.intercept, rel=1e-12, abs=1e-12)
    assert cont.state.epoch == cont.state.step == 12
    # one fit stops early only on a step of exactly 0 (tol=0): the continued
    # calls then go on at rest, which the equal coefficients above show
    assert (
        whole.state.epoch
        == whole.state.step
        == (12 if whole.status == "max_iter" else whole.n_iter)
    )


@pytest.mark.parametrize("opt", ["gd", "adam", "momentum"])
def test_continued_minibatch_epochs_follow_one_generator(backend, opt):
    """Mini-batches: the same Generator, continued, draws the same sample orders."""
    X, y, _, _ = small_linear()
    kw = dict(optimizer=opt, batch_size=8, backend=backend)
    whole = fastgd.fit(X, y, max_iter=6, tol=0.0, seed=np.random.default_rng(5), **kw)
    rng = np.random.default_rng(5)
    res = fastgd.fit(X, y, max_iter=1, tol=0.0, seed=rng, **kw)
    for _ in range(5):
        res = fastgd.fit(X, y, max_iter=1, tol=0.0, seed=rng, state=res.state, **kw)
    np.testing.assert_allclose(res.coef, whole.coef, rtol=1e-12, atol=1e-12)
    assert res.state.step == whole.state.step == 6 * 8


def test_state_is_copied_and_pickles():
    X, y, _, _ = small_linear()
    res = fastgd.fit(X, y, optimizer="adam", max_iter=3, tol=0.0)
    before = pickle.dumps(res.state)
    a = fastgd.fit(X, y, optimizer="adam", max_iter=2, tol=0.0, state=res.state)
    assert pickle.dumps(res.state) == before  # not modified by the call continuing it
    b = fastgd.fit(
        X, y, optimizer="adam", max_iter=2, tol=0.0, state=pickle.loads(pickle.dumps(res.state))
    )
    np.testing.assert_array_equal(a.coef, b.coef)


def test_streaming_chunks_reach_the_least_squares_solution():
    X, y, coef, b = fastgd.datasets.make_linear(4000, 4, noise=0.0, seed=2)
    res = None
    for _ in range(100):
        for lo in range(0, 4000, 1000):
            res = fastgd.fit(
                X[lo : lo + 1000],
                y[lo : lo + 1000],
                optimizer="momentum",
                max_iter=1,
                tol=0.0,
                state=None if res is None else res.state,
            )
    np.testing.assert_allclose(res.coef, coef, atol=1e-6)


def test_state_errors_name_the_conflict():
    X, y, _, _ = small_linear()
    res = fastgd.fit(X, y, optimizer="adam", max_iter=2)
    with pytest.raises(ValueError, match="optimizer 'adam' != 'momentum'"):
        fastgd.fit(X, y, optimizer="momentum", state=res.state)
    with pytest.raises(ValueError, match=r"l2 0\.0 != 0\.5"):
        fastgd.fit(X, y, optimizer="adam", l2=0.5, state=res.state)
    with pytest.raises(ValueError, match="number of parameters 3 != 2"):
        fastgd.fit(X[:, :2], y, optimizer="adam", state=res.state)
    with pytest.raises(ValueError, match="not both"):
        fastgd.fit(X, y, optimizer="adam", state=res.state, coef_init=np.zeros(3))
    with pytest.raises(ValueError, match="precondition='none' cannot continue"):
        fastgd.fit(X, y, optimizer="adam", state=res.state, precondition="none")
    with pytest.raises(TypeError, match="state must be a FitState"):
        fastgd.fit(X, y, state={"theta": 0})


def test_a_later_chunk_on_another_scale_is_reported_not_nan():
    """The first call fixes lr="auto"; rows 1000x larger later make it too large:
    the fit reports divergence with the last finite coefficients, never NaN."""
    X, y, _, _ = small_linear()
    res = fastgd.fit(X, y, max_iter=1, tol=0.0)
    with pytest.warns(fastgd.DivergenceWarning):
        big = fastgd.fit(1000 * X, y, max_iter=50, tol=0.0, state=res.state)
    assert big.status == "diverged"
    assert np.isfinite(big.coef).all() and np.isfinite(big.intercept)
    # the same rows, scaled first, are fine
    ok = fastgd.fit(X, y, max_iter=50, tol=0.0, state=res.state)
    assert ok.status == "max_iter" and np.isfinite(ok.coef).all()


def test_explicit_lr_overrides_the_state():
    X, y, _, _ = small_linear()
    res = fastgd.fit(X, y, max_iter=1, tol=0.0)
    assert fastgd.fit(X, y, max_iter=1, state=res.state).lr == res.lr
    assert fastgd.fit(X, y, max_iter=1, lr=0.01, state=res.state).lr == 0.01
