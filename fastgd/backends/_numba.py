"""The numba backend: every kernel of the interface compiled with ``@njit``.

Design
------
Mirrors _cython.pyx, and both mirror the reference ``_numpy.py``: the same
sections in the same order, the same function names and argument order.
Shapes, dtypes and codes: ``fastgd/backends/__init__.py``.

Sections: input scan (and value range) -> scalar losses -> model prediction -> fused
objective/gradient over rows -> update rules -> preconditioned step ->
schedule -> epoch loop -> minimize loop.

* Kernel families: the model, loss, update rule, batching (full batch,
  single samples, mini-batches; rows staged or not) and, for ``run``, the
  preconditioner's kind (none, centre-and-scale, dense) are integer codes
  switched on inside the kernels, and each public function compiles one
  family per combination of its codes and data dtype, at the first call that
  needs it, with the codes as compile-time constants (``_family``): numba
  prunes the branches they rule out before typing, so a job compiles only
  its own paths (a few seconds instead of half a minute for every
  combination).  Families are cached on disk, and the first call of one
  that is not cached says so on stderr.  ``compile_kernels`` compiles them
  all ahead of time; ``FASTGD_NUMBA_KERNELS=generic`` takes the codes as
  arguments instead (one longer compilation per dtype for every family).
  The schedule is a runtime code.  The public functions pass ``X`` and
  ``y`` as read-only views, so writeable arrays, ``np.memmap(mode="r")`` and
  arrays with ``writeable=False`` share one compiled version.  Sample
  weights add one more per family and dtype, compiled at the first weighted
  call (below).
* Row sums go block by block (``_block_rows`` rows, about ``BLOCK_ELEMS``
  elements of ``X``): each block sums into its own row of a float64 buffer,
  and the rows are added in block order afterwards.  Large inputs run the
  blocks in parallel (``prange``), small ones serially; both give the same
  bits, whatever the number of threads or their scheduling.
* Within a row, arithmetic follows the reference: the prediction (dot product
  or Horner) and the residual in the data dtype, the gradient terms in
  float64, results stored in the data dtype.
* Full-batch least squares (MSE) gathers ``A^T A``, ``A^T y`` and
  ``y^T y`` in one pass when ``run`` starts -- for the polynomial model the
  moments ``sum u**m`` (m <= 2p), for the linear model the Gram matrix when
  the call has more epochs than parameters and a rule that is not adaptive
  (see ``_run``) -- or takes them from the
  caller (``run(..., stats=)``, e.g. its preconditioner's statistics
  pass); every epoch's objective and gradient is then O(p**2), the same
  quantities as the reference's pass over the rows.  Near overflow, and
  when the gradient is within rounding of zero (where the reference's exact
  zero decides convergence), the epoch takes the pass over the rows instead
  -- with a preconditioner or a dense penalty only when ``tol`` is 0 (with
  ``tol > 0`` a step at that noise floor stops the fit either way), and then
  also when the whole gradient is at the floor (``_objective_grad_lsq``'s
  ``strict``, as in the Cython backend).
* Stochastic batches walk ``order``, which is known in advance: the rows a
  few steps ahead are prefetched (``llvm.prefetch``), so random row access
  does not wait on memory latency.  Single-sample gd on the linear model
  fuses each step with the next sample's dot product (two sweeps per row),
  with the centre-and-scale preconditioner too (``_sgd_gd_linear_pre``).
  On data larger than the caches, with two threads or more, a second thread
  stages the rows of the next chunk of ``order`` into a buffer, in visiting
  order, while the first steps through the current chunk (``_staged_epoch``):
  the random reads then overlap the steps.  Same steps, same bits.  That
  thread is started from Python for the whole call (``_Staging``, running
  ``_stager``) and meets the stepping thread at each chunk through atomic
  marks: no parallel region, whose compilation would cost seconds of a cold
  start.  The statistics passes called from Python (``moments``,
  ``max_row_norm2``) split their blocks between Python threads likewise
  (``_over_blocks``).
* ``basis`` (the poly model's ``[shift, scale]``) and ``pre`` (``run``'s
  preconditioner) reach the kernels as float64 arrays of one type (the
  public functions convert a float ``basis`` and a None ``pre``), and
  ``l2w`` is diagonal or a dense row-major ``Q`` by its length, so neither
  adds compilations.  The preconditioned step (``step``) and the dense
  penalty are O(p**2) per step, summed in the reference's order (no
  fast-math).  The fused single-sample steps (``_sample_step``,
  ``_sgd_gd_linear``), which inline a diagonal penalty per coordinate, run
  only with a diagonal ``l2w`` and no preconditioner; plain gd on the linear
  model with the centre-and-scale preconditioner and a diagonal ``l2w``
  takes ``_sgd_gd_linear_pre``, the same bits as its general path (one-row
  gradient in fixed order, ``_sample_grad_linear``, then ``step``);
  otherwise every batch goes through ``_finish`` and ``step``.  Without
  ``pre`` and with a diagonal ``l2w`` every path is the unpreconditioned
  code, same bits.
* Sample weights ``w`` (``objective_grad``, ``objective``, ``batch_grad``,
  ``lsq_stats``, ``run``): None, or (n,) in the data dtype (the public
  functions convert, read-only).  None is a type of its own to numba, so
  ``w is None`` is decided at compile time: the unweighted kernels are
  compiled from the code they had before weights, with the same bits and
  speed, and the weighted ones are compiled separately, once per dtype, at
  the first weighted call.  Each row's rho and psi are multiplied by w_i in
  float64, and sums are still divided by the row count.  Every path takes
  the weights, none falls back to a slower one: the full pass (``_rows_w``,
  a copy of ``_rows``, so that the source inlined into the unweighted
  parallel pass stays as it was), mini-batches, the fused single-sample
  steps (``_sgd_gd_linear``, ``_sgd_gd_linear_pre``: one product per
  sample, the weight prefetched with the row), staged epochs (the weights
  staged with their rows) and the least-squares shortcut (weighted moments
  and Gram matrix, or the caller's weighted ``stats``, with an overflow
  guard: ``_lsq_guard``).
* ``schedule`` takes an optional epoch offset, ``sched_hp[2]`` (a fit
  continuing an earlier one keeps its schedule while its epochs restart).
* Fast-math flags come from ``fastgd._config.FASTMATH`` (no flag that breaks
  ``isfinite``); the threading layer is chosen there too, before the first
  parallel kernel runs, after ``_preload_tbb`` has made numba's TBB layer
  (thread and fork safe) loadable when the ``tbb`` package is installed.  On
  another layer a process made by ``fork`` keeps out of parallel regions
  (``_forked``): GNU OpenMP's threads do not survive ``fork``.  With the
  fast-math flags, LLVM's code for a loop (contractions, reassociation)
  and so the last bits of its sums can follow changes to any source inlined
  next to it.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import threading
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils, ir as nir
from numba.core.caching import NullCache
from numba.core.compiler import CompilerBase, DefaultPassBuilder
from numba.core.compiler_machinery import FunctionPass, register_pass
from numba.core.imputils import impl_ret_borrowed
from numba.core.ir_utils import build_definitions
from numba.core.untyped_passes import IRProcessing
from numba.extending import intrinsic, overload

from .. import _config
from . import LARGE_SGD_BYTES, _numpy


def _preload_tbb() -> str | None:
    """Make numba's TBB threading layer loadable; returns the library loaded, or None.

    The ``tbb`` package installs ``libtbb.so.12`` in the environment's ``lib``
    directory, which is often not on the loader's path, so numba's TBB layer
    (thread safe *and* fork safe) fails to load and numba falls back to
    OpenMP.  Loading the library first, with global symbols, lets it load.
    Nothing is done when numba's TBB layer loads already or ``tbb`` is not
    installed.
    """
    import ctypes
    import importlib.metadata
    import os
    import sys as _sys

    try:
        from numba.np.ufunc import tbbpool

        return None
    except ImportError:
        pass
    names = ("libtbb.so.12", "libtbb.12.dylib")
    paths = []
    try:
        for f in importlib.metadata.distribution("tbb").files or ():
            if f.name in names:
                paths.append(str(f.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for root in (_sys.prefix, _sys.base_prefix):
        paths += [os.path.join(root, "lib", name) for name in names]
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            from numba.np.ufunc import tbbpool  # noqa: F401
        except (OSError, ImportError):
            continue
        return path
    return None


_tbb_library = _preload_tbb()
_config.configure_numba()
#: True in a process made by ``fork`` when the parent's threading layer is not
#: fork safe (GNU OpenMP's threads do not survive ``fork``, and the child must
#: never enter a parallel region): the child's calls on data large enough for
#: the parallel kernels then run the reference backend (``_numpy``: the same
#: numbers up to rounding), the others the serial kernels.
_forked = False


def _after_fork_in_child() -> None:
    global _forked, _pool
    _pool = None  # its threads are not in the child
    if _config.threading_layer() != "tbb":
        _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def threading_layer() -> str:
    """The numba threading layer fastgd's parallel kernels run on: ``"tbb"`` (thread
    and fork safe), ``"omp"`` (thread safe; a forked child runs serially) or
    ``"workqueue"`` (parallel kernels under a lock)."""
    return _config.threading_layer() or numba.threading_layer()


_FM = set(_config.FASTMATH)
#: Target number of X elements per row block (1 MB of float64: few enough blocks
#: that scheduling them costs nothing next to streaming them, many per thread).
BLOCK_ELEMS = 1 << 17
#: Iterations of a ``prange`` loop a thread takes at a time (see ``_Parallel``).
SCHEDULE_CHUNK = 4
#: Below this many X elements a pass over the rows runs serially (thread
#: start-up would cost more than it saves).
PARALLEL_MIN = 1 << 17
#: How many rows ahead of the current one stochastic batches prefetch into
#: L2, and then into L1.
PREFETCH_FAR = 32
PREFETCH_NEAR = 4
#: Stochastic epochs over an ``X`` of at least this many bytes stage their rows
#: (``_staged_epoch``) when two threads are available.  Measured on a 32 MB L3:
#: 1.4-2x faster epochs from 150 MB on, a wash at 40-80 MB (much of ``X`` is
#: still in the L3 there).
STAGE_MIN_BYTES = LARGE_SGD_BYTES
#: Bytes of ``X`` rows per staged chunk (two chunk buffers in use at a time).
STAGE_BYTES = 1 << 21
#: Rows ahead of the current one the staging thread prefetches into L2.
STAGE_PREFETCH = 16
#: How far ahead of the current rows a full pass over the linear model's rows
#: prefetches (into L2).  Measured on 1e6 x 100 float64 with two threads,
#: numba's time over Cython's in the same process (median of 5 processes):
#: 1.24 at 16 KB, 1.12 at 2 KB, 1.10 at 4 KB, 1.16 with the hardware
#: prefetcher alone.
FULL_PREFETCH_BYTES = 1 << 12
#: Rows whose gradient terms are summed in the data dtype before joining
#: the float64 sums (linear model, full passes).
_FLUSH = 128
#: Rows per chunk of the polynomial moment pass.
_CHUNK = 256

#: Full-batch polynomial MSE epochs cost O(degree**2) after one pass over the
#: rows (the moments), so ``run`` can take many epochs per call.
POLY_MSE_MOMENTS: bool = True
#: Single-sample plain gd on the linear model with the centre-and-scale
#: preconditioner takes the fused ``_sgd_gd_linear_pre``.  False: its general
#: path (one-row gradient, then ``step``), the same bits, several times slower;
#: read by ``run`` at each call (for tests and timings).
FUSED_PRE: bool = True


@register_pass(mutates_CFG=True, analysis_only=False)
class _LiteralArgs(FunctionPass):
    """An argument typed as a literal integer or boolean (a constant passed by
    the caller: the codes of a kernel family, ``want_grad``...) becomes that
    constant in the function's IR, so numba's dead branch pruning removes the
    branches it rules out before typing (numba itself prunes on an argument's
    type only, e.g. ``w is None``)."""

    _name = "fastgd_literal_args"

    def __init__(self) -> None:
        FunctionPass.__init__(self)

    def run_pass(self, state: Any) -> bool:
        changed = False
        for block in state.func_ir.blocks.values():
            for stmt in block.body:
                if isinstance(stmt, nir.Assign) and isinstance(stmt.value, nir.Arg):
                    ty = state.args[stmt.value.index]
                    if isinstance(ty, (types.IntegerLiteral, types.BooleanLiteral)):
                        stmt.value = nir.Const(ty.literal_value, stmt.value.loc)
                        changed = True
        if changed:  # what later passes (and inlining cost models) read as definitions
            state.func_ir._definitions = build_definitions(state.func_ir.blocks)
        return changed


class _Compiler(CompilerBase):
    """numba's nopython pipeline with ``_LiteralArgs`` before its first branch pruning."""

    def define_pipelines(self) -> list:
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.add_pass_after(_LiteralArgs, IRProcessing)
        pm.finalize()
        return [pm]


#: Functions called from Python (the families, the generic entries, the block
#: kernels of the statistics passes, ``_stager``, the public names) compile with
#: numba's CPython and C wrappers (``_jit_entry``, ``_jit_ordered_entry``); the
#: kernels only compiled code calls (``_jit``, ``_jit_ordered``, ``_jit_par``)
#: without: about 30 ms of a cold start each, and code that every caller would
#: optimise again.  (Called from Python, a function without them crashes.)
_jit_entry = dict(cache=True, nogil=True, fastmath=_FM, pipeline_class=_Compiler)
_NO_WRAPPERS = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)
_jit = dict(_jit_entry, **_NO_WRAPPERS)
_jit_par = dict(_jit, parallel=True)
#: Small leaf helpers called per row (the loss, the prediction...) are inlined into
#: their callers at numba's IR level.  Larger helpers are not: numba copies and
#: re-processes a callee's IR at each call site it inlines (seconds of a cold
#: start for the epoch loops), while a compiled helper is compiled once per set of
#: literal arguments and LLVM still inlines it where that pays; those that switch
#: on a code are IR-inlined only where it is not a constant
#: (``_inline_unless_constant``).
_jit_inline = dict(_jit_entry, inline="always")


def _inline_unless_constant(index: int) -> Callable[..., bool]:
    """A numba inlining cost model for a helper that switches on a code (its
    argument ``index``): inline a call at numba's IR level when that argument
    is not a constant -- in the generic entries, where nothing is pruned and a
    large helper would stay a call (about 20 ns each, per step) -- and leave it
    to LLVM when it is: in a kernel family the helper is compiled once per
    code, pruned to a few lines that LLVM inlines itself."""

    def cost_model(expr: Any, caller_ir: Any, callee_ir: Any) -> bool:
        if index >= len(expr.args):
            return True
        try:
            d = caller_ir.get_definition(expr.args[index])
        except Exception:  # noqa: BLE001 - no single definition: not a constant
            return True
        return not isinstance(d, (nir.Const, nir.Global, nir.FreeVar))

    return cost_model


#: No fast-math at all: the input scan relies on ``x - x`` being NaN for
#: NaN and inf, which ``reassoc`` lets LLVM fold to 0.
_jit_exact = dict(cache=True, nogil=True, pipeline_class=_Compiler)
#: Sums kept in exactly the reference's order (dense penalty, preconditioned
#: step): fast-math off, and explicitly so -- a function that leaves
#: ``fastmath`` unset inherits the flags of the caller that compiles it first.
_jit_ordered_entry = dict(cache=True, nogil=True, fastmath=False, pipeline_class=_Compiler)
_jit_ordered = dict(_jit_ordered_entry, **_NO_WRAPPERS)


def _make_prefetch(locality: int) -> Any:
    @intrinsic
    def prefetch(typingctx, addr):
        if not isinstance(addr, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            i32 = ir.IntType(32)
            ptr = builder.inttoptr(args[0], ir.IntType(8).as_pointer())
            fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            # read (0), temporal locality, data cache (1)
            builder.call(
                fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, locality), ir.Constant(i32, 1)]
            )
            return context.get_dummy_value()

        return types.void(addr), codegen

    return prefetch


#: Hint the CPU to load the cache line at an integer address: into L2 (far
#: ahead: does not evict the rows in use from L1) or into L1 (just ahead).
_prefetch_l2 = _make_prefetch(2)
_prefetch_l1 = _make_prefetch(3)


@intrinsic
def _address(typingctx, arr):
    """The address of ``arr``'s data as an integer (no reference counting)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, value=args[0])
        return builder.ptrtoint(ary.data, ir.IntType(64))

    return types.int64(arr), codegen


# ---------------------------------------------------------------- input scan


@njit(**_jit_exact, inline="always")
def _nonfinite_span(a, lo, hi):
    """0 when a[lo:hi] is all finite, NaN otherwise: ``x - x`` is NaN exactly
    for NaN and +-inf, and NaN survives any sum.  Eight running sums let the
    loop vectorize without reassociating (reading is the cost)."""
    z = a.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    k = lo
    while k + 8 <= hi:
        s0 += a[k] - a[k]
        s1 += a[k + 1] - a[k + 1]
        s2 += a[k + 2] - a[k + 2]
        s3 += a[k + 3] - a[k + 3]
        s4 += a[k + 4] - a[k + 4]
        s5 += a[k + 5] - a[k + 5]
        s6 += a[k + 6] - a[k + 6]
        s7 += a[k + 7] - a[k + 7]
        k += 8
    while k < hi:
        s0 += a[k] - a[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(**_jit_exact, parallel=True)
def _nonfinite_parallel(a, n_chunks):
    n = a.shape[0]
    part = np.empty(n_chunks)
    for c in prange(n_chunks):
        part[c] = _nonfinite_span(a, (c * n) // n_chunks, ((c + 1) * n) // n_chunks)
    return part.sum()


@njit(**_jit_exact)
def _nonfinite_serial(a):
    return _nonfinite_span(a, 0, a.shape[0])


def all_finite(a: np.ndarray) -> bool:
    """True when no element of the C-contiguous float array ``a`` is NaN or +-inf.

    One read of ``a``, parallel over chunks for large arrays.
    """
    flat = _ro(a.reshape(-1))
    if flat.shape[0] < PARALLEL_MIN or _forked:
        return bool(_nonfinite_serial(flat) == 0.0)
    with _Parallel(flat.shape[0]):
        return bool(_nonfinite_parallel(flat, min(64, flat.shape[0] // BLOCK_ELEMS)) == 0.0)


# value_range works on the bits: a float's bits read as a signed integer,
# with every bit but the sign flipped when the sign is set, are ordered as
# the floats are (-inf < ... < -0.0 < +0.0 < ... < +inf), so the minimum and
# maximum are integer reductions, which vectorize (float compares would not
# without fast-math).  NaNs are counted apart: magnitude bits above inf's.


@njit(**_jit_exact)
def _range_span(b, low, inf):
    """(min key, max key, NaN count) of the float bits ``b`` (int64 / int32 view).

    ``low``: every bit but the sign; ``inf``: the bits of +inf.
    """
    sh = b.dtype.type(b.itemsize * 8 - 1)
    kmn = low
    kmx = -low - 1
    nan = 0
    for k in range(b.shape[0]):
        v = b[k]
        key = v ^ ((v >> sh) & low)
        kmn = min(kmn, key)
        kmx = max(kmx, key)
        nan += (v & low) > inf
    return kmn, kmx, nan


@njit(**_jit_exact, parallel=True)
def _range_parallel(b, n_chunks, low, inf):
    n = b.shape[0]
    part = np.empty((n_chunks, 3), b.dtype)
    for c in prange(n_chunks):
        kmn, kmx, nan = _range_span(b[(c * n) // n_chunks : ((c + 1) * n) // n_chunks], low, inf)
        part[c, 0] = kmn
        part[c, 1] = kmx
        part[c, 2] = 1 if nan else 0
    kmn, kmx, nan = part[0, 0], part[0, 1], part[0, 2]
    for c in range(1, n_chunks):
        kmn = min(kmn, part[c, 0])
        kmx = max(kmx, part[c, 1])
        nan = max(nan, part[c, 2])
    return kmn, kmx, nan


#: float dtype -> (the integer view, every bit but the sign, the bits of +inf)
_RANGE_BITS = {
    np.dtype(np.float64): (np.int64, np.int64(0x7FFFFFFFFFFFFFFF), np.int64(0x7FF0000000000000)),
    np.dtype(np.float32): (np.int32, np.int32(0x7FFFFFFF), np.int32(0x7F800000)),
}


def value_range(a: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of the C-contiguous 1-D float32 / float64 array ``a``, as Python floats.

    Both in one read of ``a``, parallel over chunks for large arrays
    (``np.min`` and ``np.max`` read it twice).  Like them, a NaN anywhere
    gives NaN for both; +-inf are ordinary values.  Raises ``ValueError`` on
    an empty array (no minimum), like ``np.min``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> _numba.value_range(np.array([2.0, -1.5, np.inf, 0.25]))
    (-1.5, inf)
    >>> _numba.value_range(np.array([1.0, np.nan, 3.0], dtype=np.float32))
    (nan, nan)
    """
    bits = _RANGE_BITS.get(a.dtype) if isinstance(a, np.ndarray) else None
    if bits is None or a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(
            f"value_range takes a C-contiguous 1-D float32 or float64 array, "
            f"got {getattr(a, 'dtype', type(a).__name__)} with shape "
            f"{np.shape(a)}"
        )
    n = a.shape[0]
    if n == 0:
        raise ValueError("value_range of an empty array: there is no minimum or maximum")
    ity, low, inf = bits
    b = _ro(a).view(ity)
    if n < PARALLEL_MIN or _forked:
        kmn, kmx, nan = _range_span(b, low, inf)
    else:
        with _Parallel(n):
            kmn, kmx, nan = _range_parallel(b, min(64, n // BLOCK_ELEMS), low, inf)
    if nan:
        return math.nan, math.nan
    keys = np.array([kmn, kmx], ity)
    lo, hi = (keys ^ ((keys >> (keys.itemsize * 8 - 1)) & low)).view(a.dtype)
    return float(lo), float(hi)


# ---------------------------------------------------------------- losses
# loss 0: mse    rho = r**2                 psi = 2 r
# loss 1: huber  rho = r**2/2 (|r|<=d)      psi = clip(r, -d, d)
#                d (|r| - d/2) otherwise
# Both return float64 (the row sums accumulate in float64).


@njit(**_jit_inline)
def rho(loss, r, delta):
    """Loss of one residual ``r``."""
    rr = float(r)
    if loss == 0:
        return rr * rr
    a = abs(rr)
    inner = 0.5 * rr * rr
    outer = delta * (a - 0.5 * delta)
    return inner if a <= delta else outer


@njit(**_jit_inline)
def psi(loss, r, delta):
    """Derivative of the loss at one residual ``r``."""
    rr = float(r)
    if loss == 0:
        return 2.0 * rr
    return min(max(rr, -delta), delta)  # branch free: residuals straddle the kink


# Sample weights ``w``: (n,) in the data dtype, or None.  A row's terms are
# rho(r_i) w_i and psi(r_i) w_i, each product in float64 from the float64 rho
# / psi above (for float64 data the reference's products exactly; for float32
# data MSE's psi w_i rounds to the same float32 as the reference's, and
# rho w_i keeps more bits).  Weighted or not is decided when numba compiles:
# a None ``w`` is a type of its own, for which numba prunes every
# ``if w is not None`` block before typing, so the unweighted kernels are the
# code they were without weights.  In the row loops the weight is read in
# place (``w[i]``), not through a helper taking ``w``: an array passed to an
# inlined function inside a loop costs numba's reference counting there (an
# atomic increment and decrement per row), so the prefetches of the weights
# take their address as an integer (``_weight_address``).  No variable holds
# None or an array by turns (an optional type): such choices are typed
# (``_weight_buffers`` and the like).

# ---------------------------------------------------------------- model
# model 0: linear  pred = X[i] @ coef + b          (dot product in the data dtype)
# model 1: poly    pred = b + sum_j coef[j-1] u**j, by Horner, with
#                  u = (x - basis[0]) * basis[1] formed in the data dtype


@njit(**_jit_inline)
def _basis_dt(X, basis):
    """The float64 ``basis`` array as a pair of data-dtype scalars ``(shift, scale)``.

    The compiled entry points take the array (one type for every call) and
    pass this pair down: formed once per call, it stays in registers in the
    row loops (an array would be reloaded after every store to ``theta``).
    ``_u`` gives the same numbers for either.
    """
    dt = X.dtype.type
    return (dt(basis[0]), dt(basis[1]))


@njit(**_jit_inline)
def _u(X, i, basis):
    """The polynomial model's input ``u = (x - shift) * scale`` in the data dtype."""
    dt = X.dtype.type
    return (X[i, 0] - dt(basis[0])) * dt(basis[1])


@njit(**_jit_inline)
def predict_row(model, X, i, theta, basis):
    """Prediction for row ``i``, in the data dtype."""
    p = theta.shape[0] - 1
    if model == 0:
        d = X.dtype.type(0.0)
        for j in range(p):
            d += X[i, j] * theta[j]
        return d + theta[p]
    u = _u(X, i, basis)
    pred = theta[p - 1] * u  # Horner: ((c_k u + c_{k-1}) u + ... + c_1) u
    for j in range(p - 2, -1, -1):
        pred = (pred + theta[j]) * u
    return pred + theta[p]


@njit(**_jit_inline)
def _accumulate_row(model, X, i, s, basis, acc):
    """acc[:p] += s dpred_i/dcoef, acc[p] += s (float64 acc)."""
    p = acc.shape[0] - 1
    if model == 0:
        for j in range(p):
            acc[j] += s * X[i, j]
    else:
        u = _u(X, i, basis)
        pw = u
        for j in range(p):  # running power u**(j+1), in the data dtype
            acc[j] += s * pw
            pw = pw * u
    acc[p] += s


# The penalty 0.5 * theta @ Q @ theta: ``l2w`` holds p + 1 diagonal weights
# (Q = diag(l2w)) or (p + 1)**2 entries of a dense symmetric Q, row major.
# The dense sums are compiled without fast-math, so they run in float64 over
# k ascending, exactly the reference's order.


@njit(**_jit_ordered)
def _dot_asc(Q, j, theta):
    """(Q @ theta)[j] for the row-major ``Q``: float64, k ascending."""
    m = theta.shape[0]
    s = 0.0
    for k in range(m):
        s += np.float64(Q[j * m + k]) * np.float64(theta[k])
    return s


@njit(**_jit_inline)
def _penalty_grad(l2w, theta, j):
    """Component j of the penalty's gradient in float64: ``l2w[j] * theta[j]``
    (diagonal, the product in the data dtype) or ``(Q @ theta)[j]`` (dense)."""
    if l2w.shape[0] == theta.shape[0]:
        return np.float64(l2w[j] * theta[j])
    return _dot_asc(l2w, j, theta)


@njit(**_jit)
def _finish_dense(acc, m, theta, l2w, grad):
    for j in range(grad.shape[0]):
        grad[j] = acc[j] / m + _penalty_grad(l2w, theta, j)


@njit(**_jit)
def _finish(acc, m, theta, l2w, fit_icpt, grad):
    """grad = acc / m + penalty gradient, intercept slot zero when not fitted."""
    if l2w.shape[0] == grad.shape[0]:
        _finish_diag(acc, m, theta, l2w, fit_icpt, grad)
        return
    _finish_dense(acc, m, theta, l2w, grad)  # out of line
    if not fit_icpt:
        grad[grad.shape[0] - 1] = 0


@njit(**_jit_inline)
def _finish_diag(acc, m, theta, l2w, fit_icpt, grad):
    """_finish for a diagonal ``l2w``: the loop it always was."""
    for j in range(grad.shape[0]):
        grad[j] = acc[j] / m + l2w[j] * theta[j]
    if not fit_icpt:
        grad[grad.shape[0] - 1] = 0


@njit(**_jit_ordered)
def _penalty_dense(theta, l2w):
    """0.5 * theta @ Q @ theta, each sum in float64 over its index ascending."""
    s = 0.0
    for j in range(theta.shape[0]):
        s += np.float64(theta[j]) * _dot_asc(l2w, j, theta)
    return 0.5 * s


@njit(**_jit_inline)
def _penalty(theta, l2w):
    """0.5 * sum(l2w*theta**2) (diagonal) or 0.5 * theta @ Q @ theta (dense)."""
    if l2w.shape[0] != theta.shape[0]:
        return _penalty_dense(theta, l2w)
    s = 0.0
    for j in range(theta.shape[0]):
        t = float(theta[j])
        s += float(l2w[j]) * (t * t)
    return 0.5 * s


# ---------------------------------------------------------------- fused objective/gradient


@njit(**_jit)
def _dot2(X, k, i1, theta, p):
    """The dot products of rows k and i1 of X with theta[:p], in the data dtype.

    Out of line (as Cython's row primitives), like ``_axpy2``: inlined into
    the pass over the rows, LLVM vectorizes these loops less well (measured
    on 1e6 x 100 float64, one thread: 39 ms inlined, 28 ms out of line).
    """
    dt = X.dtype.type
    d0 = d1 = dt(0.0)
    for j in range(p):
        d0 += X[k, j] * theta[j]
    for j in range(p):
        d1 += X[i1, j] * theta[j]
    return d0, d1


@njit(**_jit)
def _axpy2(part, X, k, i1, e0, e1, p):
    """part[:p] += e0 * X[k] + e1 * X[i1]: both rows in one sweep over ``part``."""
    for j in range(p):
        part[j] += e0 * X[k, j] + e1 * X[i1, j]


@njit(**_jit_inline)
def _prefetch_pair(base, k, rowb, n):
    """Prefetch rows k and k+1 of the C-contiguous array at address ``base``
    (``n`` rows of ``rowb`` bytes) into L2, when they exist."""
    if k + 2 <= n:
        a = base + k * rowb
        for off in range(0, 2 * rowb, 64):
            _prefetch_l2(a + off)


@njit(**_jit)
def _rows_linear(loss, X, y, theta, delta, lo, hi, want_grad, acc, part):
    """_rows for the linear model, the hot loop of a full pass.

    Rows go two at a time: the two dot products (``_dot2``), each row in
    address order (so the hardware prefetcher sees one stream), then, while
    both rows are in L1, one sweep over ``part`` (``_axpy2``) adds both
    gradient terms -- ``part`` is loaded and stored once per two rows.  The
    rows ``FULL_PREFETCH_BYTES`` ahead are prefetched into L2.
    Gradient terms are summed in the data dtype over ``_FLUSH`` rows at a
    time and those partial sums added
    to the float64 ``acc`` (float32 data then runs at float32 SIMD width;
    the reference sums whole 16384-row blocks in float32).  Indexing
    ``X[i, j]`` rather than row views keeps reference counting out of the
    loop.
    """
    p = theta.shape[0] - 1
    dt = X.dtype.type
    b = theta[p]
    for j in range(p):
        part[j] = 0.0
    f = 0.0
    s_icpt = 0.0
    c = 0
    rowb = X.shape[1] * X.itemsize
    ahead = max(2, FULL_PREFETCH_BYTES // max(1, rowb))
    base = _address(X)
    for k in range(lo, hi, 2):
        i1 = min(k + 1, hi - 1)  # an odd last row pairs with itself, weight 0
        _prefetch_pair(base, k + ahead, rowb, X.shape[0])
        d0, d1 = _dot2(X, k, i1, theta, p)
        r0 = (d0 + b) - y[k]
        r1 = (d1 + b) - y[i1]
        f += rho(loss, r0, delta)
        s0 = psi(loss, r0, delta)
        s1 = 0.0
        if i1 > k:
            f += rho(loss, r1, delta)
            s1 = psi(loss, r1, delta)
        if want_grad:
            _axpy2(part, X, k, i1, dt(s0), dt(s1), p)
            s_icpt += s0 + s1
            c += 2
            if c >= _FLUSH:
                for j in range(p):
                    acc[j] += part[j]
                    part[j] = 0.0
                c = 0
    if want_grad:
        for j in range(p):
            acc[j] += part[j]
        acc[p] += s_icpt
    return f


@njit(**_jit)
def _rows_linear_w(loss, X, y, theta, delta, lo, hi, want_grad, acc, part, w):
    """``_rows_linear`` with sample weights: each row's rho and psi times its
    weight (float64); the sweeps over the rows are the same.

    A copy, not a flag: the unweighted loops, inlined into the parallel pass,
    stay exactly the source they were.  LLVM's fast-math code for that pass
    (contractions, reassociation) follows any change to the source inlined
    into it, and the last bits of its sums with it.
    """
    p = theta.shape[0] - 1
    dt = X.dtype.type
    b = theta[p]
    for j in range(p):
        part[j] = 0.0
    f = 0.0
    s_icpt = 0.0
    c = 0
    rowb = X.shape[1] * X.itemsize
    ahead = max(2, FULL_PREFETCH_BYTES // max(1, rowb))
    base = _address(X)
    for k in range(lo, hi, 2):
        i1 = min(k + 1, hi - 1)  # an odd last row pairs with itself, weight 0
        _prefetch_pair(base, k + ahead, rowb, X.shape[0])
        d0, d1 = _dot2(X, k, i1, theta, p)
        r0 = (d0 + b) - y[k]
        r1 = (d1 + b) - y[i1]
        w0 = np.float64(w[k])
        f += rho(loss, r0, delta) * w0
        s0 = psi(loss, r0, delta) * w0
        s1 = 0.0
        if i1 > k:
            w1 = np.float64(w[i1])
            f += rho(loss, r1, delta) * w1
            s1 = psi(loss, r1, delta) * w1
        if want_grad:
            _axpy2(part, X, k, i1, dt(s0), dt(s1), p)
            s_icpt += s0 + s1
            c += 2
            if c >= _FLUSH:
                for j in range(p):
                    acc[j] += part[j]
                    part[j] = 0.0
                c = 0
    if want_grad:
        for j in range(p):
            acc[j] += part[j]
        acc[p] += s_icpt
    return f


@njit(**_jit)
def _rows(model, loss, X, y, theta, basis, delta, lo, hi, want_grad, acc, tmp):
    """Sum of rho over rows lo..hi-1; with ``want_grad`` also acc += sum psi dpred."""
    if model == 0:
        return _rows_linear(loss, X, y, theta, delta, lo, hi, want_grad, acc, tmp)
    f = 0.0
    if want_grad:
        for i in range(lo, hi):
            r = predict_row(model, X, i, theta, basis) - y[i]
            f += rho(loss, r, delta)
            _accumulate_row(model, X, i, psi(loss, r, delta), basis, acc)
    else:
        for i in range(lo, hi):
            r = predict_row(model, X, i, theta, basis) - y[i]
            f += rho(loss, r, delta)
    return f


@njit(**_jit)
def _rows_w(model, loss, X, y, theta, basis, delta, lo, hi, want_grad, acc, tmp, w):
    """``_rows`` with sample weights: sum of w rho over rows lo..hi-1; with
    ``want_grad`` also acc += sum w psi dpred."""
    if model == 0:
        return _rows_linear_w(loss, X, y, theta, delta, lo, hi, want_grad, acc, tmp, w)
    f = 0.0
    for i in range(lo, hi):
        r = predict_row(model, X, i, theta, basis) - y[i]
        wi = np.float64(w[i])
        f += rho(loss, r, delta) * wi
        if want_grad:
            _accumulate_row(model, X, i, psi(loss, r, delta) * wi, basis, acc)
    return f


@njit(**_jit)
def _block_rows(X):
    return max(1, BLOCK_ELEMS // max(1, X.shape[1]))


@njit(**_jit_entry)
def _n_blocks(X):
    rb = _block_rows(X)
    return (X.shape[0] + rb - 1) // rb


@njit(**_jit)
def _block(b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t):
    """Block b's sums of ``_rows`` into part_f[b] and part_g[b] (``part_t[b]``: scratch)."""
    rb = _block_rows(X)
    lo = b * rb
    hi = min(lo + rb, X.shape[0])
    p1 = theta.shape[0]
    acc = part_g[b, :p1]  # the rows of part_g and part_t are padded (``_padded``)
    for j in range(p1):
        acc[j] = 0.0
    part_f[b] = _rows(
        model, loss, X, y, theta, basis, delta, lo, hi, want_grad, acc, part_t[b, :p1]
    )


@njit(**_jit)
def _block_w(b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, w):
    """``_block`` with sample weights (``_rows_w``)."""
    rb = _block_rows(X)
    lo = b * rb
    hi = min(lo + rb, X.shape[0])
    p1 = theta.shape[0]
    acc = part_g[b, :p1]  # the rows of part_g and part_t are padded (``_padded``)
    for j in range(p1):
        acc[j] = 0.0
    part_f[b] = _rows_w(
        model, loss, X, y, theta, basis, delta, lo, hi, want_grad, acc, part_t[b, :p1], w
    )


@njit(**_jit_par)
def _blocks_parallel(model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t):
    for b in prange(part_f.shape[0]):
        _block(b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t)


@njit(**_jit_par)
def _blocks_parallel_w(
    model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, w
):
    for b in prange(part_f.shape[0]):
        _block_w(b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, w)


@njit(**_jit)
def _sweep(
    model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, acc, w, large
):
    """One pass over all rows; returns sum w rho, acc = sum w psi dpred (block order).

    ``large`` (a compile-time constant): 0 when ``X`` is too small for the
    parallel pass, which is then not compiled; 1: the pass is parallel when
    ``X`` is large enough.
    """
    par = False
    if large == 1:
        par = X.shape[0] * X.shape[1] >= PARALLEL_MIN and part_f.shape[0] > 1
        if par:
            if w is not None:
                _blocks_parallel_w(
                    model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, w
                )
            else:
                _blocks_parallel(
                    model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t
                )
    if not par:
        if w is not None:
            for b in range(part_f.shape[0]):
                _block_w(
                    b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t, w
                )
        else:
            for b in range(part_f.shape[0]):
                _block(b, model, loss, X, y, theta, basis, delta, want_grad, part_f, part_g, part_t)
    f = 0.0
    for j in range(acc.shape[0]):
        acc[j] = 0.0
    for b in range(part_f.shape[0]):
        f += part_f[b]
        if want_grad:
            for j in range(acc.shape[0]):
                acc[j] += part_g[b, j]
    return f


@njit(**_jit)
def _objective_grad(
    model,
    loss,
    X,
    y,
    theta,
    basis,
    delta,
    l2w,
    fit_icpt,
    grad,
    part_f,
    part_g,
    part_t,
    acc,
    w,
    large,
):
    n = X.shape[0]  # weighted too: the sums are divided by the row count
    f = _sweep(model, loss, X, y, theta, basis, delta, 1, part_f, part_g, part_t, acc, w, large)
    _finish(acc, n, theta, l2w, fit_icpt, grad)
    return f / n + _penalty(theta, l2w)


@njit(**_jit)
def _objective(model, loss, X, y, theta, basis, delta, l2w, part_f, part_g, part_t, acc, w, large):
    n = X.shape[0]
    f = _sweep(model, loss, X, y, theta, basis, delta, 0, part_f, part_g, part_t, acc, w, large)
    return f / n + _penalty(theta, l2w)


@njit(**_jit)
def _objective_of(
    model, loss, codes, X, y, theta, basis, delta, l2w, part_f, part_g, part_t, acc, w, large
):
    """``_objective`` for a kernel family (``model``, ``loss`` compile-time constants).

    The polynomial model's objective takes the codes as runtime values
    (``codes`` = [model, loss], an array): LLVM's code for its row loop, and
    so the last bit of the sum, then is that of a kernel compiled for every
    model and loss, as ``objective`` always gave.
    """
    if model == 1:
        return _objective(
            codes[0],
            codes[1],
            X,
            y,
            theta,
            basis,
            delta,
            l2w,
            part_f,
            part_g,
            part_t,
            acc,
            w,
            large,
        )
    return _objective(
        model, loss, X, y, theta, basis, delta, l2w, part_f, part_g, part_t, acc, w, large
    )


@njit(**_jit_entry)
def _padded(width, itemsize):
    """A row length of at least ``width`` items plus one spare cache line, so that the
    rows of a per-block buffer written by different threads never share a cache line."""
    per_line = max(1, 64 // itemsize)
    return ((width + per_line - 1) // per_line + 1) * per_line


@njit(**_jit)
def _buffers(X, theta):
    nb = _n_blocks(X)
    p1 = theta.shape[0]
    return (
        np.empty(nb),
        np.empty((nb, _padded(p1, 8))),
        np.empty((nb, _padded(p1, X.itemsize)), X.dtype),
        np.empty(p1),
    )


@njit(**_jit)
def _objective_grad_entry(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w, large):
    part_f, part_g, part_t, acc = _buffers(X, theta)
    return _objective_grad(
        model,
        loss,
        X,
        y,
        theta,
        _basis_dt(X, basis),
        delta,
        l2w,
        fit_icpt,
        grad,
        part_f,
        part_g,
        part_t,
        acc,
        w,
        large,
    )


@njit(**_jit)
def _objective_entry(model, loss, X, y, theta, basis, delta, l2w, w, large):
    part_f, part_g, part_t, acc = _buffers(X, theta)
    return _objective(
        model,
        loss,
        X,
        y,
        theta,
        _basis_dt(X, basis),
        delta,
        l2w,
        part_f,
        part_g,
        part_t,
        acc,
        w,
        large,
    )


@intrinsic
def _readonly(typingctx, arr):
    """The same array typed read-only, so it shares the kernels compiled for ``X``."""
    if not isinstance(arr, types.Array):
        return None
    ro = arr.copy(readonly=True)

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, sig.return_type, args[0])

    return ro(arr), codegen


@njit(**_jit)
def _batch_acc(model, loss, X, y, theta, basis, delta, idx, start, stop, acc, prefetch, w):
    """acc = sum over rows idx[start:stop] of w psi dpred (``w`` None: no weights);
    optionally prefetches rows ahead.  Returns the rows' summed losses
    ``w rho`` (float64), from the same residuals (the progressive loss of
    ``_run``)."""
    ls = 0.0
    for j in range(acc.shape[0]):
        acc[j] = 0.0
    if prefetch:
        _prefetch_rows(X, y, idx, start + PREFETCH_FAR, stop + PREFETCH_FAR, False)
        _prefetch_rows(X, y, idx, start + PREFETCH_NEAR, stop + PREFETCH_NEAR, True)
    if w is not None:
        wa, wsz = _weight_address(w)
        last = idx.shape[0] - 1
        for q in range(start, stop):
            i = idx[q]
            if prefetch:
                _prefetch_weight(
                    wa, wsz, idx[min(q + PREFETCH_FAR, last)], idx[min(q + PREFETCH_NEAR, last)]
                )
            r = predict_row(model, X, i, theta, basis) - y[i]
            ls += rho(loss, r, delta) * np.float64(w[i])
            _accumulate_row(model, X, i, psi(loss, r, delta) * np.float64(w[i]), basis, acc)
        return ls
    for q in range(start, stop):
        i = idx[q]
        r = predict_row(model, X, i, theta, basis) - y[i]
        ls += rho(loss, r, delta)
        _accumulate_row(model, X, i, psi(loss, r, delta), basis, acc)
    return ls


@njit(**_jit_inline)
def _prefetch_rows(X, y, idx, qlo, qhi, near):
    """Request the cache lines of rows idx[qlo:qhi] (clipped to the order).

    Stochastic batches visit rows in a random order known in advance: rows
    ``PREFETCH_FAR`` positions ahead are requested into L2 and again
    ``PREFETCH_NEAR`` ahead into L1 while the current ones compute, so the
    loop does not wait on memory latency.
    """
    rowbytes = X.shape[1] * X.itemsize
    base = _address(X)
    ybase = _address(y)
    for q in range(qlo, min(qhi, idx.shape[0])):
        row = idx[q]
        a = base + row * rowbytes
        end = a + rowbytes
        a -= a & 63
        if near:
            while a < end:
                _prefetch_l1(a)
                a += 64
            _prefetch_l1(ybase + row * y.itemsize)
        else:
            while a < end:
                _prefetch_l2(a)
                a += 64
            _prefetch_l2(ybase + row * y.itemsize)


def _weight_address(w):
    """(address, itemsize) of the weights as integers, for ``_prefetch_weight``;
    (0, 0) without weights."""


@overload(_weight_address)
def _weight_address_typed(w):
    if isinstance(w, types.NoneType):
        return lambda w: (0, 0)
    return lambda w: (_address(w), np.int64(w.itemsize))


@njit(**_jit_inline)
def _prefetch_weight(wa, wsz, far, near):
    """Request the weights of rows ``far`` (into L2) and ``near`` (into L1), the
    weights at address ``wa``, ``wsz`` bytes each (see ``_prefetch_rows``)."""
    _prefetch_l2(wa + far * wsz)
    _prefetch_l1(wa + near * wsz)


@njit(**_jit_entry)  # also the generic entry of batch_grad
def _batch_grad(model, loss, X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w):
    acc = np.empty(theta.shape[0])
    _batch_acc(model, loss, X, y, theta, _basis_dt(X, basis), delta, idx, start, stop, acc, True, w)
    _finish(acc, stop - start, theta, l2w, fit_icpt, grad)


# Least squares from sufficient statistics (MSE, full batch).  With the
# design rows a_i = [features, 1] (poly: [u**1, ..., u**p, 1]), G = A^T A,
# c = A^T y and S = y^T y, all in float64:
#   sum_i r_i a_i = G theta - c,   sum_i r_i**2 = S + theta . (G theta - 2 c).
# With sample weights, G = A^T W A, c = A^T W y, S = y^T W y (W = diag(w)) give
# sum_i w_i r_i a_i and sum_i w_i r_i**2 the same way.
# ``run`` gathers them in one pass and then every epoch costs O(p**2): the
# same objective and gradient as a pass over the rows, up to rounding.
# Polynomial: G[j, k] = M[pow_j + pow_k] from the moments M[m] = sum u**m
# (pow_j = j + 1 for the coefficients, 0 for the intercept), c[j] = sum y u**pow_j.
# Linear: the Gram matrix itself, used when the chunk has more epochs than
# parameters (building G costs about p passes).


@njit(**_jit_inline)
def _add_group(mom, at, stop, s0, s1, s2, s3):
    """mom[at + i] += s_i for the i < 4 with at + i < stop (a sweep's four sums)."""
    mom[at] += s0
    if at + 1 < stop:
        mom[at + 1] += s1
    if at + 2 < stop:
        mom[at + 2] += s2
    if at + 3 < stop:
        mom[at + 3] += s3


def _column(X):
    """The polynomial model's x (the one column of ``X``) as a 1-D array."""


@overload(_column)
def _column_typed(X):
    if X.layout == "C":  # a reshape: a contiguous array, whose loops vectorize
        return lambda X: X.reshape(X.shape[0] * X.shape[1])
    return lambda X: X[:, 0]


@njit(**_jit)
def _moment_rows(X, y, basis, lo, hi, mom, w):
    """mom += [M[0..2p], sum y u**(0..p), S] over rows lo..hi-1.

    Rows go in chunks of ``_CHUNK``: the chunk's u, y and running powers sit
    in small float64 buffers.  Each sweep over a chunk takes four consecutive
    powers, u**m .. u**(m+3), sums them (and y times them) in registers and
    leaves u**(m+4) in the buffer: two sweeps for a cubic (2p + 1 = 7 moments).
    The chunk is read through slices indexed from 0: an index ``c0 + k``
    would keep numba's negative-index wraparound in the loop, which then does
    not vectorize (1e7 points, one thread: 18-23 ms as one sweep per power
    over ``X[c0 + k, 0]``, 5.2-5.5 ms now).  ``X`` is the polynomial model's
    (n, 1) design.  Weighted (``w`` not None): the running powers start at
    w_i instead of 1 (w_i u**m, float64), so every moment is a weighted one;
    S sums y (w y).
    """
    p = (mom.shape[0] - 4) // 3
    q = 2 * p + 1
    sh = X.dtype.type(basis[0])
    sc = X.dtype.type(basis[1])
    x = _column(X)
    u = np.empty(_CHUNK)
    yy = np.empty(_CHUNK)
    pw = np.empty(_CHUNK)
    for c0 in range(lo, hi, _CHUNK):
        L = min(_CHUNK, hi - c0)
        xs = x[c0 : c0 + L]
        ys = y[c0 : c0 + L]
        sy2 = 0.0
        if w is not None:
            ws = w[c0 : c0 + L]
            for k in range(L):
                u[k] = float((xs[k] - sh) * sc)
                yy[k] = float(ys[k])
                pw[k] = np.float64(ws[k])
                sy2 += yy[k] * (pw[k] * yy[k])
        else:
            for k in range(L):
                # u as the reference forms it; powers in float64
                u[k] = float((xs[k] - sh) * sc)
                yy[k] = float(ys[k])
                pw[k] = 1.0
                sy2 += yy[k] * yy[k]
        mom[mom.shape[0] - 1] += sy2
        for m in range(0, q, 4):
            a0 = a1 = a2 = a3 = 0.0
            if m <= p:
                b0 = b1 = b2 = b3 = 0.0
                for k in range(L):
                    uk = u[k]
                    yk = yy[k]
                    v0 = pw[k]
                    v1 = v0 * uk
                    v2 = v1 * uk
                    v3 = v2 * uk
                    a0 += v0
                    a1 += v1
                    a2 += v2
                    a3 += v3
                    b0 += yk * v0
                    b1 += yk * v1
                    b2 += yk * v2
                    b3 += yk * v3
                    pw[k] = v3 * uk
                _add_group(mom, q + m, q + p + 1, b0, b1, b2, b3)
            else:
                for k in range(L):
                    uk = u[k]
                    v0 = pw[k]
                    v1 = v0 * uk
                    v2 = v1 * uk
                    v3 = v2 * uk
                    a0 += v0
                    a1 += v1
                    a2 += v2
                    a3 += v3
                    pw[k] = v3 * uk
            _add_group(mom, m, q, a0, a1, a2, a3)


@njit(**_jit)
def _gram_rows(X, y, lo, hi, st, wide, w):
    """st += [G (upper triangle, row major, (p+1)**2), c, S] over rows lo..hi-1.

    ``wide``: every product in float64 (``lsq_stats``, the reference's sums).
    Otherwise, for ``run``'s shortcut, float32 data multiply in float32 (numba's
    ``float()`` keeps a float32 a float32) at twice the SIMD width; float64
    data take the same path either way.  Weighted (``w`` not None): every
    product in float64 either way, row i's x_j w_i formed first (then times
    x_k and y_i), S summing y_i (y_i w_i).
    """
    p = X.shape[1]
    p1 = p + 1
    off_c = p1 * p1
    if w is not None:
        for i in range(lo, hi):
            wi = np.float64(w[i])
            yi = np.float64(y[i])
            yw = yi * wi
            for j in range(p):
                xw = np.float64(X[i, j]) * wi
                row = j * p1
                for k in range(j, p):
                    st[row + k] += xw * np.float64(X[i, k])
                st[row + p] += xw
                st[off_c + j] += yi * xw
            st[off_c - 1] += wi
            st[off_c + p] += yw
            st[off_c + p1] += yi * yw
        return
    if wide and X.itemsize < 8:
        for i in range(lo, hi):
            yi = np.float64(y[i])
            for j in range(p):
                xj = np.float64(X[i, j])
                row = j * p1
                for k in range(j, p):
                    st[row + k] += xj * np.float64(X[i, k])
                st[row + p] += xj
                st[off_c + j] += yi * xj
            st[off_c - 1] += 1.0
            st[off_c + p] += yi
            st[off_c + p1] += yi * yi
        return
    for i in range(lo, hi):
        yi = float(y[i])
        for j in range(p):
            xj = float(X[i, j])
            row = j * p1
            for k in range(j, p):
                st[row + k] += xj * float(X[i, k])
            st[row + p] += xj
            st[off_c + j] += yi * xj
        st[off_c - 1] += 1.0
        st[off_c + p] += yi
        st[off_c + p1] += yi * yi


@njit(**_jit)
def _stat_rows(model, X, y, basis, lo, hi, st, wide, w):
    if model == 1:
        _moment_rows(X, y, basis, lo, hi, st, w)
    else:
        _gram_rows(X, y, lo, hi, st, wide, w)


@njit(**_jit_par)
def _stats_parallel(model, X, y, basis, rb, part, size, wide, w):
    n = X.shape[0]
    for b in prange(part.shape[0]):
        lo = b * rb
        acc = part[b, :size]  # rows padded (``_padded``)
        acc[:] = 0.0
        _stat_rows(model, X, y, basis, lo, min(lo + rb, n), acc, wide, w)


@njit(**_jit)
def _lsq_stats(model, X, y, basis, p, wide, w, large):
    """G, c, S of the least-squares objective, one (parallel) pass over the rows
    (weighted by ``w`` unless it is None)."""
    n = X.shape[0]
    p1 = p + 1
    if model == 1:
        size = 3 * p + 4
        rb = _block_rows(X)
    else:
        size = p1 * p1 + p1 + 1
        rb = max(1, (n + 7) // 8)  # few blocks: each holds a whole G
    nb = (n + rb - 1) // rb
    part = np.empty((nb, _padded(size, 8)))
    par = False
    if large == 1:  # a compile-time constant (as in ``_sweep``)
        par = n * X.shape[1] >= PARALLEL_MIN and nb > 1
        if par:
            _stats_parallel(model, X, y, basis, rb, part, size, wide, w)
    if not par:
        for b in range(nb):
            part[b, :] = 0.0
            _stat_rows(model, X, y, basis, b * rb, min(b * rb + rb, n), part[b, :size], wide, w)
    st = np.zeros(size)
    for b in range(nb):
        for m in range(size):
            st[m] += part[b, m]
    G = np.empty((p1, p1))
    c = np.empty(p1)
    if model == 1:
        q = 2 * p + 1
        for j in range(p1):
            pj = j + 1 if j < p else 0
            c[j] = st[q + pj]
            for k in range(p1):
                pk = k + 1 if k < p else 0
                G[j, k] = st[pj + pk]
    else:
        for j in range(p1):
            c[j] = st[p1 * p1 + j]
            for k in range(j, p1):
                G[j, k] = st[j * p1 + k]
                G[k, j] = st[j * p1 + k]
    return G, c, st[size - 1]


@njit(**_jit)
def _lsq_stats_entry(model, X, y, basis, p, w, large):
    return _lsq_stats(model, X, y, _basis_dt(X, basis), p, True, w, large)


# The shortcut's overflow test with sample weights (as the Cython backend's).
# Without them no r_i**2 exceeds sum r**2 (see _objective_grad_lsq); with them
# the statistics give sum w r**2, which bounds r_i**2 only through w_i:
# r_i**2 <= sum w r**2 / w_i.  When every weight is >= WLIGHT that holds with
# wh = min(w).  Otherwise the rows >= WLIGHT take wh = WLIGHT, and the lighter
# rows (weight 0 too: the reference's 0 * inf is NaN, a divergence as well)
# are bounded through their largest |y| and |features|:
# |r_i| <= max|y| + |theta_p| + sum_j |theta_j| max|a_ij| (poly: a_ij = u**(j+1),
# with max|y| and max|u| over all rows).
WLIGHT = 0.0625


@njit(**_jit)
def _lsq_guard(model, X, y, w, basis, p):
    """guard = [min(1, wh), max|y| (-1: no light rows), max|a_ij| (j < p)] (float64),
    once per ``run``: one read of w, and only with light rows, of y and x (poly) or
    of the light rows (linear)."""
    guard = np.zeros(p + 2)
    guard[1] = -1.0
    wmin = math.inf
    for i in range(w.shape[0]):
        wmin = min(wmin, np.float64(w[i]))
    if wmin >= WLIGHT:
        guard[0] = min(wmin, 1.0)
        return guard
    guard[0] = WLIGHT
    if model == 1:
        ym = 0.0
        um = 0.0
        for i in range(X.shape[0]):
            ym = max(ym, abs(np.float64(y[i])))
            um = max(um, abs(np.float64(_u(X, i, basis))))
        guard[1] = ym
        guard[2] = um
        for j in range(1, p):
            guard[2 + j] = guard[1 + j] * um
        return guard
    for i in range(X.shape[0]):
        if np.float64(w[i]) >= WLIGHT:
            continue
        guard[1] = max(guard[1], abs(np.float64(y[i])))
        for j in range(p):
            guard[2 + j] = max(guard[2 + j], abs(np.float64(X[i, j])))
    return guard


def _weight_guard(model, X, y, basis, p, w, want):
    """``_lsq_guard`` of the weights when ``want`` (an empty array otherwise), or
    None without weights."""


def _guard_ok(guard, theta, sr2, big):
    """No r_i**2 can overflow: sr2 <= big wh and the light rows' bound squared
    <= big (``guard`` of ``_lsq_guard``); True without weights (None)."""


@overload(_weight_guard)
def _weight_guard_typed(model, X, y, basis, p, w, want):
    if isinstance(w, types.NoneType):
        return lambda model, X, y, basis, p, w, want: None

    def guard(model, X, y, basis, p, w, want):
        if want:
            return _lsq_guard(model, X, y, w, basis, p)
        return np.zeros(0)

    return guard


@overload(_guard_ok)
def _guard_ok_typed(guard, theta, sr2, big):
    if isinstance(guard, types.NoneType):
        return lambda guard, theta, sr2, big: True

    def ok(guard, theta, sr2, big):
        if not sr2 <= big * guard[0]:
            return False
        if guard[1] < 0:
            return True
        p = theta.shape[0] - 1
        rb = guard[1] + abs(np.float64(theta[p]))
        for j in range(p):
            rb += abs(np.float64(theta[j])) * guard[2 + j]
        return rb * rb <= big

    return ok


@njit(**_jit)
def _objective_grad_lsq(G, c, S, n, theta, l2w, fit_icpt, grad, acc, big, eps, strict, guard):
    """objective_grad for MSE over all rows, in O(p**2) from G, c, S.

    Returns NaN when the shortcut cannot stand for the pass over the rows:
    the sum of squares above ``big`` (where the reference's residuals or
    their squares may overflow in the data dtype: its divergence signal), or
    a gradient within rounding (relative ``eps``) of zero, where the exact
    zero the reference may compute decides convergence.  The caller then
    takes the pass over the rows.  ``strict`` (``_run``: a preconditioned
    run or a dense penalty, which reach that noise floor within a few
    epochs) also takes the pass when every fitted component of the whole
    gradient, penalty included, is within the rounding of G theta - c:
    there the reference settles on a fixed point (theta unchanged to the
    bit, the stopping rule's signal) that the shortcut's cancellation noise
    would keep moving.  ``strict`` -1 (those runs with ``tol > 0``, where a
    step at the noise floor stops the fit either way): neither fallback.
    A sum of squares below 1e-6 of the terms it is summed from (lost to
    cancellation) takes the pass as well.  ``guard``: None, or
    with sample weights (G, c, S weighted) the bounds of ``_lsq_guard``, which
    the overflow test then also checks.
    """
    p1 = theta.shape[0]
    sr2 = S
    terms = S  # the size of the terms sr2 is summed from
    tiny = True
    for j in range(p1):
        g = 0.0
        mag = abs(c[j])
        for k in range(p1):
            gk = G[j, k] * float(theta[k])
            g += gk
            mag += abs(gk)
        g -= c[j]  # g = sum_i r_i a_ij
        if abs(g) > eps * mag and (j < p1 - 1 or fit_icpt):
            tiny = False
        acc[j] = 2.0 * g
        sr2 += float(theta[j]) * (g - c[j])
        terms += abs(float(theta[j])) * (mag + abs(c[j]))
    sr2 = max(sr2, 0.0)  # a sum of squares; rounding must not make it negative
    if strict < 0:  # tol > 0: no fallback at the noise floor
        tiny = False
    # sum r**2 comes out of a cancellation between terms of size ``terms``
    # (S and theta^T G theta: large for data far from the origin, or for
    # large coefficients that cancel), so its rounding error is about eps64
    # * terms; below 1e-6 * terms the pass over the rows is taken, and the
    # loss keeps its precision (as the Cython backend).
    if tiny or not sr2 <= big or not _guard_ok(guard, theta, sr2, big) or sr2 < 1e-6 * terms:
        return math.nan
    _finish(acc, n, theta, l2w, fit_icpt, grad)
    if strict > 0:
        floor = True
        for j in range(p1):
            if j == p1 - 1 and not fit_icpt:
                continue
            mag = abs(c[j])
            for k in range(p1):
                mag += abs(G[j, k] * float(theta[k]))
            if abs(float(grad[j])) > eps * (2.0 * mag / n):
                floor = False
                break
        if floor:  # the whole gradient at the noise floor
            return math.nan
    return sr2 / n + _penalty(theta, l2w)


def _basis(basis: Any) -> np.ndarray:
    """``basis`` as a fresh C-contiguous float64 ``[shift, scale]``: a float ``s`` is ``[0, s]``.

    One array type for every call, so the kernels compile once per data dtype.
    """
    if np.ndim(basis) == 0:
        return np.array([0.0, float(basis)])
    b = np.array(basis, dtype=np.float64).reshape(-1)
    if b.shape[0] != 2:
        raise ValueError(f"basis must be a float or [shift, scale], got shape {np.shape(basis)}")
    return b


def _codes(model: int, loss: int) -> np.ndarray:
    """``[model, loss]`` as an int64 array: runtime values in compiled code (``_objective_of``)."""
    return np.array([int(model), int(loss)], dtype=np.int64)


def _large(X: np.ndarray) -> int:
    """1 when ``X`` is large enough for the parallel passes (their kernels are then
    compiled into its family), 0 otherwise."""
    if _large_override is not None:
        return _large_override
    return int(X.size >= PARALLEL_MIN)


def _ro(a: np.ndarray) -> np.ndarray:
    """A read-only view: one compiled version serves read-only and writeable data."""
    if not a.flags.writeable:
        return a
    v = a.view()
    v.flags.writeable = False
    return v


def _w(w: np.ndarray | None, X: np.ndarray) -> np.ndarray | None:
    """``w`` as the kernels take it: None, or a read-only C-contiguous (n,) array in
    the data dtype (one array type per data dtype, so weighted calls compile
    once more per dtype).  Raises ``ValueError`` for a shape other than (n,)."""
    if w is None:
        return None
    w = np.asarray(w)
    if w.shape != (X.shape[0],):
        raise ValueError(f"w must have shape ({X.shape[0]},), got {w.shape}")
    return _ro(np.ascontiguousarray(w, dtype=X.dtype))


class _Parallel:
    """The context of every call into compiled code that may run in parallel.

    fastgd's thread cap (:func:`fastgd._config.set_num_threads`); the lock
    when numba's threading layer is not thread safe; and, when ``size``
    (elements of the data) is large enough for the parallel kernels, dynamic
    scheduling: threads take ``SCHEDULE_CHUNK`` iterations of a ``prange``
    loop at a time instead of one equal share each, so a thread slowed down
    (by another process on its core) does not leave the others idle at the
    end of a pass.  Results do not depend on the scheduling: every iteration
    writes its own slot.
    """

    __slots__ = ("_size", "_lock", "_prev")

    def __init__(self, size: int):
        self._size = size

    def __enter__(self) -> None:
        k = 1 if _forked else _config.num_threads()
        if k is not None:
            numba.set_num_threads(min(k, numba.config.NUMBA_NUM_THREADS))
        self._lock = _config.parallel_lock()
        self._lock.__enter__()
        # numba's chunk size is per thread; set_parallel_chunksize returns the old one
        self._prev = (
            numba.set_parallel_chunksize(SCHEDULE_CHUNK) if self._size >= PARALLEL_MIN else None
        )

    def __exit__(self, *exc: object) -> None:
        if self._prev is not None:
            numba.set_parallel_chunksize(self._prev)
        self._lock.__exit__(*exc)


_pool: Any = None


def _over_blocks(
    fn: Callable[[int, int], Any], nb: int, par: Any, step: int = SCHEDULE_CHUNK
) -> None:
    """``fn(b0, b1)`` over blocks 0..nb-1: in one call, or, when ``par`` and more than
    one thread is allowed (under ``_Parallel``; never in a forked child), from that
    many threads, each taking ``step`` blocks at a time until none are left.

    For the statistics passes, which are called from Python: their block
    kernels are serial (``nogil``) and each block writes its own slot, so
    the result does not depend on the threads, and there is no parallel
    region (``prange``) to compile -- about a second of a cold start each.
    """
    global _pool
    k = min(numba.get_num_threads(), (nb + step - 1) // step) if par and not _forked else 1
    if k <= 1:
        fn(0, nb)
        return
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    with _family_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                thread_name_prefix="fastgd-numba",
            )
    starts = itertools.count(0, step)

    def work() -> None:
        while (b0 := next(starts)) < nb:
            fn(b0, min(b0 + step, nb))

    futures = [_pool.submit(work) for _ in range(k - 1)]
    try:
        work()
    finally:
        for f in futures:
            f.result()


def objective_grad(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: Any,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    grad: np.ndarray,
    w: np.ndarray | None = None,
) -> float:
    """Objective and gradient over all rows, one fused (parallel) pass.

    Parameters
    ----------
    w : ndarray of shape (n,) in the data dtype, or None
        Sample weights: row i's rho and psi are multiplied by ``w[i]``, the
        sums still divided by n (the caller normalises ``w`` to mean 1).
        None: unweighted.

    Returns
    -------
    float
        ``sum_i w_i rho(r_i) / n + penalty``; ``grad`` (the data dtype) gets
        ``sum_i w_i psi(r_i) dpred_i / n + penalty gradient``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0]); g = np.empty(2)
    >>> _numba.objective_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1, g)
    2.5
    >>> g.tolist()
    [-5.0, -3.0]
    >>> _numba.objective_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1, g,
    ...                       w=np.array([0.0, 2.0]))
    4.0
    >>> g.tolist()
    [-8.0, -4.0]
    """
    if _forked and X.size >= PARALLEL_MIN:
        return _numpy.objective_grad(
            model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w=w
        )
    args = (_ro(X), _ro(y), theta, _basis(basis), float(delta), l2w, int(fit_icpt), grad, _w(w, X))
    with _Parallel(X.size):
        return _call(("objective_grad", int(model), int(loss), _large(X)), args)


def objective(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: Any,
    delta: float,
    l2w: np.ndarray,
    w: np.ndarray | None = None,
) -> float:
    """Objective over all rows: ``sum_i w_i rho(r_i) / n + penalty`` (``w`` None: w_i = 1).

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0])
    >>> _numba.objective(0, 1, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2))
    1.0
    """
    if _forked and X.size >= PARALLEL_MIN:
        return _numpy.objective(model, loss, X, y, theta, basis, delta, l2w, w=w)
    args = (_ro(X), _ro(y), theta, _basis(basis), float(delta), l2w, _codes(model, loss), _w(w, X))
    with _Parallel(X.size):
        return _call(("objective", int(model), int(loss), _large(X)), args)


def batch_grad(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: Any,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    idx: np.ndarray,
    start: int,
    stop: int,
    grad: np.ndarray,
    w: np.ndarray | None = None,
) -> None:
    """Gradient over the rows ``idx[start:stop]`` (mean over them + penalty).

    With weights ``w`` (None: unweighted) each row's term is multiplied by
    ``w[idx[k]]``, the sum still divided by ``stop - start``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0]); g = np.empty(2)
    >>> _numba.batch_grad(0, 0, X, y, np.zeros(2), 1.0, 1.0, np.zeros(2), 1,
    ...                   np.array([1, 0], dtype=np.int32), 0, 1, g)
    >>> g.tolist()
    [-8.0, -4.0]
    """
    _call(
        ("batch_grad", int(model), int(loss)),
        (
            _ro(X),
            _ro(y),
            theta,
            _basis(basis),
            float(delta),
            l2w,
            int(fit_icpt),
            idx,
            int(start),
            int(stop),
            grad,
            _w(w, X),
        ),
    )


def lsq_stats(
    model: int, X: np.ndarray, y: np.ndarray, basis: Any, p: int, w: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``G = A^T W A``, ``c = A^T W y`` and ``S = y^T W y`` in float64, one (parallel) pass.

    ``A`` is the design in the kernel's coordinates, rows ``a_i = [features, 1]``
    (poly: ``[u**1, ..., u**p, 1]``, ``u`` as in ``predict_row``, its powers in
    float64); ``W = diag(w)``, the weights converted to float64 (None: the
    identity).  Sums, not means; ``G`` is the full symmetric (p+1, p+1) matrix.
    For the linear model ``p`` is ``X.shape[1]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> G, c, S = _numba.lsq_stats(0, np.array([[1.0], [2.0]]), np.array([1.0, 3.0]), 1.0, 1)
    >>> G.tolist(), c.tolist(), S
    ([[5.0, 3.0], [3.0, 2.0]], [7.0, 4.0], 10.0)
    >>> G, c, S = _numba.lsq_stats(0, np.array([[1.0], [2.0]]), np.array([1.0, 3.0]), 1.0, 1,
    ...                            w=np.array([3.0, 0.5]))
    >>> G.tolist(), c.tolist(), S
    ([[5.0, 4.0], [4.0, 3.5]], [6.0, 4.5], 7.5)
    """
    if model == 0 and int(p) != X.shape[1]:
        raise ValueError(f"the linear model's p is X.shape[1] = {X.shape[1]}, got {p}")
    if _forked and X.size >= PARALLEL_MIN:
        return _numpy.lsq_stats(model, X, y, basis, p, w=w)
    with _Parallel(X.size):
        G, c, S = _call(
            ("lsq_stats", int(model), _large(X)), (_ro(X), _ro(y), _basis(basis), int(p), _w(w, X))
        )
    return G, c, float(S)


# ---------------------------------------------------------------- update rules
# hp = [momentum, beta1, beta2, eps, rho]; state rows: 0 = v / s / m, 1 = Adam's v.
# Each slot is stored after every partial step, as the reference's in-place
# array operations do, so float32 state rounds where the reference rounds.


@njit(**_jit_entry, inline=_inline_unless_constant(0))
def update(opt, theta, grad, state, lr, hp, t):
    """One step of update rule ``opt`` on ``theta`` in place (torch's conventions).

    Each slot is stored after every partial step, as the reference's in-place
    array operations do, so float32 state rounds where the reference rounds.
    """
    k = theta.shape[0]
    if opt == 0:  # gd
        for j in range(k):
            theta[j] -= lr * grad[j]
    elif opt == 1:  # momentum (heavy ball, torch SGD with dampening 0)
        mu = hp[0]
        for j in range(k):
            state[0, j] = state[0, j] * mu
            state[0, j] = state[0, j] + grad[j]
            theta[j] -= lr * state[0, j]
    elif opt == 2:  # nesterov (torch's form)
        mu = hp[0]
        for j in range(k):
            state[0, j] = state[0, j] * mu
            state[0, j] = state[0, j] + grad[j]
            theta[j] -= lr * (grad[j] + mu * state[0, j])
    elif opt == 3:  # adagrad
        for j in range(k):
            state[0, j] = state[0, j] + grad[j] * grad[j]
            theta[j] -= lr * grad[j] / (math.sqrt(state[0, j]) + hp[3])
    elif opt == 4:  # rmsprop
        r = hp[4]
        for j in range(k):
            state[0, j] = state[0, j] * r
            state[0, j] = state[0, j] + (1.0 - r) * (grad[j] * grad[j])
            theta[j] -= lr * grad[j] / (math.sqrt(state[0, j]) + hp[3])
    else:  # adam, with bias correction of both moments
        b1 = hp[1]
        b2 = hp[2]
        bc1 = 1.0 - b1 ** float(t)
        bc2 = 1.0 - b2 ** float(t)
        for j in range(k):
            state[0, j] = state[0, j] * b1
            state[0, j] = state[0, j] + (1.0 - b1) * grad[j]
            state[1, j] = state[1, j] * b2
            state[1, j] = state[1, j] + (1.0 - b2) * (grad[j] * grad[j])
            theta[j] -= lr * (state[0, j] / bc1) / (math.sqrt(state[1, j] / bc2) + hp[3])


@njit(**_jit, inline=_inline_unless_constant(1))
def _sample_step(model, opt, X, i, s, basis, theta, l2w, fit_icpt, grad, state, lr, hp, t):
    """batch_grad + update for a batch of one row, without the float64 buffer.

    ``grad[j] = s dpred_i/dtheta_j / 1 + l2w[j] theta[j]``: the same numbers
    as ``_finish`` on a one-row ``acc`` (``s``: psi, times the row's weight
    when weighted).  Diagonal ``l2w`` and no preconditioner only
    (``_epoch_rows`` checks).
    """
    p = theta.shape[0] - 1
    if model == 0:
        for j in range(p):
            grad[j] = s * X[i, j] + l2w[j] * theta[j]
    else:
        u = _u(X, i, basis)
        pw = u
        for j in range(p):
            grad[j] = s * pw + l2w[j] * theta[j]
            pw = pw * u
    if fit_icpt:
        grad[p] = s + l2w[p] * theta[p]
    else:
        grad[p] = 0
    update(opt, theta, grad, state, lr, hp, t)


@njit(**_jit_inline)
def _prefetch_ahead(X, y, idx, q, prefetch):
    """Prefetch the rows ``PREFETCH_FAR`` and ``PREFETCH_NEAR`` positions after ``q``."""
    if prefetch:
        _prefetch_rows(X, y, idx, q + PREFETCH_FAR, q + PREFETCH_FAR + 1, False)
        _prefetch_rows(X, y, idx, q + PREFETCH_NEAR, q + PREFETCH_NEAR + 1, True)


@njit(**_jit)
def _sgd_gd_linear(loss, X, y, theta, delta, l2w, fit_icpt, idx, m, lr, t, d, prefetch, w):
    """Single-sample plain gd on the linear model, rows idx[0..m-1]; returns
    (t, d, the samples' summed losses w rho at their residuals, float64).

    The step of sample q and the dot product of sample q+1 share one sweep
    over the coordinates (the next prediction needs exactly the updated
    coefficients), so each sample costs two passes over its row instead of
    four.  ``d`` is row idx[0]'s dot product with the coefficients (NaN:
    compute it); the returned ``d`` is that of row idx[m] when ``idx`` has
    it, so a call continuing at that row takes exactly the steps of one call
    over both parts.  The gradient stays in registers (``grad`` is scratch
    for stochastic batches).  Diagonal ``l2w`` and no preconditioner only.
    Weighted (``w`` not None): the step's psi times the row's weight, the
    weights prefetched with the rows.
    """
    n = idx.shape[0]
    p = theta.shape[0] - 1
    dt = X.dtype.type
    ls = 0.0
    if m == 0:
        return t, d, ls
    i = idx[0]
    if math.isnan(d):
        d = dt(0.0)
        for j in range(p):
            d += X[i, j] * theta[j]
    wa, wsz = _weight_address(w)
    for q in range(m):
        _prefetch_ahead(X, y, idx, q, prefetch)
        r = (d + theta[p]) - y[i]
        s = psi(loss, r, delta)
        if w is not None:
            if prefetch:
                _prefetch_weight(
                    wa, wsz, idx[min(q + PREFETCH_FAR, n - 1)], idx[min(q + PREFETCH_NEAR, n - 1)]
                )
            s = s * np.float64(w[i])
            ls += rho(loss, r, delta) * np.float64(w[i])
        else:
            ls += rho(loss, r, delta)
        t += 1
        i_next = idx[q + 1] if q + 1 < n else i
        d = dt(0.0)
        for j in range(p):
            g = s * X[i, j] + l2w[j] * theta[j]
            theta[j] -= lr * g
            d += X[i_next, j] * theta[j]
        if fit_icpt:
            theta[p] -= lr * (s + l2w[p] * theta[p])
        i = i_next
    return t, d, ls


# Single-sample gd with the centre-and-scale preconditioner (pre kind 1,
# ``fit()``'s default for the linear model).  Its general path (one-row
# gradient, then ``step``) and the fused kernel below compute the same
# numbers in the same order: both are compiled without fast-math and both
# form the prediction with ``_dot_ordered``'s fixed partial sums (a
# reassociated dot product would sum in whatever order the vectorizer
# picks, which a fused sweep could not follow).


@njit(**_jit_ordered, inline="always")
def _dot_ordered(X, i, theta, p):
    """X[i, :p] @ theta[:p] in the data dtype with 8 fixed partial sums.

    Partial k sums the products j = k (mod 8) over the whole blocks of 8,
    in increasing j; the last p mod 8 products form a separate sum; the
    partials combine as a halving tree, then the tail: the same bits with
    any SIMD width.  Inlined into callers compiled without fast-math only.
    """
    dt = X.dtype.type
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = dt(0.0)
    j = 0
    while j + 8 <= p:
        a0 += X[i, j] * theta[j]
        a1 += X[i, j + 1] * theta[j + 1]
        a2 += X[i, j + 2] * theta[j + 2]
        a3 += X[i, j + 3] * theta[j + 3]
        a4 += X[i, j + 4] * theta[j + 4]
        a5 += X[i, j + 5] * theta[j + 5]
        a6 += X[i, j + 6] * theta[j + 6]
        a7 += X[i, j + 7] * theta[j + 7]
        j += 8
    tail = dt(0.0)
    while j < p:
        tail += X[i, j] * theta[j]
        j += 1
    return _tree8(a0, a1, a2, a3, a4, a5, a6, a7, tail, p)


@njit(**_jit_ordered, inline="always")
def _tree8(a0, a1, a2, a3, a4, a5, a6, a7, tail, p):
    """The partial sums of ``_dot_ordered`` combined (only the tail when p < 8)."""
    if p < 8:
        return tail
    return (((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))) + tail


@njit(**_jit_ordered)
def _sample_grad_linear(loss, X, y, i, theta, delta, l2w, fit_icpt, grad, w):
    """grad = the gradient of row i alone (``batch_grad`` over one row), linear model.

    The reference's rounding points: r = (x_i . coef + b) - y_i in the data
    dtype (``_dot_ordered``), s = psi(r) (times w_i when ``w`` is not None),
    grad_j = s x_ij + the penalty gradient (float64 sum, stored in the data
    dtype), grad_p = s + its penalty term or 0.  Diagonal or dense ``l2w``.
    Returns the row's loss rho(r) (times w_i), float64.
    """
    p = theta.shape[0] - 1
    r = (_dot_ordered(X, i, theta, p) + theta[p]) - y[i]
    s = psi(loss, r, delta)
    f = rho(loss, r, delta)
    if w is not None:
        s = s * np.float64(w[i])
        f = f * np.float64(w[i])
    for j in range(p):
        grad[j] = s * X[i, j] + _penalty_grad(l2w, theta, j)
    if fit_icpt:
        grad[p] = s + _penalty_grad(l2w, theta, p)
    else:
        grad[p] = 0
    return f


@njit(**_jit_ordered, inline="always")
def _pre_move(x, th, lw, a, b, s, gp, lr):
    """One coordinate of a preconditioned gd step from its values; returns
    (new theta_j, b_j d_j).

    g = s x_ij + l2w_j theta_j (float64, stored in the data dtype: the one-row
    gradient), g' = a_j g - b_j g_p (float64, stored: ``pre_grad``), the gd
    rule's move of a zero vector d = 0 - lr g' (float64, stored: ``update``),
    theta_j + a_j d (float64, stored: ``pre_apply``, which also sums b_j d).
    """
    dt = type(th)
    g = dt(s * x + np.float64(lw * th))
    g = dt(a * np.float64(g) - b * gp)
    d = dt(0.0 - lr * np.float64(g))
    return dt(np.float64(th) + a * np.float64(d)), b * np.float64(d)


@njit(**_jit_ordered)
def _sgd_gd_linear_pre(loss, X, y, theta, delta, l2w, fit_icpt, idx, m, lr, t, d, prefetch, pre, w):
    """``_sgd_gd_linear`` with the centre-and-scale preconditioner; returns (t, d,
    the samples' summed losses).

    Per sample, the general path's steps -- ``_sample_grad_linear``, then
    ``step`` (opt 0: ``pre_grad``, ``update`` of a zero vector,
    ``pre_apply``) -- with their numbers, the step fused with the next
    sample's prediction: one sweep over the row does every coordinate's
    elementwise work (``_pre_move``: the new theta_j and b_j d_j) and the
    next prediction's products x_{i+1, j} theta_j, keeping those two in the
    float64 ``E`` and data-dtype ``P`` (p values each, in L1); a second
    loop over them adds s2 = sum_j b_j d_j in j ascending (``pre_apply``'s
    sum) and the products into ``_dot_ordered``'s partial sums.  Then
    theta_p += d_p - s2.  ``d`` carries the prediction across calls as in
    ``_sgd_gd_linear``.

    Compiled without fast-math (the general path's rounding points, no
    contraction).  numba does not run LLVM's SLP vectorizer, so a single
    loop carrying s2 and the 8 partial sums would stay scalar (about 1.5x
    slower); split, the elementwise loop vectorizes.  The ordered sum s2, a
    chain of p dependent float64 adds per sample on the way to the next
    prediction, bounds the epoch.  Diagonal ``l2w`` and pre kind 1 only.
    Weighted (``w`` not None): s = psi w_i, as in ``_sample_grad_linear``.
    """
    n = idx.shape[0]
    p = theta.shape[0] - 1
    dt = X.dtype.type
    ls = 0.0
    if m == 0:
        return t, d, ls
    i = idx[0]
    if math.isnan(d):
        d = _dot_ordered(X, i, theta, p)
    A = pre[0]
    B = pre[1]
    E = np.empty(p)
    P = np.empty(p, X.dtype)
    wa, wsz = _weight_address(w)
    for q in range(m):
        _prefetch_ahead(X, y, idx, q, prefetch)
        r = (d + theta[p]) - y[i]
        s = psi(loss, r, delta)
        if w is not None:
            if prefetch:
                _prefetch_weight(
                    wa, wsz, idx[min(q + PREFETCH_FAR, n - 1)], idx[min(q + PREFETCH_NEAR, n - 1)]
                )
            s = s * np.float64(w[i])
            ls += rho(loss, r, delta) * np.float64(w[i])
        else:
            ls += rho(loss, r, delta)
        t += 1
        gp = dt(s + np.float64(l2w[p] * theta[p])) if fit_icpt else dt(0.0)
        gp64 = np.float64(gp)
        i_next = idx[q + 1] if q + 1 < n else i
        for j in range(p):
            tj, ej = _pre_move(X[i, j], theta[j], l2w[j], A[j], B[j], s, gp64, lr)
            theta[j] = tj
            E[j] = ej
            P[j] = X[i_next, j] * tj
        s2 = 0.0
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = dt(0.0)
        for jb in range(p // 8):
            j = 8 * jb
            s2 = (
                ((((((s2 + E[j]) + E[j + 1]) + E[j + 2]) + E[j + 3]) + E[j + 4]) + E[j + 5])
                + E[j + 6]
            ) + E[j + 7]
            a0 += P[j]
            a1 += P[j + 1]
            a2 += P[j + 2]
            a3 += P[j + 3]
            a4 += P[j + 4]
            a5 += P[j + 5]
            a6 += P[j + 6]
            a7 += P[j + 7]
        tail = dt(0.0)
        for j in range(p - p % 8, p):
            s2 += E[j]
            tail += P[j]
        d = _tree8(a0, a1, a2, a3, a4, a5, a6, a7, tail, p)
        dp = dt(0.0 - lr * gp64)
        theta[p] = dt(np.float64(theta[p]) + (np.float64(dp) - s2))
        i = i_next
    return t, d, ls


@njit(**_jit)
def _epoch_rows(
    model,
    loss,
    opt,
    X,
    y,
    idx,
    m,
    theta,
    basis,
    delta,
    l2w,
    fit_icpt,
    hp,
    state,
    lr,
    batch_size,
    grad,
    acc,
    t,
    d,
    prefetch,
    pre,
    gz,
    dz,
    fuse,
    pk,
    w,
    single,
):
    """The steps of a stochastic epoch over rows idx[0..m-1]; returns (t, d, ls).

    ``m`` is a multiple of ``batch_size`` or the end of the epoch.  ``d``
    carries the fused dot product of single-sample gd across calls (see
    ``_sgd_gd_linear``); NaN elsewhere.  ``prefetch``: request the rows
    ahead (off when ``X`` is a staged buffer, read in address order).
    Single-sample batches take the fused per-row steps (penalty inlined per
    coordinate) with a diagonal ``l2w`` and no preconditioner; plain gd on
    the linear model with the centre-and-scale preconditioner and a diagonal
    ``l2w`` takes ``_sgd_gd_linear_pre`` when ``fuse`` (False: its general
    path, same bits; see ``FUSED_PRE``).  Otherwise every batch goes through
    the batch gradient (one row, linear model: ``_sample_grad_linear``) and
    ``step`` (``gz``, ``dz``: its scratch).  ``w``: the weights of the rows
    of ``X`` (indexed as ``X`` is) or None; every path takes them.  ``single``
    (a compile-time constant): 1 when ``batch_size`` is 1, 0 when it is larger;
    each compiles only its own paths.  ``ls``: the rows' summed losses
    ``w rho(r)`` (float64), each residual the one its step took (every path
    sums them: the progressive loss of ``_run``).
    """
    # ``single``, ``pk`` (``pre_kind(pre)``), ``model`` and ``opt`` are
    # compile-time constants in a kernel family: each condition tests them
    # first, so that numba prunes the paths they rule out.
    diag = l2w.shape[0] == theta.shape[0]
    if single == 1 and pk == 0 and model == 0 and opt == 0:
        if batch_size == 1 and diag:
            return _sgd_gd_linear(
                loss, X, y, theta, delta, l2w, fit_icpt, idx, m, lr, t, d, prefetch, w
            )
    wa, wsz = _weight_address(w)
    last = idx.shape[0] - 1
    ls = 0.0
    if single == 1 and pk == 0:
        if batch_size == 1 and diag:
            for q in range(m):
                _prefetch_ahead(X, y, idx, q, prefetch)
                i = idx[q]
                r = predict_row(model, X, i, theta, basis) - y[i]
                t += 1
                s = psi(loss, r, delta)
                if w is not None:
                    if prefetch:
                        _prefetch_weight(
                            wa,
                            wsz,
                            idx[min(q + PREFETCH_FAR, last)],
                            idx[min(q + PREFETCH_NEAR, last)],
                        )
                    s = s * np.float64(w[i])
                    ls += rho(loss, r, delta) * np.float64(w[i])
                else:
                    ls += rho(loss, r, delta)
                _sample_step(
                    model, opt, X, i, s, basis, theta, l2w, fit_icpt, grad, state, lr, hp, t
                )
            return t, d, ls
    if single == 0 and pk == 0:
        if diag:  # diagonal penalty, the update rule itself: the loop as it always was
            for start in range(0, m, batch_size):
                stop = min(start + batch_size, m)
                ls += _batch_acc(
                    model, loss, X, y, theta, basis, delta, idx, start, stop, acc, prefetch, w
                )
                _finish_diag(acc, stop - start, theta, l2w, fit_icpt, grad)
                t += 1
                update(opt, theta, grad, state, lr, hp, t)
            return t, d, ls
    if single == 1 and model == 0:
        if batch_size == 1:
            if opt == 0 and pk == 1 and fuse and diag:
                return _sgd_gd_linear_pre(
                    loss, X, y, theta, delta, l2w, fit_icpt, idx, m, lr, t, d, prefetch, pre, w
                )
            for q in range(m):
                _prefetch_ahead(X, y, idx, q, prefetch)
                if w is not None and prefetch:
                    _prefetch_weight(
                        wa, wsz, idx[min(q + PREFETCH_FAR, last)], idx[min(q + PREFETCH_NEAR, last)]
                    )
                ls += _sample_grad_linear(loss, X, y, idx[q], theta, delta, l2w, fit_icpt, grad, w)
                t += 1
                step(opt, theta, grad, state, lr, hp, t, pre, gz, dz, pk)
            return t, d, ls
    if model == 1 or single == 0:  # (single samples on the linear model returned above)
        for start in range(0, m, batch_size):
            stop = min(start + batch_size, m)
            ls += _batch_acc(
                model, loss, X, y, theta, basis, delta, idx, start, stop, acc, prefetch, w
            )
            _finish(acc, stop - start, theta, l2w, fit_icpt, grad)
            t += 1
            step(opt, theta, grad, state, lr, hp, t, pre, gz, dz, pk)
    return t, d, ls


def _int64_slot(context, builder, arrty, arr, i):
    ary = context.make_array(arrty)(context, builder, value=arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [i])


def _is_int64_slot(arr: Any, i: Any) -> bool:
    return (
        isinstance(arr, types.Array)
        and arr.dtype == types.int64
        and arr.ndim == 1
        and isinstance(i, types.Integer)
    )


# ``arr[i]`` read and written as atomic int64s (acquire / release): the two
# staging threads of ``_staged_epoch`` publish their progress through them.


@intrinsic
def _load_acquire(typingctx, arr, i):
    if not _is_int64_slot(arr, i):
        return None

    def codegen(context, builder, sig, args):
        ptr = _int64_slot(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, i), codegen


@intrinsic
def _store_release(typingctx, arr, i, v):
    if not (_is_int64_slot(arr, i) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _int64_slot(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(
            context.cast(builder, args[2], sig.args[2], types.int64), ptr, "release", 8
        )
        return context.get_dummy_value()

    return types.void(arr, i, v), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _cpu_pause(typingctx):
    """The x86 ``pause`` instruction (a spin-wait hint); nothing elsewhere."""

    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
            )
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cpu_yield(typingctx):
    """``sched_yield()``: the processor to another thread, if one is waiting (POSIX;
    nothing elsewhere)."""

    def codegen(context, builder, sig, args):
        if os.name == "posix":
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield"
            )
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cpu_nap(typingctx):
    """``usleep(50)`` (POSIX; nothing elsewhere, where the wait keeps spinning)."""

    def codegen(context, builder, sig, args):
        if os.name == "posix":
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), [ir.IntType(32)]), "usleep"
            )
            builder.call(fn, [ir.Constant(ir.IntType(32), 50)])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(**_jit_inline)
def _spin_wait(spins):
    """One round of a wait; returns the rounds so far.  A pause at first (a wait
    within a chunk: a fraction of a millisecond), then a yield of the processor
    to other threads (a machine busy with other work), and after about a
    millisecond naps of 50 us (a wait between epochs, while the full pass of
    the objective wants both cores)."""
    if spins < 2000:
        _cpu_pause()
    elif spins < 3000:
        _cpu_yield()
    else:
        _cpu_nap()
        return spins
    return spins + 1


#: The progress marks of staged epochs (``_staged_epoch``, ``_stager``): int64,
#: each on its own cache line.  [0] positions below it are the staging thread's
#: (the front), [8] positions from it on the stepping thread's (the back); [16]
#: the chunk the stepping thread is on (the chunks of every epoch of the call,
#: numbered on; -1 before the first, ``STAGE_STOP``: no more); [24] the last
#: chunk the staging thread is done with (``STAGE_STOP``: it is gone).
_MARKS = 32
STAGE_STOP = 1 << 62


def _weight_chunk(ws, b):
    """The staged weights of buffer b, read-only, or None without weights."""


# Typed by the type of ``ws`` (see "Sample weights" above).


@overload(_weight_chunk)
def _weight_chunk_typed(ws, b):
    if isinstance(ws, types.NoneType):
        return lambda ws, b: None
    return lambda ws, b: _readonly(ws[b])


@njit(**_jit_inline)
def _stage_row(X, y, idx, q, lo, Xs, ys, ahead):
    """Xs[q - lo], ys[q - lo] = X[idx[q]], y[idx[q]]; prefetches position q + ahead."""
    if q + ahead >= 0:
        _prefetch_rows(X, y, idx, q + ahead, q + ahead + 1, False)
    i = idx[q]
    for j in range(X.shape[1]):
        Xs[q - lo, j] = X[i, j]
    ys[q - lo] = y[i]


@njit(**_jit)
def _stage(X, y, w, idx, lo, hi, Xs, ys, ws, b, marks, back):
    """Copy the rows of positions lo..hi-1 of ``idx`` into Xs, ys, ws[b] (row q to q - lo).

    Two threads share the work: one from the front (``back`` False), one
    from the back, each stopping where the other has got to.  No copy
    depends on another, so with rows ahead prefetched many reads are in
    flight at once.  ``marks[0]``: positions below it are taken by the front
    thread; ``marks[8]`` (another cache line): positions from it on by the
    back thread.  A thread publishes a position before or after copying it
    (either order is safe), checks the other's mark before each row, and
    copies every position it has published before it returns.  So every row
    is copied once both have returned; a row may be copied twice, with the
    same bytes.  The weights (``w`` not None) go with their rows into
    ``ws[b]``.
    """
    wa, wsz = _weight_address(w)
    if back:
        for q in range(hi - 1, lo - 1, -1):
            if q < _load_acquire(marks, 0):
                return
            _store_release(marks, 8, q)
            _stage_row(X, y, idx, q, lo, Xs, ys, -STAGE_PREFETCH)
            if w is not None:
                if q >= STAGE_PREFETCH:
                    _prefetch_l2(wa + idx[q - STAGE_PREFETCH] * wsz)
                ws[b, q - lo] = w[idx[q]]
    else:
        for q in range(lo, hi):
            if q >= _load_acquire(marks, 8):
                return
            _store_release(marks, 0, q + 1)
            _stage_row(X, y, idx, q, lo, Xs, ys, STAGE_PREFETCH)
            if w is not None:
                if q + STAGE_PREFETCH < idx.shape[0]:
                    _prefetch_l2(wa + idx[q + STAGE_PREFETCH] * wsz)
                ws[b, q - lo] = w[idx[q]]


@njit(**_jit)
def _staged_epoch(
    model,
    loss,
    opt,
    X,
    y,
    order,
    k,
    rows,
    staging,
    theta,
    basis,
    delta,
    l2w,
    fit_icpt,
    hp,
    state,
    lr,
    batch_size,
    grad,
    acc,
    t,
    pre,
    gz,
    dz,
    fuse,
    pk,
    w,
    single,
):
    """``_epoch_rows`` over all of ``order[k]``, the rows staged chunk by chunk;
    returns (t, the rows' summed losses: ``_epoch_rows``'s ``ls`` of every chunk).

    The stepping side of a staged epoch; the staging thread runs ``_stager``
    (started in Python for the whole call, see ``_Staging``).  The chunks of
    ``rows`` positions (a multiple of ``batch_size``) of every epoch of the
    call are numbered on, and chunk g is stepped from buffer ``g % 2`` of
    ``staging`` = (Xs, ys, ws, ident, marks), in address order (identity
    indices ``ident``).  Before stepping chunk g
    this thread sets the bounds of chunk g+1 (the next of this epoch, or the
    first of the next) and publishes g (``marks``, see ``_MARKS``): the
    staging thread then copies chunk g+1 into the other buffer from its
    front, while this one steps; this one then copies it from the back until
    the two meet (``_stage``) and waits until the other is done with it.
    Chunk 0 of the call it stages alone.  A buffer holds one row more than
    its chunk, the first of the next of the epoch, for the dot product that
    ``_sgd_gd_linear`` carries over.  The steps and their arithmetic are
    those of one ``_epoch_rows`` call over ``order[k]``, which reads the
    buffers in address order without prefetching (a constant: as an argument,
    the per-row test kept the stepping loop from running as fast, 40 -> 19 ns
    a row of 10 features); ``pre``, its scratch ``gz``, ``dz``, and ``fuse``
    are passed on.
    The weights ``w`` are staged with their rows into ``ws`` ((2, rows + 1);
    both None without weights).
    """
    Xs, ys, ws, ident, marks = staging
    n = order.shape[1]
    nch = (n + rows - 1) // rows
    total = order.shape[0] * nch
    idx = order[k]
    dcarry = X.dtype.type(math.nan)
    ls = 0.0
    for c in range(nch):
        g = k * nch + c
        lo = c * rows
        hi = min(lo + rows, n)
        b = g % 2
        # values, not constants, as ``_stage``'s arguments: one compilation
        if g == 0:  # the first chunk of the call: staged here, alone
            marks[8] = n
            _stage(X, y, w, idx, lo, min(rows + 1, n), Xs[b], ys[b], ws, b, marks, g != 0)
        more = g + 1 < total
        nidx = idx
        nlo = hi
        nhi = min(hi + rows + 1, n)
        if c + 1 == nch and more:
            nidx = order[k + 1]
            nlo = 0
            nhi = min(rows + 1, n)
        if more:
            marks[0] = nlo
            marks[8] = nhi
        _store_release(marks, 16, g)
        m = min(hi + 1, n) - lo
        t, dcarry, lc = _epoch_rows(
            model,
            loss,
            opt,
            _readonly(Xs[b]),
            _readonly(ys[b]),
            ident[:m],
            hi - lo,
            theta,
            basis,
            delta,
            l2w,
            fit_icpt,
            hp,
            state,
            lr,
            batch_size,
            grad,
            acc,
            t,
            dcarry,
            False,  # the buffers are read in address order: no prefetching
            pre,
            gz,
            dz,
            fuse,
            pk,
            _weight_chunk(ws, b),
            single,
        )
        ls += lc
        if more:
            _stage(X, y, w, nidx, nlo, nhi, Xs[1 - b], ys[1 - b], ws, 1 - b, marks, more)
            spins = 0
            while _load_acquire(marks, 24) < g + 1:
                spins = _spin_wait(spins)
    return t, ls


@njit(**_jit_entry)
def _stager(X, y, w, order, rows, Xs, ys, ws, marks):
    """The staging thread of a call's staged epochs (see ``_staged_epoch``).

    Chunk by chunk, from chunk 1 of the call: waits until the stepping
    thread is on the chunk before (``marks[16]``), copies this one into buffer
    ``g % 2`` from its front (``_stage``) and says so (``marks[24]``).
    Returns when every chunk is done, or at once when ``marks[16]`` is
    ``STAGE_STOP`` (the call ended early, or the thread is not wanted).
    """
    n = order.shape[1]
    nch = (n + rows - 1) // rows
    for g in range(1, order.shape[0] * nch):
        spins = 0
        s = _load_acquire(marks, 16)
        while s < g - 1:
            spins = _spin_wait(spins)
            s = _load_acquire(marks, 16)
        if s >= STAGE_STOP:
            return
        k = g // nch
        lo = (g - k * nch) * rows
        b = g % 2
        back = g < 0  # a value, not a constant (see ``_staged_epoch``)
        _stage(X, y, w, order[k], lo, min(lo + rows + 1, n), Xs[b], ys[b], ws, b, marks, back)
        _store_release(marks, 24, g)


# ---------------------------------------------------------------- preconditioned step
# The optimizer runs on internal parameters z with theta = T z (theta: the
# kernel's parameters, in which predictions and gradients are formed).  A
# step maps the gradient g' = T^T g, lets the update rule move a zero vector
# by delta (state slots live in internal coordinates), then theta += T delta.
# Only T acts on theta: z itself is never stored.  ``pre`` (float64, 2-D):
#   (0, p+1)          no preconditioning: the update rule acts on theta.
#   (2, p+1)          centre-and-scale (linear model), rows a and b:
#                       theta_j = a_j z_j (j < p),  theta_p = z_p - sum_j b_j z_j
#   (2(p+1), p+1)     dense: rows 0..p are T, rows p+1..2p+1 are T^-1.
# Every sum below runs in float64 over its index ascending (compiled without
# fast-math, so in exactly the reference's order).  Scratch: ``gz`` (p+1,)
# float64, ``dz`` (p+1,) in the data dtype, allocated once per ``run``.


@njit(**_jit_inline)
def pre_kind(pre):
    """0 none, 1 centre-and-scale, 2 dense."""
    if pre.shape[0] == 0:
        return 0
    return 1 if pre.shape[0] == 2 else 2


@njit(**_jit_ordered_entry)
def pre_grad(pre, grad, out):
    """out = T^T grad in float64."""
    m = grad.shape[0]
    p = m - 1
    if pre_kind(pre) == 1:
        gp = np.float64(grad[p])
        for j in range(p):
            out[j] = pre[0, j] * np.float64(grad[j]) - pre[1, j] * gp
        out[p] = gp
    else:
        for k in range(m):
            s = 0.0
            for j in range(m):
                s += pre[j, k] * np.float64(grad[j])
            out[k] = s


@njit(**_jit_ordered_entry)
def pre_apply(pre, theta, delta):
    """theta += T delta (float64 sums, stored in the data dtype)."""
    m = theta.shape[0]
    p = m - 1
    if pre_kind(pre) == 1:
        s = 0.0
        for j in range(p):
            d = np.float64(delta[j])
            theta[j] = np.float64(theta[j]) + pre[0, j] * d
            s += pre[1, j] * d
        theta[p] = np.float64(theta[p]) + (np.float64(delta[p]) - s)
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[j, k] * np.float64(delta[k])
            theta[j] = np.float64(theta[j]) + s


@njit(**_jit_ordered_entry)
def pre_internal(pre, theta, z):
    """z = T^-1 theta in float64 (``theta`` itself when there is no preconditioning)."""
    m = theta.shape[0]
    p = m - 1
    kind = pre_kind(pre)
    if kind == 0:
        for j in range(m):
            z[j] = np.float64(theta[j])
    elif kind == 1:
        s = 0.0
        for j in range(p):
            z[j] = np.float64(theta[j]) / pre[0, j]
            s += pre[1, j] * z[j]
        z[p] = np.float64(theta[p]) + s
    else:
        for j in range(m):
            s = 0.0
            for k in range(m):
                s += pre[m + j, k] * np.float64(theta[k])
            z[j] = s


@njit(**_jit_entry, inline=_inline_unless_constant(0))
def step(opt, theta, grad, state, lr, hp, t, pre, gz, dz, pk):
    """One step of update rule ``opt``, preconditioned by ``pre``; ``grad`` is scratch.

    Without preconditioning this is ``update`` itself (same code, same bits).
    ``pk``: ``pre_kind(pre)``, a compile-time constant in a kernel family.
    """
    if pk == 0:
        update(opt, theta, grad, state, lr, hp, t)
        return
    pre_grad(pre, grad, gz)
    for j in range(grad.shape[0]):
        grad[j] = gz[j]  # stored in the data dtype, as the state is
        dz[j] = 0
    update(opt, dz, grad, state, lr, hp, t)
    pre_apply(pre, theta, dz)


# ---------------------------------------------------------------- schedule


@njit(**_jit_inline)
def schedule(sched, lr0, sched_hp, epoch):
    """Learning rate of (0-based) ``epoch``.

    ``sched_hp = [power_t, gamma]`` or ``[power_t, gamma, offset]``: the
    schedule counts epochs from ``offset`` (a whole number; a fit continuing
    an earlier one passes the epochs already run), so epoch ``e`` takes
    ``lr0`` (constant), ``lr0 / (e + offset + 1)**power_t`` (invscaling) or
    ``lr0 * gamma**(e + offset)`` (exponential).
    """
    if sched == 0:
        return lr0
    e = epoch + (sched_hp[2] if sched_hp.shape[0] > 2 else 0.0)
    if sched == 1:
        return lr0 / (e + 1.0) ** sched_hp[0]
    return lr0 * sched_hp[1] ** e


# ---------------------------------------------------------------- epoch loop


@njit(**_jit_inline)
def _copy(dst, src):
    """dst[j] = src[j] for each j of 1-d arrays of one length.  (numba's
    ``dst[:] = src`` compiles the formatting of its shape error message into
    the kernel: about a second of a cold start.)"""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(**_jit_inline)
def _all_finite(theta):
    for j in range(theta.shape[0]):
        if not math.isfinite(theta[j]):
            return False
    return True


@njit(**_jit, inline=_inline_unless_constant(6))
def _converged(theta, theta_prev, tol, pre, z, zp, pk):
    """The stopping rule, in internal coordinates z = T^-1 theta:
    max|z - z_prev| <= tol * max(1, max|z|).  Without preconditioning the
    difference is taken in the data dtype.  ``z``, ``zp``: float64 scratch."""
    step_ = 0.0
    scale = 1.0
    if pk == 0:
        for j in range(theta.shape[0]):
            step_ = max(step_, float(abs(theta[j] - theta_prev[j])))
            scale = max(scale, float(abs(theta[j])))
        return step_ <= tol * scale
    pre_internal(pre, theta, z)
    pre_internal(pre, theta_prev, zp)
    for j in range(theta.shape[0]):
        step_ = max(step_, abs(z[j] - zp[j]))
        scale = max(scale, abs(z[j]))
    return step_ <= tol * scale


@njit(**_jit_entry)
def _run(
    model,
    loss,
    opt,
    kind,
    pk,
    large,
    X,
    y,
    theta,
    basis,
    delta,
    l2w,
    fit_icpt,
    hp,
    state,
    t0,
    sched,
    lr0,
    sched_hp,
    epoch0,
    n_epochs,
    batch_size,
    order,
    tol,
    need_obj,
    grad,
    f0,
    hist_loss,
    hist_params,
    pre,
    stats_G,
    stats_c,
    stats_S,
    have_stats,
    stage_rows,
    Xs,
    ys,
    ws,
    marks,
    fuse,
    codes,
    w,
):
    bs = _basis_dt(X, basis)  # (shift, scale) in the data dtype
    n = X.shape[0]
    p = theta.shape[0] - 1
    rec_loss = hist_loss.shape[0] > 0
    rec_params = hist_params.shape[0] > 0
    theta_prev = np.empty_like(theta)
    # scratch of the preconditioned step and of the stopping rule
    gz = np.empty(p + 1)
    dz = np.empty_like(theta)
    z = np.empty(p + 1)
    zp = np.empty(p + 1)
    part_f, part_g, part_t, acc = _buffers(X, theta)
    # staging (_staged_epoch): the caller's buffers of two chunks, identity indices
    staged = stage_rows > 0
    prefetch = not staged  # staged rows are read in address order
    ident = np.empty(stage_rows + 1, order.dtype)
    for q in range(ident.shape[0]):
        ident[q] = q
    t = t0
    # Full-batch least squares: one pass for G, c, S (none when the caller has
    # them: ``stats``), then every epoch is O(p**2).  Weighted: the weighted
    # statistics (the caller's ``stats`` are too).  The linear model's own Gram
    # pass only for a rule that is not adaptive (as the Cython backend):
    # adaptive rules (opt >= 3) scale each coordinate's gradient to a step of
    # about lr whatever its size, so a coordinate at its optimum steps by the
    # sign of rounding noise, and the Gram matrix's noise is not the row
    # pass's: the path would depend on how many epochs one call runs (a fit
    # continued epoch by epoch must equal one fit).
    # ``kind``, ``model``, ``loss`` and ``opt`` are compile-time constants (see
    # ``_family``): each branch on them below is pruned before typing, so a
    # family compiles only its own paths.
    use_lsq = False
    G, c, S = np.empty((0, 0)), np.empty(0), 0.0
    if kind == 0:
        if loss == 0:
            use_lsq = model == 1 or have_stats or (n_epochs > p + 1 and opt < 3)
            if use_lsq:
                if have_stats:
                    G, c, S = stats_G, stats_c, stats_S
                else:
                    G, c, S = _lsq_stats(model, X, y, bs, p, False, w, large)
    # weighted statistics bound each residual only through its weight
    guard = _weight_guard(model, X, y, bs, p, w, use_lsq)
    if X.itemsize == 4:
        big, eps = 0.5 * 3.4028234663852886e38, 64.0 * 1.1920928955078125e-07
    else:
        big, eps = 0.25 * 1.7976931348623157e308, 64.0 * 2.220446049250313e-16
    # The shortcut's stricter fallback (see _objective_grad_lsq) for a
    # preconditioner or a dense penalty only (without them: the path as it
    # always was, same bits), and only where an exact zero step decides
    # convergence (tol == 0): with tol > 0 a step at the noise floor stops the
    # fit either way, and a preconditioned fit reaches that floor within a few
    # epochs, so neither fallback is taken there (-1).
    strict = 1 if pk != 0 or l2w.shape[0] != theta.shape[0] else 0
    if strict and tol > 0.0:
        strict = -1

    # stochastic epochs without ``need_obj`` return their progressive loss
    # (see ``_numpy.run``) and ignore ``f0``
    progressive = kind != 0 and not need_obj
    prog = math.nan
    ls = 0.0
    if not math.isnan(f0) and not progressive:
        f = f0
    elif kind == 0:
        f = math.nan
        if loss == 0:
            if use_lsq:
                f = _objective_grad_lsq(
                    G, c, S, n, theta, l2w, fit_icpt, grad, acc, big, eps, strict, guard
                )
        if math.isnan(f):
            f = _objective_grad(
                model,
                loss,
                X,
                y,
                theta,
                bs,
                delta,
                l2w,
                fit_icpt,
                grad,
                part_f,
                part_g,
                part_t,
                acc,
                w,
                large,
            )
    elif need_obj:
        f = _objective_of(
            model, loss, codes, X, y, theta, bs, delta, l2w, part_f, part_g, part_t, acc, w, large
        )
    else:
        f = 0.0
    if not math.isfinite(f):
        return 0, 2, t, f
    if rec_loss:
        hist_loss[epoch0] = f
    if rec_params:
        _copy(hist_params[epoch0], theta)

    n_done = 0
    status = 0
    for k in range(n_epochs):
        e = epoch0 + k
        lr = schedule(sched, lr0, sched_hp, e)
        for j in range(p + 1):
            theta_prev[j] = theta[j]
        if kind == 0:
            t += 1
            step(opt, theta, grad, state, lr, hp, t, pre, gz, dz, pk)
            f = math.nan
            if loss == 0:
                if use_lsq:
                    f = _objective_grad_lsq(
                        G, c, S, n, theta, l2w, fit_icpt, grad, acc, big, eps, strict, guard
                    )
            if math.isnan(f):
                f = _objective_grad(
                    model,
                    loss,
                    X,
                    y,
                    theta,
                    bs,
                    delta,
                    l2w,
                    fit_icpt,
                    grad,
                    part_f,
                    part_g,
                    part_t,
                    acc,
                    w,
                    large,
                )
        else:
            idx = order[k]
            if kind == 1:
                t, _, ls = _epoch_rows(
                    model,
                    loss,
                    opt,
                    X,
                    y,
                    idx,
                    n,
                    theta,
                    bs,
                    delta,
                    l2w,
                    fit_icpt,
                    hp,
                    state,
                    lr,
                    batch_size,
                    grad,
                    acc,
                    t,
                    X.dtype.type(math.nan),
                    prefetch,
                    pre,
                    gz,
                    dz,
                    fuse,
                    pk,
                    w,
                    1,
                )
            elif kind == 3:
                t, _, ls = _epoch_rows(
                    model,
                    loss,
                    opt,
                    X,
                    y,
                    idx,
                    n,
                    theta,
                    bs,
                    delta,
                    l2w,
                    fit_icpt,
                    hp,
                    state,
                    lr,
                    batch_size,
                    grad,
                    acc,
                    t,
                    X.dtype.type(math.nan),
                    prefetch,
                    pre,
                    gz,
                    dz,
                    fuse,
                    pk,
                    w,
                    0,
                )
            elif kind == 2:
                t, ls = _staged_epoch(
                    model,
                    loss,
                    opt,
                    X,
                    y,
                    order,
                    k,
                    stage_rows,
                    (Xs, ys, ws, ident, marks),
                    theta,
                    bs,
                    delta,
                    l2w,
                    fit_icpt,
                    hp,
                    state,
                    lr,
                    batch_size,
                    grad,
                    acc,
                    t,
                    pre,
                    gz,
                    dz,
                    fuse,
                    pk,
                    w,
                    1,
                )
            else:
                t, ls = _staged_epoch(
                    model,
                    loss,
                    opt,
                    X,
                    y,
                    order,
                    k,
                    stage_rows,
                    (Xs, ys, ws, ident, marks),
                    theta,
                    bs,
                    delta,
                    l2w,
                    fit_icpt,
                    hp,
                    state,
                    lr,
                    batch_size,
                    grad,
                    acc,
                    t,
                    pre,
                    gz,
                    dz,
                    fuse,
                    pk,
                    w,
                    0,
                )
            if need_obj:
                f = _objective_of(
                    model,
                    loss,
                    codes,
                    X,
                    y,
                    theta,
                    bs,
                    delta,
                    l2w,
                    part_f,
                    part_g,
                    part_t,
                    acc,
                    w,
                    large,
                )
        if not (_all_finite(theta) and math.isfinite(f)):
            _copy(theta, theta_prev)
            status = 2
            break
        n_done += 1
        if progressive:
            prog = ls / n
        if rec_loss:
            hist_loss[e + 1] = f
        if rec_params:
            _copy(hist_params[e + 1], theta)
        if _converged(theta, theta_prev, tol, pre, z, zp, pk):
            status = 1
            break
    if progressive:
        return n_done, status, t, prog
    return n_done, status, t, f


def run(
    model: int,
    loss: int,
    X: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    basis: Any,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    opt: int,
    hp: np.ndarray,
    state: np.ndarray,
    t0: int,
    sched: int,
    lr0: float,
    sched_hp: np.ndarray,
    epoch0: int,
    n_epochs: int,
    batch_size: int,
    order: np.ndarray,
    tol: float,
    need_obj: int,
    grad: np.ndarray,
    f0: float,
    hist_loss: np.ndarray,
    hist_params: np.ndarray,
    pre: np.ndarray | None = None,
    stats: tuple | None = None,
    w: np.ndarray | None = None,
) -> tuple[int, int, int, float]:
    """Run epochs ``epoch0 .. epoch0+n_epochs-1``; returns ``(n_done, status, t, f)``.

    Exactly the reference's ``run`` (``fastgd.backends._numpy.run``), the
    whole loop in compiled code.

    Parameters
    ----------
    sched_hp : ndarray of float64, shape (2,) or (3,)
        ``[power_t, gamma]`` or ``[power_t, gamma, offset]``: epoch ``e``
        takes the learning rate of epoch ``e + offset`` (see ``schedule``).
    pre : ndarray of float64 or None
        The preconditioner (None or ``(0, p+1)``: none; ``(2, p+1)``
        centre-and-scale; ``(2(p+1), p+1)`` dense), see the "preconditioned
        step" section.
    stats : tuple or None
        ``lsq_stats(model, X, y, basis, p, w=w)`` of these arrays, already
        computed; full-batch MSE then takes the least-squares shortcut with
        them instead of its own pass over the rows.
    w : ndarray of shape (n,) in the data dtype, or None
        Sample weights, in every pass (full batch, mini-batches, single
        samples, the objective, the least-squares shortcut); sums are still
        divided by the number of rows.  None: unweighted.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd.backends import _numba
    >>> X = np.array([[1.0], [2.0]]); y = np.array([2.0, 4.0])
    >>> theta = np.zeros(2); grad = np.zeros(2); state = np.zeros((2, 2))
    >>> hp = np.array([0.9, 0.9, 0.999, 1e-8, 0.99]); shp = np.array([0.25, 0.99])
    >>> done, status, t, f = _numba.run(
    ...     0, 0, X, y, theta, 1.0, 1.0, np.zeros(2), 0, 0, hp, state, 0, 0, 0.1, shp,
    ...     0, 500, 0, np.empty((0, 0), dtype=np.int32), 1e-12, 1, grad, float("nan"),
    ...     np.empty(0), np.empty((0, 2)))
    >>> status, round(float(theta[0]), 6)
    (1, 2.0)
    """
    if _forked and X.size >= PARALLEL_MIN:
        return _numpy.run(
            model,
            loss,
            X,
            y,
            theta,
            basis,
            delta,
            l2w,
            fit_icpt,
            opt,
            hp,
            state,
            t0,
            sched,
            lr0,
            sched_hp,
            epoch0,
            n_epochs,
            batch_size,
            order,
            tol,
            need_obj,
            grad,
            f0,
            hist_loss,
            hist_params,
            pre=pre,
            stats=stats,
            w=w,
        )
    m = theta.shape[0]
    pre = _pre(pre, m)
    have_stats = stats is not None and int(batch_size) == 0 and int(loss) == 0
    if have_stats:
        G0 = np.array(stats[0], dtype=np.float64, order="C")
        c0 = np.array(stats[1], dtype=np.float64, order="C")
        S0 = float(stats[2])
        if G0.shape != (m, m) or c0.shape != (m,):
            raise ValueError(f"stats must be (G ({m}, {m}), c ({m},), S)")
    else:
        G0, c0, S0 = np.empty((0, 0)), np.empty(0), 0.0
    w = _w(w, X)
    with _Parallel(X.size):
        stage_rows = _stage_rows(X, int(batch_size))
        staging = _Staging(_ro(X), _ro(y), w, order, stage_rows)
        bsz = int(batch_size)
        kind = 0 if bsz == 0 else (1 if bsz == 1 else 3) + int(stage_rows > 0)
        args = (
            _ro(X),
            _ro(y),
            theta,
            _basis(basis),
            float(delta),
            l2w,
            int(fit_icpt),
            hp,
            state,
            int(t0),
            int(sched),
            float(lr0),
            sched_hp,
            int(epoch0),
            int(n_epochs),
            int(batch_size),
            order,
            float(tol),
            int(need_obj),
            grad,
            float(f0),
            hist_loss,
            hist_params,
            pre,
            G0,
            c0,
            S0,
            have_stats,
            stage_rows,
            staging.Xs,
            staging.ys,
            staging.ws,
            staging.marks,
            bool(FUSED_PRE),
            _codes(model, loss),
            w,
        )
        pk = pre_kind.py_func(pre)  # the family's code (plain Python: nothing to compile)
        with staging:
            return _call(
                ("run", int(model), int(loss), int(opt), kind, pk, _large(X)),
                args,
                staging.start if stage_rows else None,
            )


def _pre(pre: np.ndarray | None, m: int) -> np.ndarray:
    """``pre`` as a C-contiguous writeable float64 2-D array (one compiled type); None: (0, m)."""
    if pre is None:
        return np.empty((0, m))
    pre = np.asarray(pre)
    if pre.ndim != 2 or pre.shape[0] not in (0, 2, 2 * m) or (pre.shape[0] and pre.shape[1] != m):
        raise ValueError(
            f"pre must have shape (0, {m}), (2, {m}) or ({2 * m}, {m}), got {pre.shape}"
        )
    if pre.dtype != np.float64 or not pre.flags.c_contiguous or not pre.flags.writeable:
        pre = np.array(pre, dtype=np.float64, order="C")
    return pre


def _aligned_empty(shape: tuple, dtype: Any, align: int = 64) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on an ``align``-byte boundary (numpy's large
    blocks start 16 bytes into a page: the vector loads of every staged row of 800
    bytes would straddle 32-byte boundaries -- a staged epoch on P 93 -> 107 ms
    with the stepping thread alone)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start : start + nbytes].view(dt).reshape(shape)


class _Staging:
    """The buffers and the staging thread of a call's staged epochs (``_stager``).

    ``rows`` 0: no staging (buffers of one row, never read; no thread).
    Otherwise, as a context around the call: ``start`` (``_call`` calls it
    once the call's family is compiled) compiles or loads the staging kernel
    and runs it on a thread of its own, with the GIL released; on the way
    out, however the call ended, it is told to stop and joined.  Should the thread fail, the stepping
    thread copies every row itself (``marks[24]`` says the staging thread
    is gone), so the call never waits for it.
    """

    __slots__ = ("Xs", "ys", "ws", "marks", "_args", "_thread")

    def __init__(
        self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None, order: np.ndarray, rows: int
    ):
        self.Xs = _aligned_empty((2, rows + 1, X.shape[1]), X.dtype)
        self.ys = _aligned_empty((2, rows + 1), y.dtype)
        self.ws = None if w is None else _aligned_empty((2, rows + 1), w.dtype)
        self.marks = np.zeros(_MARKS, np.int64)
        self.marks[16] = -1
        self.marks[24] = -1
        self._args = (X, y, w, order, rows, self.Xs, self.ys, self.ws, self.marks) if rows else ()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Staging:
        return self

    def start(self) -> None:
        """Start the staging thread (once the call's kernels are compiled: it would
        spin beside the compilation)."""
        if self._args and self._thread is None:
            self.marks[16] = STAGE_STOP
            _stager(*self._args)  # compiled in this thread; returns at once
            self.marks[16] = -1
            self._thread = threading.Thread(target=self._work, name="fastgd-stage", daemon=True)
            try:
                self._thread.start()
            except RuntimeError:  # no thread to be had: the stepping thread copies alone
                self._thread = None
                self.marks[24] = STAGE_STOP

    def _work(self) -> None:
        try:
            _stager(*self._args)
        finally:
            self.marks[24] = STAGE_STOP

    def __exit__(self, *exc: object) -> None:
        self.marks[16] = STAGE_STOP
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _stage_rows(X: np.ndarray, batch_size: int) -> int:
    """Rows per staged chunk of a stochastic epoch (``_staged_epoch``); 0: no staging.

    Staging needs a second thread (call under ``_Parallel``, which sets the
    thread count), an ``X`` of at least ``STAGE_MIN_BYTES`` and batches that
    fit a chunk.  A chunk holds whole batches, at most ``STAGE_BYTES`` and
    1/64 of ``X`` (the two buffers stay within 1/32 of ``X``).
    """
    if _stage_override is not None and batch_size >= 1:
        return _stage_override * batch_size
    if batch_size < 1 or X.nbytes < STAGE_MIN_BYTES or numba.get_num_threads() < 2:
        return 0
    per_chunk = min(STAGE_BYTES, X.nbytes // 64) // (X.shape[1] * X.itemsize * batch_size)
    return per_chunk * batch_size


# ---------------------------------------------------------------- kernel families
# The model, loss, update rule and batching of a call are compile-time
# constants of its kernels: each public function calls a small entry made
# for its codes (a closure over them, ``_family``), which passes them on as
# literals, so numba prunes every branch on them before typing -- ``run``'s
# entry is the epoch loop itself, made from ``_run``'s source with the codes
# as closure constants (``_specialise``).  A job then
# compiles only its own family -- e.g. full-batch linear MSE gd, or
# mini-batch polynomial Huber Adam -- not every combination, and each
# family is cached on disk (``cache=True``; the closure's codes are part of
# the cache key).  The first call of a family in a process that is not in
# the cache says so on stderr, once per family and dtype.

#: ``run``'s batching (``kind``): full batch; single samples, their rows staged or
#: not; mini-batches, their rows staged or not (see ``_staged_epoch``).
_KINDS = ("full-batch", "single-sample", "single-sample staged", "mini-batch", "mini-batch staged")
_MODEL_NAMES = ("linear", "poly")
_LOSS_NAMES = ("mse", "huber")
_OPT_NAMES = ("gd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
#: ``run``'s preconditioner (``pre_kind``): none, centre-and-scale, dense.
_PRE_NAMES = ("", "centre-and-scale", "dense-preconditioned")

#: Rows per staged chunk, in batches, for every stochastic ``run`` (None: by size;
#: ``compile_kernels`` sets it to compile the staged families on small data).
_stage_override: int | None = None
#: ``_large`` for every call (None: by size; set by ``compile_kernels``).
_large_override: int | None = None


def _specialise(func: Any, name: str, **consts: int) -> Any:
    """A copy of the compiled function ``func`` with its arguments ``consts`` fixed.

    Made from ``func``'s source: the same body, without those arguments,
    which become variables of an enclosing function (constants to numba,
    as the literal arguments ``_LiteralArgs`` turns into constants).  Unlike
    a small entry that calls ``func`` with the constants, the copy is one
    compiled function, not two: numba optimises and emits the machine code
    of everything a function calls again for each function that calls it,
    so a layer around the epoch loop costs about a second of a cold start.
    Compiled with ``_jit_entry``; the values of ``consts`` are part of
    numba's cache key (closure variables), the source file and line are
    ``func``'s.
    """
    import ast
    import inspect
    import textwrap

    lines, first = inspect.getsourcelines(func.py_func)
    tree = ast.parse(textwrap.dedent("".join(lines)))
    fn = tree.body[0]
    fn.decorator_list = []
    fn.name = name
    fn.args.args = [a for a in fn.args.args if a.arg not in consts]
    factory = ast.FunctionDef(
        name="_factory",
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(arg=c) for c in consts],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        ),
        body=[fn, ast.Return(ast.Name(id=name, ctx=ast.Load()))],
        decorator_list=[],
        type_params=[],
    )
    module = ast.Module(body=[factory], type_ignores=[])
    ast.increment_lineno(tree, first - 1)
    ast.copy_location(factory, fn)
    ast.fix_missing_locations(module)
    ns: dict[str, Any] = {}
    exec(compile(module, inspect.getfile(func.py_func), "exec"), func.py_func.__globals__, ns)
    out = ns["_factory"](**consts)
    out.__qualname__ = f"{func.py_func.__name__}.<{name}>"
    out.__module__ = func.py_func.__module__
    return njit(**_jit_entry)(out)


def _make_run(model: int, loss: int, opt: int, kind: int, pk: int, large: int) -> Any:
    return _specialise(
        _run, "run_family", model=model, loss=loss, opt=opt, kind=kind, pk=pk, large=large
    )


def _make_objective_grad(model: int, loss: int, large: int) -> Any:
    def objective_grad_family(X, y, theta, basis, delta, l2w, fit_icpt, grad, w):
        return _objective_grad_entry(
            model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w, large
        )

    return njit(**_jit_entry)(objective_grad_family)


def _make_objective(model: int, loss: int, large: int) -> Any:
    if model == 1:  # the codes as runtime values (see ``_objective_of``)

        def objective_family(X, y, theta, basis, delta, l2w, codes, w):
            return _objective_entry(codes[0], codes[1], X, y, theta, basis, delta, l2w, w, large)
    else:

        def objective_family(X, y, theta, basis, delta, l2w, codes, w):
            return _objective_entry(model, loss, X, y, theta, basis, delta, l2w, w, large)

    return njit(**_jit_entry)(objective_family)


def _make_batch_grad(model: int, loss: int) -> Any:
    def batch_grad_family(X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w):
        _batch_grad(
            model, loss, X, y, theta, basis, delta, l2w, fit_icpt, idx, start, stop, grad, w
        )

    return njit(**_jit_entry)(batch_grad_family)


def _make_lsq_stats(model: int, large: int) -> Any:
    def lsq_stats_family(X, y, basis, p, w):
        return _lsq_stats_entry(model, X, y, basis, p, w, large)

    return njit(**_jit_entry)(lsq_stats_family)


# The same entries with the codes as their first arguments (``GENERIC``).


def _objective_grad_any(model, loss, large, X, y, theta, basis, delta, l2w, fit_icpt, grad, w):
    return _objective_grad_entry(
        model, loss, X, y, theta, basis, delta, l2w, fit_icpt, grad, w, large
    )


def _objective_any(model, loss, large, X, y, theta, basis, delta, l2w, codes, w):
    return _objective_entry(model, loss, X, y, theta, basis, delta, l2w, w, large)


def _lsq_stats_any(model, large, X, y, basis, p, w):
    return _lsq_stats_entry(model, X, y, basis, p, w, large)


_GENERIC_ENTRIES = {
    "run": _run,
    "objective_grad": _objective_grad_any,
    "objective": _objective_any,
    "batch_grad": None,
    "lsq_stats": _lsq_stats_any,
}


_MAKERS: dict[str, Callable[..., Any]] = {
    "run": _make_run,
    "objective_grad": _make_objective_grad,
    "objective": _make_objective,
    "batch_grad": _make_batch_grad,
    "lsq_stats": _make_lsq_stats,
}
#: ``FASTGD_NUMBA_KERNELS``: "family" compiles a family per job (the codes as
#: constants: seconds per job); "generic" one entry per function for every
#: family (the codes as arguments: one longer compilation per dtype, what
#: ``compile_kernels`` fills the cache with); unset: the generic entry when the
#: cache (or this process) already holds it for the call's types, else the
#: family -- a new installation waits seconds, a prepared one not at all.
KERNELS: str = os.environ.get("FASTGD_NUMBA_KERNELS", "").lower()
GENERIC: bool = KERNELS == "generic"
_families: dict[tuple, Any] = {}
#: (family, dtype, weighted) whose cache state this process has checked.
_checked: set[tuple] = set()
#: (function, dtype, weighted) -> whether the generic entry serves it here.
_generic_ready: dict[tuple, bool] = {}
_family_lock = threading.Lock()


def _family_name(key: tuple) -> str:
    """``("run", 0, 0, 5, 3, 1, 1)`` -> ``"linear mse adam mini-batch centre-and-scale, parallel"``."""
    kind, codes = key[0], key[1:]
    if not codes:
        return f"{kind}, every family"
    words = [_MODEL_NAMES[codes[0]] if codes[0] < 2 else f"model {codes[0]}"]
    if kind != "lsq_stats":
        words.append(_LOSS_NAMES[codes[1]] if codes[1] < 2 else f"loss {codes[1]}")
    if kind == "run":
        words.append(_OPT_NAMES[codes[2]] if codes[2] < 6 else f"rule {codes[2]}")
        words.append(_KINDS[codes[3]])
        if codes[4]:
            words.append(_PRE_NAMES[codes[4]] if codes[4] < 3 else f"preconditioner {codes[4]}")
    else:
        words.append(kind)
    if kind != "batch_grad" and codes[-1]:
        words[-1] += ", parallel"
    return " ".join(words)


def _family(key: tuple, generic: bool = False) -> Any:
    """The compiled entry of ``key`` = (function, *codes), made at its first use;
    ``generic``: the entry of ``key[0]`` that takes the codes as arguments."""
    if generic:
        key = (key[0],)
    disp = _families.get(key)
    if disp is None:
        with _family_lock:
            disp = _families.get(key)
            if disp is None:
                if generic:
                    py = _GENERIC_ENTRIES[key[0]]
                    disp = (
                        _batch_grad
                        if py is None
                        else py
                        if hasattr(py, "py_func")
                        else njit(**_jit_entry)(py)
                    )
                else:
                    disp = _MAKERS[key[0]](*key[1:])
                _families[key] = disp
    return disp


def _is_cached(disp: Any, args: tuple, unknown: bool = True) -> bool:
    """Whether ``disp`` has a version for ``args`` in this process or in numba's disk
    cache (``unknown`` when numba's internals do not say)."""
    try:
        sig = tuple(disp.typeof_pyval(a) for a in args)
        if sig in disp.overloads:
            return True
        cache = disp._cache
        if isinstance(cache, NullCache):  # numba cannot cache it: compiled in every process
            return False
        key = cache._index_key(sig, disp.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - numba internals changed
        return unknown


def _use_generic(key: tuple, args: tuple) -> bool:
    """Whether this call takes the generic entry (see ``KERNELS``)."""
    what = (key[0], args[0].dtype.name, args[-1] is not None)
    return prefer_generic(what, lambda: (_family(key, True), key[1:] + args))


def prefer_generic(what: tuple, generic: Callable[[], tuple[Any, tuple]]) -> bool:
    """Whether calls of ``what`` = (function, dtype name, weighted) take the generic
    entry: with ``FASTGD_NUMBA_KERNELS=generic`` or inside ``compile_kernels()``,
    never with ``=family``, else when ``fastgd compile`` left it in the cache
    (``generic()``: that entry and its arguments; asked once per process)."""
    if GENERIC:
        return True
    if KERNELS == "family":
        return False
    ready = _generic_ready.get(what)
    if ready is None:
        disp, args = generic()
        ready = _generic_ready[what] = _is_cached(disp, args, unknown=False)
    return ready


def _call(key: tuple, args: tuple, ready: Callable[[], None] | None = None) -> Any:
    """Call family ``key``'s entry on ``args``, announcing a compilation the first time
    in this process that the family, for this dtype, is not in the cache.
    ``ready``: called once the entry is compiled, just before the call."""
    generic = _use_generic(key, args)
    disp = _family(key, generic)
    check = (key[:1] if generic else key, args[0].dtype.name, args[-1] is not None)
    if generic:
        args = key[1:] + args
    if check not in _checked:
        _checked.add(check)
        if not _is_cached(disp, args):
            name = _family_name(check[0]) + (", weighted" if check[2] else "")
            sys.stderr.write(
                f"fastgd: compiling numba kernels ({name}) for {check[1]} "
                f"(one-time, cached)\u2026\n"
            )
            sys.stderr.flush()
    if ready is not None:
        disp.compile(tuple(disp.typeof_pyval(a) for a in args))  # (at once when it is)
        ready()
    return disp(*args)


def compile_kernels(
    dtypes: Any = ("float64", "float32"), families: Any = None, weighted: bool = True
) -> dict[str, float]:
    """Compile the kernels ahead of time (into numba's on-disk cache).

    For continuous integration and container images: after this, fits in
    any process that shares the cache (``NUMBA_CACHE_DIR``, by default next
    to the package) start without compiling.  By default the generic entries
    are compiled -- one per function and dtype, serving every family (see
    ``KERNELS``) -- by running each batching once on a tiny problem, in both
    its versions: for data too small for the parallel passes and for larger
    data (the staged batchings exist only there).

    Parameters
    ----------
    dtypes : iterable of {"float64", "float32"}
    families : iterable of str, optional
        Compile these per-job families instead (what a process without the
        generic entries compiles at its first call of a job): those whose
        name contains one of these strings, e.g. ``["linear mse adam"]`` or
        ``["full-batch"]`` (names as in the returned keys); ``["all"]``: every
        family (hours).
    weighted : bool
        Also compile the versions that take sample weights.

    Returns
    -------
    dict
        ``"<family> <dtype>"`` -> seconds spent (little when it was cached already).
    """
    global GENERIC
    generic = families is None
    wanted = None if generic or list(families) == ["all"] else [str(f) for f in families]
    out: dict[str, float] = {}
    was_generic = GENERIC
    GENERIC = generic
    try:
        _compile_jobs(dtypes, wanted, weighted, generic, out)
    finally:
        GENERIC = was_generic
        _generic_ready.clear()  # what serves each call may have changed
    return out


def _compile_jobs(
    dtypes: Any, wanted: list[str] | None, weighted: bool, generic: bool, out: dict[str, float]
) -> None:
    """``compile_kernels``' calls: every family's, run once each."""
    import time

    from .. import api

    global _large_override
    for dt in map(np.dtype, dtypes):
        if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtypes: float64 or float32, got {dt}")
        rng = np.random.default_rng(0)
        X = rng.normal(size=(64, 3)).astype(dt)
        x = rng.uniform(-1.0, 1.0, 64).astype(dt)
        y = rng.normal(size=64).astype(dt)
        wts = rng.uniform(0.5, 1.5, 64)
        jobs: list[tuple[tuple, int, Callable[[Any], Any]]] = []
        for model in (0, 1):
            A = x if model else X
            A2 = A.reshape(-1, 1) if model else A
            theta = np.zeros(3 if model else A2.shape[1] + 1, dt)
            basis = np.array([0.0, 1.0])
            l2w = np.zeros(theta.shape[0], dt)
            for loss in (0, 1):
                for opt in range(len(_OPT_NAMES)):
                    for kind in range(len(_KINDS)):

                        def fit(
                            w: Any,
                            pk: int,
                            kind: int = kind,
                            loss: int = loss,
                            opt: int = opt,
                            A: Any = A,
                            model: int = model,
                            y: Any = y,
                        ) -> None:
                            global _stage_override
                            batch = (None, 1, 1, 4, 4)[kind]
                            _stage_override = 1 if kind in (2, 4) else None
                            try:
                                api.fit(
                                    A,
                                    y,
                                    backend="numba",
                                    loss=_LOSS_NAMES[loss],
                                    optimizer=_OPT_NAMES[opt],
                                    batch_size=batch,
                                    max_iter=2,
                                    lr=1e-3,
                                    record=None if batch else "loss",
                                    sample_weight=w,
                                    precondition="none" if pk == 0 else "auto",
                                    **({"degree": 2} if model else {}),
                                )
                            finally:
                                _stage_override = None

                        for large in (1,) if kind in (2, 4) else (0, 1):
                            # the preconditioner a fit of this model takes: none or
                            # its own (centre-and-scale, or the polynomial's dense one)
                            for pk in (0, 2 if model else 1):
                                jobs.append(
                                    (
                                        ("run", model, loss, opt, kind, pk, large),
                                        large,
                                        lambda w, fit=fit, pk=pk: fit(w, pk),
                                    )
                                )
                for large in (0, 1):
                    jobs.append(
                        (
                            ("objective_grad", model, loss, large),
                            large,
                            lambda w, model=model, loss=loss, A2=A2, theta=theta, l2w=l2w, y=y, basis=basis: (
                                objective_grad(
                                    model,
                                    loss,
                                    A2,
                                    y,
                                    theta,
                                    basis,
                                    1.0,
                                    l2w,
                                    1,
                                    np.empty_like(theta),
                                    w=w,
                                )
                            ),
                        )
                    )
                    jobs.append(
                        (
                            ("objective", model, loss, large),
                            large,
                            lambda w, model=model, loss=loss, A2=A2, theta=theta, l2w=l2w, y=y, basis=basis: (
                                objective(model, loss, A2, y, theta, basis, 1.0, l2w, w=w)
                            ),
                        )
                    )
                jobs.append(
                    (
                        ("batch_grad", model, loss),
                        0,
                        lambda w, model=model, loss=loss, A2=A2, theta=theta, l2w=l2w, y=y, basis=basis: (
                            batch_grad(
                                model,
                                loss,
                                A2,
                                y,
                                theta,
                                basis,
                                1.0,
                                l2w,
                                1,
                                np.arange(A2.shape[0], dtype=np.int32),
                                0,
                                8,
                                np.empty_like(theta),
                                w=w,
                            )
                        ),
                    )
                )
            for large in (0, 1):
                jobs.append(
                    (
                        ("lsq_stats", model, large),
                        large,
                        lambda w, model=model, A2=A2, theta=theta, y=y, basis=basis: lsq_stats(
                            model, A2, y, basis, theta.shape[0] - 1, w=w
                        ),
                    )
                )
        names = {}
        # the statistics kernels (``_numba_stats``): the same kernels for every size
        # (large inputs split their blocks between threads in Python)
        for full in (False, True):
            key = ("moments", int(full))
            names[key] = f"moments ({'full' if full else 'diagonal'})"
            jobs.append(
                (
                    key,
                    0,
                    lambda w, full=full, X=X, y=y: moments(
                        X, y, np.zeros(X.shape[1]), 0.0, full, w
                    ),
                )
            )
        key = ("max_row_norm2",)
        names[key] = "max_row_norm2"
        jobs.append(
            (
                key,
                0,
                lambda w, X=X: max_row_norm2(0, X, 1.0, np.empty((0, X.shape[1] + 1)), True, w),
            )
        )
        for key, large, job in jobs:
            if key in names:
                name = f"{names[key]} {dt.name}"
            else:
                name = f"{_family_name(key[:1] if generic else key)} {dt.name}"
            if wanted is not None and not any(f in name for f in wanted):
                continue
            t0 = time.perf_counter()
            _large_override = large
            try:
                for w in (None, wts.astype(dt)) if weighted else (None,):
                    job(w)
            finally:
                _large_override = None
            out[name] = out.get(name, 0.0) + time.perf_counter() - t0


# ---------------------------------------------------------------- minimize loop


@njit(nogil=True, fastmath=_FM)  # specialised per user function: not cacheable
def _minimize_run(
    fun, grad, x, opt, hp, state, sched, lr0, sched_hp, max_iter, tol, hist_f, hist_x
):
    x_prev = np.empty_like(x)
    g = np.empty_like(x)
    no_pre = np.empty((0, 0))
    z = np.empty(0)
    f = float(fun(x))
    if not math.isfinite(f):
        return 0, 2, f
    if hist_f.shape[0] > 0:
        hist_f[0] = f
    if hist_x.shape[0] > 0:
        _copy(hist_x[0], x)
    n_done = 0
    status = 0
    for k in range(max_iter):
        lr = schedule(sched, lr0, sched_hp, k)
        gv = grad(x)
        for j in range(x.shape[0]):
            g[j] = gv[j]
        _copy(x_prev, x)
        update(opt, x, g, state, lr, hp, k + 1)
        f_new = float(fun(x)) if _all_finite(x) else math.nan
        if not math.isfinite(f_new):
            _copy(x, x_prev)
            status = 2
            break
        f = f_new
        n_done += 1
        if hist_f.shape[0] > 0:
            hist_f[k + 1] = f
        if hist_x.shape[0] > 0:
            _copy(hist_x[k + 1], x)
        if _converged(x, x_prev, tol, no_pre, z, z, 0):
            status = 1
            break
    return n_done, status, f


def _is_jitted(f: Any) -> bool:
    return isinstance(f, numba.core.registry.CPUDispatcher)


def minimize_run(
    fun: Callable,
    grad: Callable,
    x: np.ndarray,
    opt: int,
    hp: np.ndarray,
    state: np.ndarray,
    sched: int,
    lr0: float,
    sched_hp: np.ndarray,
    max_iter: int,
    tol: float,
    hist_f: np.ndarray,
    hist_x: np.ndarray,
) -> tuple[int, int, float]:
    """Minimize ``fun`` from ``x`` (in place); returns ``(n_done, status, f)``.

    When ``fun`` and ``grad`` are numba-jitted functions the whole loop is
    compiled (once per pair of functions); otherwise, or when numba cannot
    compile the loop for them, this is the reference's Python loop.
    ``sched_hp`` may carry the schedule's epoch offset (see ``schedule``).
    """
    if _is_jitted(fun) and _is_jitted(grad):
        try:
            return _minimize_run(
                fun,
                grad,
                x,
                int(opt),
                hp,
                state,
                int(sched),
                float(lr0),
                sched_hp,
                int(max_iter),
                float(tol),
                hist_f,
                hist_x,
            )
        except numba.core.errors.TypingError:
            pass  # e.g. grad returns a list: run the Python loop instead
    return _numpy.minimize_run(
        fun, grad, x, opt, hp, state, sched, lr0, sched_hp, max_iter, tol, hist_f, hist_x
    )


from ._numba_stats import max_row_norm2, moments  # noqa: E402
