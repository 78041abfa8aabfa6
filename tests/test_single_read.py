"""The NaN/inf contract without a pass of its own.

``fit`` (every entry point: full batch, SGD, mini-batches, either
preconditioner, a fixed or automatic step, with or without a history, a
continued state, the scikit-learn estimator) reads the data only through its
own passes -- the statistics, the epochs, the final objective -- and still
raises the named ``ValueError`` (array and first bad position) before any
result is returned, never modifying the inputs.  A fit on finite data runs no
separate scan, and a stochastic fit with ``record=None`` no final objective
pass until the objective is read: its epochs visit every row, and the sum of
the losses of the residuals they step on (the kernels' progressive loss)
proves the data finite.  SGD with ``precondition="none"`` and a fixed step
thus reads the data once per epoch and no more.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

import fastgd
from fastgd.backends import resolve

from .conftest import AVAILABLE

ENTRY = {
    "gd-auto": dict(),
    "gd-none": dict(precondition="none", lr=0.1),
    "gd-none-autolr": dict(precondition="none"),
    "sgd-auto": dict(batch_size=1, record=None),
    "sgd-auto-record": dict(batch_size=1),
    "sgd-none": dict(batch_size=1, precondition="none", lr=1e-3, record=None),
    "sgd-none-autolr": dict(batch_size=1, precondition="none", record=None),
    "minibatch-adam-none": dict(
        batch_size=16, optimizer="adam", precondition="none", lr=0.01, record=None
    ),
    "huber-sgd-none": dict(batch_size=1, loss="huber", precondition="none", lr=1e-3, record=None),
    "huber-gd-none": dict(loss="huber", precondition="none", lr=0.1, record=None),
}


def _data(n, dtype, degree, seed=1):
    rng = np.random.default_rng(seed)
    Xa = rng.normal(size=(n, 2) if degree is None else n).astype(dtype)
    ya = rng.normal(size=n).astype(dtype)
    return Xa, ya


def _sizes(backend, kw):
    # the reference's single-sample loop runs in Python: small data only
    if backend == "numpy" and kw.get("batch_size"):
        return [12, 3000]
    return [12, 300_000]


def _cases():
    for backend in AVAILABLE:
        for name, kw in ENTRY.items():
            for n in _sizes(backend, kw):
                yield pytest.param(backend, name, n, id=f"{backend}-{name}-{n}")


@pytest.mark.parametrize("backend,entry,n", list(_cases()))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_fit_names_nan_inf_without_a_scan_pass(backend, entry, n, dtype, where):
    kw = ENTRY[entry]
    degree = 2 if entry.startswith("gd") and where == "middle" else None  # the poly model too
    Xa, ya = _data(n, dtype, degree)
    i = {"first": 0, "middle": n // 2, "last": n - 1}[where]
    for name, arr, pos, value in [
        ("X", Xa, (i, 1) if degree is None else i, np.nan),
        ("X", Xa, (i, 0) if degree is None else i, np.inf),
        ("y", ya, i, -np.inf),
        ("y", ya, i, np.nan),
    ]:
        bad = arr.copy()
        bad[pos] = value
        Xb, yb = (bad, ya) if name == "X" else (Xa, bad)
        before = (Xb.copy(), yb.copy())
        shown = str(pos).replace(" ", "") if degree is None or name == "y" else str(i)
        with pytest.raises(
            ValueError,
            match=rf"{name} contains {value} at position "
            rf"{re.escape(shown).replace(',', ', ?')};",
        ):
            fastgd.fit(Xb, yb, degree=degree, backend=backend, max_iter=2, tol=0, seed=0, **kw)
        np.testing.assert_array_equal(Xb, before[0])
        np.testing.assert_array_equal(yb, before[1])


@pytest.mark.parametrize("backend", AVAILABLE)
def test_continued_fit_and_callback_name_nan(backend):
    Xa, ya = _data(50, np.float64, None)
    res = fastgd.fit(Xa, ya, batch_size=1, max_iter=1, tol=0, seed=0, backend=backend)
    bad = ya.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"y contains nan at position 7;"):
        fastgd.fit(
            Xa,
            bad,
            batch_size=1,
            max_iter=1,
            tol=0,
            seed=0,
            backend=backend,
            record=None,
            state=res.state,
        )
    seen = []
    with pytest.raises(ValueError, match=r"y contains nan at position 7;"):
        fastgd.fit(
            Xa,
            bad,
            loss="huber",
            precondition="none",
            lr=0.1,
            backend=backend,
            callback=lambda *a: seen.append(a),
        )
    assert seen == []  # the callback never saw parameters fitted to bad data


def test_estimator_names_nan():
    pytest.importorskip("sklearn")
    Xa, ya = _data(40, np.float64, None)
    bad = Xa.copy()
    bad[3, 1] = np.inf
    # scikit-learn's own validation speaks first: the same contract, its words
    with pytest.raises(ValueError, match=r"[Ii]nf"):
        fastgd.GDRegressor(batch_size=1).fit(bad, ya)


class _Spy:
    """Counts the calls of some kernels of a backend module (and passes them on)."""

    def __init__(self, monkeypatch, be, names):
        self.calls = dict.fromkeys(names, 0)
        for k in names:
            fn = getattr(be, k)

            def wrapped(*a, _fn=fn, _k=k, **kw):
                self.calls[_k] += 1
                return _fn(*a, **kw)

            monkeypatch.setattr(be, k, wrapped)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize(
    "entry", ["gd-auto", "gd-none", "sgd-auto", "sgd-none", "minibatch-adam-none"]
)
def test_finite_data_are_never_scanned(monkeypatch, backend, entry):
    _, be = resolve(backend)
    spy = _Spy(monkeypatch, be, ["all_finite", "objective"])
    Xa, ya = _data(200, np.float64, None)
    res = fastgd.fit(Xa, ya, backend=backend, max_iter=3, tol=0, seed=0, **ENTRY[entry])
    assert spy.calls["all_finite"] == 0
    if ENTRY[entry].get("batch_size"):
        # record=None: nothing needed it yet.  With precondition="none" no
        # statistics pass read y either: the epochs' own losses proved it finite
        assert spy.calls["objective"] == 0
        value = res.objective
        assert spy.calls["objective"] == 1
        assert res.objective == value and spy.calls["objective"] == 1  # computed once
        ref = fastgd.loss_and_grad(Xa, ya, res.coef, res.intercept, backend=backend)[0]
        assert value == pytest.approx(ref, rel=1e-12)
    assert np.isfinite(res.objective)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_deferred_objective_pickles_without_the_data(backend):
    Xa, ya = _data(300, np.float64, None)
    res = fastgd.fit(Xa, ya, batch_size=1, max_iter=2, tol=0, seed=0, record=None, backend=backend)
    blob = pickle.dumps(res)
    assert len(blob) < Xa.nbytes  # the pickle resolved the objective, it holds no X
    back = pickle.loads(blob)
    assert back.objective == res.objective
    assert res.objective == pytest.approx(
        fastgd.loss_and_grad(Xa, ya, res.coef, res.intercept, backend=backend)[0], rel=1e-12
    )


#: Every kernel that reads X or y.
PASSES = [
    "all_finite",
    "value_range",
    "objective",
    "objective_grad",
    "lsq_stats",
    "moments",
    "max_row_norm2",
    "batch_grad",
    "run",
]


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("entry", ["sgd-none", "minibatch-adam-none", "huber-sgd-none"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("check_finite", [True, False])
def test_fixed_step_sgd_reads_the_data_once(monkeypatch, backend, entry, dtype, check_finite):
    _, be = resolve(backend)
    spy = _Spy(monkeypatch, be, [k for k in PASSES if hasattr(be, k)])
    Xa, ya = _data(300, dtype, None)
    res = fastgd.fit(
        Xa,
        ya,
        backend=backend,
        max_iter=1,
        tol=0,
        seed=0,
        check_finite=check_finite,
        **ENTRY[entry],
    )
    assert res.status == "max_iter"
    # the one epoch, and no other pass: no scan, no statistics, no final objective
    assert {k: v for k, v in spy.calls.items() if v} == {"run": 1}
    value = res.objective  # computed on first read, exactly
    assert spy.calls["objective"] == 1
    ref = fastgd.loss_and_grad(
        Xa, ya, res.coef, res.intercept, backend=backend, loss=ENTRY[entry].get("loss", "mse")
    )[0]
    assert value == pytest.approx(ref, rel=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("batch_size", [1, 16])
def test_progressive_loss_is_not_the_objective(monkeypatch, backend, batch_size):
    """``run``'s f of a stochastic epoch without a history: the mean loss of the
    residuals the steps took, the same on every backend; never the objective."""
    _, be = resolve(backend)
    seen = []
    real = be.run
    monkeypatch.setattr(be, "run", lambda *a, **kw: seen.append(real(*a, **kw)) or seen[-1])
    Xa, ya = _data(400, np.float64, None)
    kw = dict(batch_size=batch_size, precondition="none", lr=0.05, record=None, tol=0, seed=0)
    res = fastgd.fit(Xa, ya, backend=backend, max_iter=1, **kw)
    ref = fastgd.fit(Xa, ya, backend="numpy", max_iter=1, **kw)
    np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-12)
    done, status, _, prog = seen[0]
    assert (done, status) == (1, 0)
    # the same epoch in the reference, with the residuals before each step
    rng = np.random.default_rng(0)
    order = rng.permutation(400)
    theta, lsum = np.zeros(3), 0.0
    for lo in range(0, 400, batch_size):
        rows = order[lo : lo + batch_size]
        r = Xa[rows] @ theta[:2] + theta[2] - ya[rows]
        lsum += float(np.sum(r * r))
        g = np.r_[Xa[rows].T @ (2 * r), np.sum(2 * r)] / len(rows)
        theta -= 0.05 * g
    np.testing.assert_allclose(theta, np.r_[res.coef, res.intercept], rtol=1e-12)
    assert prog == pytest.approx(lsum / 400, rel=1e-12)
    assert res.objective != pytest.approx(prog, rel=1e-3)  # the objective is at the end


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("entry", ["sgd-none", "minibatch-adam-none", "huber-sgd-none"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_epoch_without_check_names_nan_inf(backend, entry, where):
    """``check_finite=False``: a bad value still ends in the named error (one epoch)."""
    Xa, ya = _data(300, np.float64, None)
    i = {"first": 0, "middle": 150, "last": 299}[where]
    for name, value in [("X", np.inf), ("X", np.nan), ("y", np.inf), ("y", -np.inf), ("y", np.nan)]:
        Xb, yb = Xa.copy(), ya.copy()
        if name == "X":
            Xb[i, 1] = value
        else:
            yb[i] = value
        with pytest.raises(ValueError, match=rf"{name} contains {value} at position"):
            fastgd.fit(
                Xb,
                yb,
                backend=backend,
                max_iter=1,
                tol=0,
                seed=0,
                check_finite=False,
                **ENTRY[entry],
            )
