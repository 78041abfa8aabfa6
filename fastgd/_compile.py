"""Ahead-of-time compilation of the JIT backend: ``fastgd compile`` and ``fastgd.compile_kernels``.

The Cython backend is compiled when fastgd is built.  The numba backend
compiles each kernel family on its first use and caches it on disk
(``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the package); a container
image or a CI job can fill that cache once, ahead of time, so that no later
process waits for the JIT.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

DTYPES = ("float64", "float32")


def compile_kernels(dtypes: Sequence[str] = DTYPES) -> dict[str, float]:
    """Compile the numba kernels for ``dtypes`` into the on-disk cache.

    One entry per kernel function and dtype that serves every model, loss,
    update rule and batching (about a minute per dtype, with and without
    sample weights); afterwards no fit in a process sharing the cache
    (``NUMBA_CACHE_DIR``) compiles anything.  Without it, a process compiles
    a small kernel family per job at that job's first call (seconds, cached).

    Parameters
    ----------
    dtypes : sequence of {"float64", "float32"}
        The data types to compile for (default both).

    Returns
    -------
    dict
        Seconds per kernel function and dtype (near 0 when the cache already
        held it).  Empty when numba is not installed (the other backends need
        no JIT).

    Raises
    ------
    ValueError
        For a dtype other than float32/float64.

    Examples
    --------
    >>> import fastgd
    >>> seconds = fastgd.compile_kernels(["float64"])  # doctest: +SKIP
    >>> all(s >= 0 for s in seconds.values())  # doctest: +SKIP
    True
    """
    if isinstance(dtypes, str):
        dtypes = [dtypes]
    names = []
    for d in dtypes:
        name = np.dtype(d).name if isinstance(d, (str, type, np.dtype)) else repr(d)
        if name not in DTYPES:
            raise ValueError(f"dtypes must hold 'float64' and/or 'float32', got {d!r}")
        names.append(name)
    from .backends import _load

    nb = _load("numba")
    if nb is None:
        return {}
    return nb.compile_kernels(tuple(dict.fromkeys(names)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``fastgd compile``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> from fastgd._compile import add_arguments
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--dtype", "float32"]).dtype
    ['float32']
    """
    parser.add_argument(
        "--dtype",
        action="append",
        choices=DTYPES,
        default=None,
        help="compile for this dtype (repeatable; default both)",
    )


def run(args: argparse.Namespace) -> int:
    """``fastgd compile``: fill the numba cache; print seconds per kernel family."""
    dtypes = args.dtype or list(DTYPES)
    t0 = time.perf_counter()
    seconds = compile_kernels(dtypes)
    if not seconds:
        print(
            "fastgd compile: numba is not installed; nothing to compile "
            "(the Cython and numpy backends need no JIT)"
        )
        return 0
    for key, s in seconds.items():
        print(f"  {key:<32}{s:8.2f} s")
    print(
        f"compiled {len(seconds)} kernel families in {time.perf_counter() - t0:.1f} s "
        f"(cached for later processes)",
        file=sys.stdout,
    )
    return 0
