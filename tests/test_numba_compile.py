"""The numba backend's kernel families: compiled per job, announced, cached, ahead of time.

Each test runs fastgd in a fresh Python process with its own numba cache
directory (empty at first, shared by the tests of this module in order), so
what is compiled, announced and cached is that of a new installation.  A
numba compilation on a busy 2-core machine takes a minute or more: every wait
has a generous timeout, and each test compiles one family at most.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from .conftest import AVAILABLE

pytestmark = pytest.mark.skipif("numba" not in AVAILABLE, reason="numba not available")

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
MESSAGE = "fastgd: compiling numba kernels"

FIT = """
import numpy as np, fastgd
X, y, _, _ = fastgd.datasets.make_linear(200, 3, noise=0.1, seed=0)
res = fastgd.fit(X, y, backend="numba", max_iter=20, {kw})
print(res.n_iter)
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("numba_cache")


def _python(code, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env.pop("FASTGD_NUMBA_KERNELS", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    return out


def _announcements(out):
    return [line for line in out.stderr.splitlines() if MESSAGE in line]


def test_first_fit_announces_its_compilation_once_then_is_cached(cache_dir):
    first = _python(FIT.format(kw="optimizer='gd'"), cache_dir)
    said = _announcements(first)
    assert len(said) == 1, first.stderr
    assert "float64" in said[0] and "linear mse gd full-batch" in said[0]
    again = _python(FIT.format(kw="optimizer='gd'"), cache_dir)
    assert _announcements(again) == [], again.stderr
    assert again.stdout == first.stdout


def test_compile_kernels_fills_the_cache(cache_dir):
    code = """
    from fastgd.backends import _numba
    times = _numba.compile_kernels(dtypes=("float64",),
                                   families=["linear mse adam mini-batch centre-and-scale float64"],
                                   weighted=False)
    assert list(times) == ["linear mse adam mini-batch centre-and-scale float64"], times
    assert all(t > 0 for t in times.values()), times
    print(times)
    """
    _python(code, cache_dir)
    # a fit of that family in a new process finds it in the cache: nothing to announce
    later = _python(FIT.format(kw="optimizer='adam', batch_size=32, seed=1"), cache_dir)
    assert _announcements(later) == [], later.stderr


def test_threading_layer_is_named():
    from fastgd.backends import _numba

    assert _numba.threading_layer() in ("tbb", "omp", "workqueue")


JOBS = """
import numpy as np, fastgd
X, y, _, _ = fastgd.datasets.make_linear(300, 3, noise=0.1, seed=0)
w = np.random.default_rng(1).uniform(0.5, 1.5, 300)
out = []
for kw in [dict(optimizer="gd"), dict(batch_size=1, optimizer="adam", seed=0),
           dict(batch_size=16, loss="huber", optimizer="nesterov", seed=0, sample_weight=w)]:
    res = fastgd.fit(X, y, backend="numba", max_iter=5, tol=0, **kw)
    out.append(np.r_[res.coef, res.intercept, res.history.loss].tobytes().hex())
res = fastgd.fit(X[:, 0], y, degree=3, backend="numba", max_iter=5, tol=0)
out.append(np.r_[res.coef, res.intercept].tobytes().hex())
out.append(repr(res.history.loss.tolist()))
print("\\n".join(out))
"""


def test_job_families_give_the_generic_kernels_bits(cache_dir):
    """What a new installation compiles per job equals, bit for bit, what the
    generic kernels (``fastgd compile``, this test suite) compute."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir), FASTGD_NUMBA_KERNELS="family")
    fam = subprocess.run(
        [sys.executable, "-c", JOBS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
    )
    assert fam.returncode == 0, fam.stderr
    assert _announcements(fam), "the families were compiled in that process"
    env["FASTGD_NUMBA_KERNELS"] = "generic"
    env.pop("NUMBA_CACHE_DIR")  # the suite's own cache of the generic kernels
    gen = subprocess.run(
        [sys.executable, "-c", JOBS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2 * TIMEOUT,
    )
    assert gen.returncode == 0, gen.stderr
    fam_out, gen_out = fam.stdout.splitlines(), gen.stdout.splitlines()
    assert fam_out[:-1] == gen_out[:-1]  # parameters (and linear histories): the same bits
    # the polynomial history: its objective is summed in another order by one of them
    np.testing.assert_allclose(eval(fam_out[-1]), eval(gen_out[-1]), rtol=4e-16, atol=0)


def test_fastgd_compile_then_no_fit_compiles(tmp_path):
    """``fastgd compile`` fills the cache with the generic kernels; a fit of any job
    in a later process then compiles nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("FASTGD_NUMBA_KERNELS", None)
    out = subprocess.run(
        [sys.executable, "-m", "fastgd", "compile", "--dtype", "float32"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    assert "run, every family float32" in out.stdout
    code = FIT.format(kw="batch_size=8, optimizer='rmsprop', seed=0").replace(
        "make_linear(200, 3, noise=0.1, seed=0)",
        "make_linear(200, 3, noise=0.1, seed=0, dtype=np.float32)",
    )
    later = _python(code, tmp_path)
    assert _announcements(later) == [], later.stderr
