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
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT)
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
                                   families=["linear mse adam mini-batch float64"],
                                   weighted=False)
    assert list(times) == ["linear mse adam mini-batch float64"], times
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
