"""Settings of the compiled backends, kept in one place.

Importing this module never imports numba; :func:`configure_numba` does, and
the numba backend calls it once, before its first parallel kernel runs.

* ``FASTMATH``: the LLVM fast-math flags of every numba kernel.  Only flags
  that keep NaN and infinity semantics (no ``nnan``/``ninf``, hence no
  ``fast``), so ``isfinite`` still detects a diverging fit in compiled code.
  ``reassoc`` lets reductions (dot products, row sums) vectorize, ``contract``
  allows fused multiply-add.
* Threading layer: numba's default ``workqueue`` layer aborts the process
  when two Python threads run parallel kernels at the same time.  fastgd asks
  for ``"threadsafe"`` (TBB, else OpenMP) unless the user chose a layer with
  ``NUMBA_THREADING_LAYER``.  If no thread-safe layer can be loaded, parallel
  kernels run under a lock (:data:`parallel_lock`).
* Threads: ``FASTGD_NUM_THREADS`` (or :func:`set_num_threads`) caps the
  threads of fastgd's parallel kernels; default: numba's (all cores).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

#: Fast-math flags for numba kernels: a subset that keeps isnan/isfinite exact.
FASTMATH: frozenset[str] = frozenset({"reassoc", "contract", "arcp", "nsz", "afn"})

#: Layer requested when the user did not choose one (``NUMBA_THREADING_LAYER``).
THREADING_LAYER = "threadsafe"

_num_threads: int | None = None
_layer: str | None = None
_lock = threading.Lock()
_configured = False


def _env_threads() -> int | None:
    val = os.environ.get("FASTGD_NUM_THREADS")
    if not val:
        return None
    try:
        k = int(val)
    except ValueError:
        raise ValueError(f"FASTGD_NUM_THREADS must be a positive integer, got {val!r}") from None
    if k < 1:
        raise ValueError(f"FASTGD_NUM_THREADS must be a positive integer, got {val!r}")
    return k


def configure_numba() -> str:
    """Choose numba's threading layer and start it; returns the layer's name.

    Idempotent.  Must run before the first parallel kernel of the process
    (numba fixes its layer at the first launch); if another library already
    started numba's threads, the layer in use is kept and, when it is not
    thread safe, fastgd's parallel kernels are serialised by a lock.
    """
    global _configured, _layer, _num_threads
    with _lock:
        if _configured:
            return _layer or "unknown"
        import numba
        from numba.np.ufunc import parallel as nb_parallel

        if not nb_parallel._is_initialized and "NUMBA_THREADING_LAYER" not in os.environ:
            numba.config.THREADING_LAYER = THREADING_LAYER
        try:
            nb_parallel._launch_threads()
        except ValueError:  # neither TBB nor OpenMP could be loaded
            numba.config.THREADING_LAYER = "workqueue"
            nb_parallel._launch_threads()
        _layer = numba.threading_layer()
        if _num_threads is None:
            _num_threads = _env_threads()
        _configured = True
        return _layer


def threading_layer() -> str | None:
    """The numba threading layer fastgd runs on (``None`` before the backend loads)."""
    return _layer


def thread_safe() -> bool:
    """Whether parallel kernels may run from several Python threads at once."""
    return _layer in ("tbb", "omp")


def set_num_threads(n: int | None) -> None:
    """Cap the threads of fastgd's parallel numba kernels (``None``: all cores).

    Parameters
    ----------
    n : int or None
        Between 1 and the number of threads numba started.

    Examples
    --------
    >>> from fastgd import _config
    >>> _config.set_num_threads(None)
    """
    global _num_threads
    if n is not None:
        n = int(n)
        if n < 1:
            raise ValueError(f"the number of threads must be >= 1, got {n}")
    _num_threads = n


def num_threads() -> int | None:
    """The thread cap set by :func:`set_num_threads` or ``FASTGD_NUM_THREADS``."""
    return _num_threads


_serial = threading.Lock()


def parallel_lock() -> Any:
    """A context manager around a parallel kernel call.

    A no-op with a thread-safe layer; a process-wide lock otherwise.
    """
    if thread_safe():
        return contextlib.nullcontext()
    return _serial
