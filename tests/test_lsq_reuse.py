"""The step size's statistics pass doubles as the least-squares shortcut's.

``lr="auto"`` for full batches needs the whole Gram matrix of the design (for
lambda_max); that same pass holds every sum of ``lsq_stats``, so a full-batch
MSE fit with a rule that is not adaptive hands them to ``run`` instead of
letting the kernel pass over the data again (or pass over it every epoch).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastgd
from fastgd import _precondition as pc
from fastgd.backends import available_backends, resolve

BACKENDS = available_backends()
COMPILED = [b for b in BACKENDS if b != "numpy"]


def _design(n, d, dtype, seed=0, offset=0.0, collinear=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.logspace(-2, 2, d) + offset
    if collinear:
        X[:, 1] = 2.0 * X[:, 0] + 1e-7 * rng.standard_normal(n)
    y = X @ rng.standard_normal(d) + 5.0 + 0.1 * rng.standard_normal(n)
    w = rng.random(n) * 2.0
    return X.astype(dtype), y.astype(dtype), (w / w.mean()).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_raw_sums_are_lsq_stats(backend, dtype, weighted, offset):
    """The sums rebuilt from moments about the first row equal the backend's own
    ``lsq_stats`` of the linear model, to the rounding of the sums."""
    _, be = resolve(backend)
    X, y, w = _design(30_011, 6, dtype, seed=1, offset=offset)
    ww = w if weighted else None
    x0, y0 = X[0].astype(np.float64), float(y[0])
    sums = be.moments(X, y, x0, y0, True, ww)
    W = X.shape[0] if ww is None else float(np.sum(ww, dtype=np.float64))
    G, c, S = pc._raw_sums(x0, y0, *sums, W)
    Gk, ck, Sk = be.lsq_stats(0, X, y, np.array([0.0, 1.0]), X.shape[1], w=ww)
    # against the scale of the terms: sum |w a a^T|, sum |w y a|, sum w y**2
    A = np.c_[X.astype(np.float64), np.ones(X.shape[0])]
    wv = np.ones(X.shape[0]) if ww is None else ww.astype(np.float64)
    Aa = np.abs(A) * wv[:, None]
    yy = np.abs(y.astype(np.float64))
    np.testing.assert_array_less(np.abs(G - Gk), 1e-12 * (Aa.T @ np.abs(A)))
    np.testing.assert_array_less(np.abs(c - ck), 1e-12 * (Aa.T @ yy))
    assert abs(S - Sk) <= 1e-12 * float(wv @ (yy * yy))


class _RunSpy:
    """Records whether each ``run`` call of a backend module got ``stats``."""

    def __init__(self, monkeypatch, be):
        self.got: list[bool] = []
        real = be.run

        def run(*a, **kw):
            self.got.append(kw.get("stats") is not None)
            return real(*a, **kw)

        monkeypatch.setattr(be, "run", run)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kw", "expect"),
    [
        ({"optimizer": "gd"}, True),
        ({"optimizer": "momentum"}, True),
        ({"optimizer": "nesterov", "precondition": "none"}, True),
        ({"optimizer": "gd", "precondition": "none", "sample_weight": True}, True),
        ({"optimizer": "gd", "degree": 3}, True),
        ({"optimizer": "gd", "degree": 3, "precondition": "none"}, True),
        ({"optimizer": "gd", "lr": 0.01}, False),  # no Gram matrix was computed
        ({"optimizer": "adam"}, False),  # adaptive: the row pass's path
        ({"optimizer": "adagrad", "precondition": "none"}, False),
        ({"optimizer": "gd", "loss": "huber"}, False),
        ({"optimizer": "gd", "batch_size": 50}, False),
    ],
)
def test_run_gets_the_statistics(monkeypatch, backend, kw, expect):
    _, be = resolve(backend)
    spy = _RunSpy(monkeypatch, be)
    kw = dict(kw)
    degree = kw.get("degree", 1)
    X, y, w = _design(400, 1 if degree > 1 else 5, np.float64, seed=2)
    if degree > 1:
        X = X[:, 0]
    if kw.pop("sample_weight", False):
        kw["sample_weight"] = w
    res = fastgd.fit(X, y, max_iter=4, tol=0, seed=0, backend=backend, **kw)
    assert spy.got and all(g == expect for g in spy.got)
    assert res.status != "diverged"


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["plain", "offset", "collinear", "weighted"])
@pytest.mark.parametrize("optimizer", ["gd", "momentum", "nesterov"])
@pytest.mark.parametrize("precondition", ["auto", "none"])
def test_shortcut_follows_the_reference(backend, dtype, case, optimizer, precondition):
    """Ten epochs with lr="auto" from the handed-over statistics follow the numpy
    reference's row passes (the kernel alone would take its own Gram matrix only
    beyond p + 1 = 13 epochs): the same loss history and parameters, to rounding."""
    X, y, w = _design(
        5_003,
        12,
        dtype,
        seed=3,
        offset=1e3 if case == "offset" else 0.0,
        collinear=case == "collinear",
    )
    kw = {"sample_weight": w} if case == "weighted" else {}
    fits = {
        b: fastgd.fit(
            X,
            y,
            optimizer=optimizer,
            precondition=precondition,
            max_iter=10,
            tol=0,
            backend=b,
            **kw,
        )
        for b in ("numpy", backend)
    }
    ref, got = fits["numpy"], fits[backend]
    assert got.lr == pytest.approx(ref.lr, rel=1e-9)
    # float64: the Gram form and the row pass round differently (data 1e3
    # away from the origin cancel up to ~1e5 in the gradient of the 1e-2
    # scaled columns); float32: the reference's own rounding of such data
    # (~1e-3 relative in its loss, measured between the backends before any
    # statistics were handed over) bounds the agreement
    rtol = 1e-8 if dtype == np.float64 else (3e-3 if case == "offset" else 2e-4)
    lh_ref, lh = np.asarray(ref.history.loss), np.asarray(got.history.loss)
    assert lh.shape == lh_ref.shape
    np.testing.assert_allclose(lh, lh_ref, rtol=rtol)
    # the fitted function (the parameters of a collinear or off-centre design
    # are not determined to the same digits)
    scale = float(np.std(y.astype(np.float64)))
    atol = (1e-7 if dtype == np.float64 else 5e-3) * scale
    np.testing.assert_allclose(got.predict(X), ref.predict(X), atol=atol)
