"""No hidden copies: a fit of a C-contiguous float64 X allocates at most ~10 %
of X's size on top of X itself.

What these tests prove, and what they do not
--------------------------------------------
* ``tracemalloc`` sees every allocation made through Python and numpy (numpy
  reports its data buffers to it).  So the tracemalloc tests prove that the
  Python layer -- validation and coercion, the automatic step size, the SGD
  sample-order buffers, history, results -- and the whole numpy reference
  backend never copy X or allocate anything proportional to X beyond the
  budget.  They cannot see memory that compiled code allocates itself (numba's
  NRT allocator, ``malloc`` in the Cython extension).
* To cover the compiled kernels, a second test measures the process's peak
  resident memory (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``)
  around the fit.  That sees native allocations too, but only pages actually
  touched and not reused from memory the allocator already held: it is a
  lower bound, good at catching an X-sized copy, blind to small buffers.
* Both are checked against a positive control: a Fortran-ordered X *must* be
  copied to C order, and both instruments must see that copy.
"""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

import fastgd

from .conftest import AVAILABLE

BUDGET = 0.10
N, P = 200_000, 10


@pytest.fixture(scope="module")
def data():
    X, y, _, _ = fastgd.datasets.make_linear(N, P, noise=0.5, seed=0)
    assert X.flags.c_contiguous and X.dtype == np.float64
    return X, y


def _settings(backend):
    # the numpy reference walks single samples in a Python loop: mini-batches keep it fast
    sgd = 1 if backend != "numpy" else 64
    return {
        "full-batch": dict(max_iter=5, tol=0.0),
        "full-huber-adam-params": dict(
            max_iter=5, tol=0.0, loss="huber", optimizer="adam", record="params", l2=0.1
        ),
        "sgd": dict(batch_size=sgd, lr=1e-4, max_iter=3, seed=0, tol=0.0),
        "sgd-many-epochs": dict(
            batch_size=4 * sgd, lr=1e-4, max_iter=8, seed=0, tol=0.0, record=None
        ),
        "minibatch-auto-lr": dict(batch_size=512, max_iter=4, seed=0, tol=0.0),
    }


def _traced_peak(fn):
    """Peak bytes traced during ``fn()`` above what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "setting",
    ["full-batch", "full-huber-adam-params", "sgd", "sgd-many-epochs", "minibatch-auto-lr"],
)
@pytest.mark.parametrize("backend", AVAILABLE)
def test_fit_allocates_no_copy_of_X(data, backend, setting):
    X, y = data
    kw = _settings(backend)[setting]
    # compile / warm up outside the measurement, at full size: numba compiles the
    # parallel passes (and a mini-batch fit its per-sample pass) on the first
    # input that needs them
    fastgd.fit(X, y, backend=backend, **kw)
    peak = _traced_peak(lambda: fastgd.fit(X, y, backend=backend, **kw))
    assert peak <= BUDGET * X.nbytes, f"{peak / X.nbytes:.1%} of X allocated"


@pytest.mark.parametrize("backend", AVAILABLE)
def test_loss_and_grad_allocates_no_copy_of_X(data, backend):
    X, y = data
    coef = np.ones(P)
    fastgd.loss_and_grad(X[:10], y[:10], coef, backend=backend)
    peak = _traced_peak(lambda: fastgd.loss_and_grad(X, y, coef, loss="huber", backend=backend))
    assert peak <= BUDGET * X.nbytes


@pytest.mark.parametrize("backend", AVAILABLE)
def test_poly_fit_allocates_no_copy_of_x(backend):
    """The polynomial model: no n x degree feature matrix, no copy of x (1e6 samples, 8 MB)."""
    x, y, _, _ = fastgd.datasets.make_polynomial(1_000_000, 5, seed=0)
    # warm up at full size: numba compiles its parallel passes on their first large input
    fastgd.fit(x, y, degree=5, backend=backend, max_iter=2, tol=0.0)
    peak = _traced_peak(lambda: fastgd.fit(x, y, degree=5, backend=backend, max_iter=2, tol=0.0))
    assert peak <= BUDGET * x.nbytes, f"{peak / x.nbytes:.1%} of x allocated"


@pytest.mark.parametrize("backend", AVAILABLE)
def test_positive_control_fortran_X_is_copied_and_seen(data, backend):
    """The instrument works: the one copy fit must make (Fortran -> C order) is seen."""
    X, y = data
    Xf = np.asfortranarray(X[:50_000])
    peak = _traced_peak(lambda: fastgd.fit(Xf, y[:50_000], backend=backend, max_iter=2))
    assert peak >= Xf.nbytes


def _proc_status(key):
    with open("/proc/self/status") as fh:
        return int(re.search(rf"^{key}:\s+(\d+) kB", fh.read(), re.MULTILINE).group(1)) * 1024


def _reset_peak_rss():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _rss_peak(fn):
    _reset_peak_rss()
    base = _proc_status("VmRSS")
    fn()
    return _proc_status("VmHWM") - base


def _can_reset_peak_rss():
    try:
        _reset_peak_rss()
        _proc_status("VmHWM")
        return True
    except (OSError, AttributeError):
        return False


@pytest.mark.skipif(not _can_reset_peak_rss(), reason="needs Linux /proc/self/clear_refs")
@pytest.mark.parametrize("backend", AVAILABLE)
def test_peak_rss_includes_compiled_allocations(backend):
    """Peak resident memory (native allocations included) stays within budget.

    X is 1e6 x 10 (80 MB) here so the page-granular measurement is not noise.
    """
    X, y, _, _ = fastgd.datasets.make_linear(1_000_000, 10, seed=1)
    sgd = dict(batch_size=1 if backend != "numpy" else 256, lr=1e-4, max_iter=2, seed=0)
    for kw in (dict(max_iter=5), sgd):
        fastgd.fit(X[:500], y[:500], backend=backend, **kw)
        peak = _rss_peak(lambda kw=kw: fastgd.fit(X, y, backend=backend, **kw))
        assert peak <= BUDGET * X.nbytes, f"{kw}: {peak / X.nbytes:.1%} of X"
    # 80 MB: above glibc's largest dynamic mmap threshold (32 MB), so the copy
    # gets fresh pages rather than heap memory freed by an earlier fit
    Xf = np.asfortranarray(X)
    assert _rss_peak(lambda: fastgd.fit(Xf, y, backend=backend, max_iter=2)) >= 0.9 * Xf.nbytes
