"""dask arrays as a data source: the kernel interface run chunk by chunk on a dask scheduler.

Design
------
A dask array is another place the data of a :class:`~fastgd._problem.Problem`
live, not another API.  :func:`chunked_data` validates it from its metadata
(shapes, dtypes, chunks: nothing is computed) and :class:`ChunkedKernels`
then offers the same functions as a backend module (``fastgd.backends``'s
kernel interface), each one a map over the row chunks on the workers that
runs the compiled kernel of the chosen backend on every chunk and combines
the chunks' float64 partial results on the client in chunk order:

* ``objective_grad`` / ``objective``: per-chunk sums, then the reference's
  ``_finish`` and penalty: the full-batch epoch is one map, the update runs on
  the client, and only parameters and gradients travel;
* ``moments``, ``lsq_stats``, ``max_row_norm2``, ``value_range``: the
  statistics of the preconditioner and ``lr="auto"``, one map each;
* ``run``: the reference's epoch loop (``fastgd.backends._numpy.run``) with
  these passes, so that the optimizer, the stopping rule, history and
  divergence are exactly those of an in-memory fit;
* ``stochastic_epoch``: SGD and mini-batches chunk to chunk -- one task per
  chunk, in a random chunk order drawn from the fit's seed, the chunk's rows
  shuffled with a seed drawn alongside, and the compiled epoch of the chunk
  run there; parameters, optimizer slots and the step counter travel from
  chunk to chunk (:func:`draw_orders` draws both orders).

NaN/inf: a chunk whose result is not finite scans itself in the same task
and reports its first bad value with the global row index; ``scan`` raises
the first one (X before y, as in memory), so nothing is computed twice to
find it.  Data that fit in the cluster's memory are persisted on the
workers for the fit; larger data are read chunk by chunk from their source
(a file, zarr) in every pass.

dask is imported only here, and only when a dask array reaches fastgd.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from . import _validation as val
from .backends import _numpy as ref, resolve

#: Fraction of the workers' memory (or, without a cluster, of this
#: machine's available memory) that data may take and still be persisted.
PERSIST_FRACTION = 0.5


def is_dask_array(a: Any) -> bool:
    """Whether ``a`` is a dask array (without importing dask when it is not loaded)."""
    mod = sys.modules.get("dask.array")
    return mod is not None and isinstance(a, mod.Array)


def _import_dask() -> tuple[Any, Any]:
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - a dask array implies dask
        raise ImportError("dask arrays need dask: pip install 'fastgd[dask]'") from exc
    return dask, da


# ---------------------------------------------------------------- validation


def _dtype_of(name: str, a: Any) -> np.dtype:
    dt = np.dtype(a.dtype)
    if dt.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {dt}")
    return dt


def _known_chunks(name: str, a: Any) -> None:
    if any(math.isnan(c) for c in a.chunks[0]) or any(math.isnan(s) for s in a.shape):
        raise ValueError(
            f"{name} has chunks of unknown size: call {name}.compute_chunk_sizes() "
            "first (e.g. after boolean indexing)"
        )


def chunked_data(
    X: Any, y: Any, degree: int | None, sample_weight: Any
) -> tuple[Any, Any, int, type, Any]:
    """Validate dask ``X``, ``y`` (and weights) from their metadata and coerce them lazily.

    Returns ``(X2d, y, model, dtype, w)`` as dask arrays: ``X2d`` (n, d) with
    one column block (1-D ``x`` as (n, 1) for the polynomial model), rows
    chunked as given; ``y`` and ``w`` with the same row chunks; float32 stays
    float32, anything else numeric becomes float64; ``w`` normalised to mean
    1 (one pass over the weights only) or None.
    """
    dask, da = _import_dask()
    from . import _registry as reg

    if not is_dask_array(X):
        raise TypeError(
            f"X must be a dask array when y or sample_weight is one, got {type(X).__name__}"
        )
    _dtype_of("X", X)
    if degree is None:
        if X.ndim != 2:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features), got {X.ndim}-D with shape "
                f"{X.shape}; pass degree= for a polynomial in 1-D x"
            )
        model = reg.MODELS["linear"].code
    else:
        if X.ndim != 1:
            raise ValueError(
                f"X must be 1-D when degree is given (polynomial in one variable), "
                f"got {X.ndim}-D with shape {X.shape}"
            )
        model = reg.MODELS["poly"].code
        X = X[:, None]
    _known_chunks("X", X)
    n = X.shape[0]
    if n == 0:
        raise ValueError("X and y must have at least one sample, got 0")
    if X.shape[1] == 0:
        raise ValueError("X must have at least one feature, got 0 columns")
    dt = np.float32 if np.dtype(X.dtype) == np.float32 else np.float64
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})  # a row chunk holds whole rows
    if np.dtype(X.dtype) != dt:
        X = X.astype(dt)
    rows = X.chunks[0]
    y = _vector("y", y, n, rows, da)
    if np.dtype(y.dtype) != dt:
        y = y.astype(dt)
    w = None
    if sample_weight is not None:
        w = _weights(_vector("sample_weight", sample_weight, n, rows, da), dt, dask)
    return X, y, model, dt, w


def _vector(name: str, a: Any, n: int, rows: tuple, da: Any) -> Any:
    """A 1-D dask vector of ``n`` values chunked like X's rows (a numpy one is wrapped)."""
    if not is_dask_array(a):
        a = np.asarray(a)
        _dtype_of(name, a)
        if a.ndim != 1 or a.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
        return da.from_array(a, chunks=(rows,))
    _dtype_of(name, a)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got {a.ndim}-D with shape {a.shape}")
    _known_chunks(name, a)
    if a.shape[0] != n:
        raise ValueError(f"X and {name} have different numbers of samples: {n} and {a.shape[0]}")
    if tuple(a.chunks[0]) != tuple(rows):
        raise ValueError(
            f"{name}'s chunks {tuple(a.chunks[0])} do not match X's row chunks "
            f"{tuple(rows)}: rechunk one of them, e.g. "
            f"{name}.rechunk({{0: X.chunks[0]}})"
        )
    return a


def _weights(w: Any, dt: type, dask: Any) -> Any:
    """Weights normalised to mean 1 (lazily), after one pass over them; None if all equal."""
    wf = w.astype(np.float64)
    total, lo, hi, bad = dask.compute(wf.sum(), wf.min(), wf.max(), (~np.isfinite(wf)).sum())
    if bad:
        raise ValueError("sample_weight must be finite (no NaN/inf)")
    if lo < 0:
        raise ValueError(f"sample_weight must be non-negative, got a minimum of {lo}")
    if total <= 0:
        raise ValueError("sample_weight must not be all zero")
    if lo == hi:
        return None  # equal weights change nothing: the unweighted path
    return (wf * (w.shape[0] / total)).astype(dt)


# ---------------------------------------------------------------- per-chunk tasks (on workers)


def _first_bad(
    model: int, xb: np.ndarray, yb: np.ndarray, lo: int, notes: tuple[str, str]
) -> tuple[ValueError | None, ...]:
    """The chunk's first NaN/inf in X and in y: a ``ValueError`` naming it, or None, each."""
    found: list[ValueError | None] = []
    for name, a, note in (("X", xb[:, 0] if model == 1 else xb, notes[0]), ("y", yb, notes[1])):
        try:
            val.check_finite(name, a, note, offset=lo)
            found.append(None)
        except ValueError as exc:
            found.append(exc)
    return tuple(found)


def _finite(out: Any) -> bool:
    if isinstance(out, tuple):
        return all(_finite(o) for o in out)
    return bool(np.isfinite(out).all())


def _chunk_task(
    bname: str,
    fn: Callable,
    model: int,
    notes: tuple[str, str],
    lo: int,
    xb: np.ndarray,
    yb: np.ndarray,
    wb: np.ndarray | None,
) -> tuple[Any, Any]:
    """``fn(be, xb, yb, wb)`` on one chunk; a non-finite result scans the chunk."""
    be = resolve(bname)[1]
    xb, yb = np.ascontiguousarray(xb), np.ascontiguousarray(yb)
    wb = None if wb is None else np.ascontiguousarray(wb)
    with np.errstate(all="ignore"):
        out = fn(be, xb, yb, wb)
    bad = None if _finite(out) else _first_bad(model, xb, yb, lo, notes)
    return out, bad


def _chunks_task(
    bname: str,
    fn: Callable,
    model: int,
    notes: tuple[str, str],
    los: list,
    xbs: list,
    ybs: list,
    wbs: list,
) -> list:
    """:func:`_chunk_task` on several chunks of one worker, results in the order given."""
    return [
        _chunk_task(bname, fn, model, notes, lo, xb, yb, wb)
        for lo, xb, yb, wb in zip(los, xbs, ybs, wbs)
    ]


def _og(model, loss, theta, basis, delta, fit_icpt, be, xb, yb, wb):
    """The chunk's objective and gradient sums (float64), without the penalty."""
    m = theta.shape[0]
    grad = np.empty(m, dtype=theta.dtype)
    f = be.objective_grad(
        model,
        loss,
        xb,
        yb,
        theta,
        basis,
        delta,
        np.zeros(m, dtype=theta.dtype),
        fit_icpt,
        grad,
        w=wb,
    )
    k = xb.shape[0]
    return float(f) * k, grad.astype(np.float64) * k


def _obj(model, loss, theta, basis, delta, be, xb, yb, wb):
    m = theta.shape[0]
    f = be.objective(model, loss, xb, yb, theta, basis, delta, np.zeros(m, dtype=theta.dtype), w=wb)
    return float(f) * xb.shape[0]


def _moments(x0, y0, full, be, xb, yb, wb):
    return tuple(np.asarray(v, dtype=np.float64) for v in be.moments(xb, yb, x0, y0, full, wb))


def _lsq(model, basis, p, be, xb, yb, wb):
    G, c, S = be.lsq_stats(model, xb, yb, basis, p, w=wb)
    return np.asarray(G, dtype=np.float64), np.asarray(c, dtype=np.float64), float(S)


def _rownorm(model, basis, pre, fit_icpt, be, xb, yb, wb):
    return float(be.max_row_norm2(model, xb, basis, pre, fit_icpt, wb))


def _range(be, xb, yb, wb):
    lo, hi = be.value_range(np.ascontiguousarray(xb[:, 0]))
    return np.array([lo, hi], dtype=np.float64)


def _sgd_chunk(
    bname: str,
    model: int,
    loss: int,
    notes: tuple[str, str],
    lo: int,
    seed: int,
    basis: np.ndarray,
    delta: float,
    l2w: np.ndarray,
    fit_icpt: int,
    opt: int,
    hp: np.ndarray,
    lr: float,
    batch_size: int,
    pre: np.ndarray,
    carry: tuple,
    xb: np.ndarray,
    yb: np.ndarray,
    wb: np.ndarray | None,
) -> tuple:
    """The compiled stochastic epoch over one chunk, its rows in a seeded random order.

    ``carry`` is ``(theta, slots, t, status, bad, lsum)`` from the previous
    chunk (``lsum``: the sum of the rows' losses so far in the epoch); a
    diverged carry (status 2) passes through untouched.
    """
    theta, slots, t, status, _bad, lsum = carry
    if status == 2:
        return carry
    be = resolve(bname)[1]
    xb, yb = np.ascontiguousarray(xb), np.ascontiguousarray(yb)
    wb = None if wb is None else np.ascontiguousarray(wb)
    k = xb.shape[0]
    order = np.arange(k, dtype=np.int32 if k < 2**31 else np.int64)
    np.random.default_rng(seed).shuffle(order)
    theta, slots = theta.copy(), slots.copy()
    grad = np.zeros_like(theta)
    m = theta.shape[0]
    with np.errstate(all="ignore"):  # need_obj 0: f is the chunk's progressive (mean) loss
        _, code, t, f = be.run(
            model,
            loss,
            xb,
            yb,
            theta,
            basis,
            delta,
            l2w,
            fit_icpt,
            opt,
            hp,
            slots,
            t,
            0,
            lr,
            np.zeros(3),
            0,
            1,
            batch_size,
            order[None, :],
            0.0,
            0,
            grad,
            math.nan,
            np.empty(0),
            np.empty((0, m), theta.dtype),
            pre,
            w=wb,
        )
    lsum += float(f) * k
    if code == 2 or not math.isfinite(lsum):  # diverged, or NaN/inf in the chunk
        return theta, slots, t, 2, _first_bad(model, xb, yb, lo, notes), lsum
    return theta, slots, t, 0, None, lsum


# ---------------------------------------------------------------- the chunked kernels (client)


@dataclass
class ChunkedKernels:
    """The kernel interface over a dask array's row chunks (see the module docstring).

    ``bname`` is the backend whose compiled kernels run on every chunk.
    """

    bname: str
    X: Any
    y: Any
    w: Any
    model: int
    notes: tuple[str, str] = ("", "")
    persisted: bool = False
    #: marks this object as a chunked data source for the layers above
    CHUNKED: bool = True
    POLY_MSE_MOMENTS: bool = False
    _blocks: list = field(default_factory=list, repr=False)
    _offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64), repr=False)
    #: first NaN/inf found by a task: (X error or None, y error or None)
    _bad: tuple | None = None
    #: the distributed client holding the persisted chunks, or None
    _client: Any = None
    #: (X, y, w) futures of every chunk, in order, when persisted on a cluster
    _futures: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        xs = self.X.to_delayed().ravel()
        ys = self.y.to_delayed().ravel()
        ws = self.w.to_delayed().ravel() if self.w is not None else [None] * len(xs)
        self._blocks = list(zip(xs, ys, ws))
        self._offsets = np.r_[0, np.cumsum(self.X.chunks[0])].astype(np.int64)
        if self.persisted and self._client is not None:
            self._futures = _chunk_futures(self.X, self.y, self.w)

    # -- mapping
    @property
    def nchunks(self) -> int:
        return len(self._blocks)

    def _map(self, fn: Callable) -> list:
        """``fn(be, xb, yb, wb)`` on every chunk, results in chunk order."""
        if self._futures:
            outs = self._map_on_workers(fn)
        else:
            dask, _ = _import_dask()
            task = dask.delayed(_chunk_task, pure=False)
            outs = dask.compute(
                *[
                    task(self.bname, fn, self.model, self.notes, int(lo), xb, yb, wb)
                    for lo, (xb, yb, wb) in zip(self._offsets, self._blocks)
                ]
            )
        self._note_bad([bad for _, bad in outs])
        return [out for out, _ in outs]

    def _map_on_workers(self, fn: Callable) -> list:
        """:meth:`_map` on data persisted on a cluster: one task per worker.

        Each worker runs ``fn`` on the chunks it holds (a task per chunk would
        cost the scheduler's round trip per chunk in every epoch) and returns
        their results one by one, so that the client adds them in chunk order
        whichever worker held which.  A worker lost meanwhile fails its task,
        which the scheduler reruns elsewhere after recomputing the chunks.
        """
        client = self._client
        who = client.who_has([xf for xf, _, _ in self._futures])
        groups: dict[Any, list[int]] = {}
        for i, (xf, _, _) in enumerate(self._futures):
            holders = who.get(xf.key) or [None]
            groups.setdefault(holders[0], []).append(i)
        tasks = []
        for addr, idx in groups.items():
            blocks = [self._futures[i] for i in idx]
            where = {} if addr is None else {"workers": [addr], "allow_other_workers": True}
            tasks.append(
                client.submit(
                    _chunks_task,
                    self.bname,
                    fn,
                    self.model,
                    self.notes,
                    [int(self._offsets[i]) for i in idx],
                    [b[0] for b in blocks],
                    [b[1] for b in blocks],
                    [b[2] for b in blocks],
                    pure=False,
                    **where,
                )
            )
        outs: list = [None] * self.nchunks
        for idx, res in zip(groups.values(), client.gather(tasks)):
            for i, r in zip(idx, res):
                outs[i] = r
        return outs

    def _note_bad(self, bads: list) -> None:
        """Keep the first NaN/inf of X (else of y) in row order, for :meth:`scan`."""
        found = [b for b in bads if b is not None]
        if not found or self._bad is not None:
            return
        xerr = next((b[0] for b in found if b[0] is not None), None)
        yerr = next((b[1] for b in found if b[1] is not None), None)
        if xerr is not None or yerr is not None:
            self._bad = (xerr, yerr)

    def scan(self) -> None:
        """The named ``ValueError`` at the first NaN/inf (found by a pass, or by a scan now)."""
        if self._bad is None:
            self._map(_scan_only)
        if self._bad is not None:
            xerr, yerr = self._bad
            raise xerr if xerr is not None else yerr

    # -- the kernel interface
    def objective_grad(
        self,
        model: int,
        loss: int,
        X: Any,
        y: Any,
        theta: np.ndarray,
        basis: np.ndarray,
        delta: float,
        l2w: np.ndarray,
        fit_icpt: int,
        grad: np.ndarray,
        w: Any = None,
    ) -> float:
        parts = self._map(partial(_og, model, loss, theta, basis, delta, int(fit_icpt)))
        f = 0.0
        acc = np.zeros(theta.shape[0])
        for fk, gk in parts:  # chunk order: the same sum on every run
            f += fk
            acc += gk
        n = int(self._offsets[-1])
        acc[-1] = acc[-1] if fit_icpt else 0.0
        ref._finish(acc, n, theta, l2w, fit_icpt, grad)
        return f / n + ref._penalty(theta, l2w)

    def objective(
        self,
        model: int,
        loss: int,
        X: Any,
        y: Any,
        theta: np.ndarray,
        basis: np.ndarray,
        delta: float,
        l2w: np.ndarray,
        w: Any = None,
    ) -> float:
        parts = self._map(partial(_obj, model, loss, theta, basis, delta))
        return sum(parts) / int(self._offsets[-1]) + ref._penalty(theta, l2w)

    def moments(self, X, y, x0, y0, full, w=None):
        parts = self._map(partial(_moments, np.asarray(x0, np.float64), float(y0), bool(full)))
        return tuple(_sum_in_order([p[i] for p in parts]) for i in range(5))

    def lsq_stats(self, model, X, y, basis, p, w=None):
        parts = self._map(partial(_lsq, model, basis, p))
        return tuple(_sum_in_order([q[i] for q in parts]) for i in range(3))

    def max_row_norm2(
        self, model: int, X: Any, basis: np.ndarray, pre: np.ndarray, fit_icpt: int, w: Any = None
    ) -> float:
        return float(np.max(self._map(partial(_rownorm, model, basis, pre, bool(fit_icpt)))))

    def value_range(self, x: Any = None) -> tuple[float, float]:
        r = np.array(self._map(_range))
        return float(np.min(r[:, 0])), float(np.max(r[:, 1]))

    def run(
        self,
        model: int,
        loss: int,
        X: Any,
        y: Any,
        theta: np.ndarray,
        basis: np.ndarray,
        delta: float,
        l2w: np.ndarray,
        fit_icpt: int,
        opt: int,
        hp: np.ndarray,
        state: np.ndarray,
        *rest: Any,
        stats: Any = None,
        **kwargs: Any,
    ) -> tuple[int, int, int, float]:
        """The reference's epoch loop over these chunked passes (``stats`` unused).

        Ctrl-C during a pass leaves ``theta`` and the optimizer slots as they
        were at the start of the call (the loop reports the epochs before it).
        """
        theta0, state0 = theta.copy(), state.copy()
        try:
            return ref.run(
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
                *rest,
                kernels=self,
                **kwargs,
            )  # type: ignore[misc]  # (rest: 14 positionals)
        except KeyboardInterrupt:
            theta[:] = theta0
            state[:] = state0
            raise

    # -- stochastic epochs, chunk to chunk
    def draw_orders(self, rng: np.random.Generator, n_epochs: int) -> np.ndarray:
        """Each epoch's chunk order and row-shuffle seeds: ``(n_epochs, 2 * nchunks)`` int64."""
        k = self.nchunks
        out = np.empty((n_epochs, 2 * k), dtype=np.int64)
        for e in range(n_epochs):
            out[e, :k] = rng.permutation(k)
            out[e, k:] = rng.integers(0, 2**62, size=k)
        return out

    def stochastic_epoch(
        self,
        model: int,
        loss: int,
        X: Any,
        y: Any,
        theta: np.ndarray,
        basis: np.ndarray,
        delta: float,
        l2w: np.ndarray,
        fit_icpt: int,
        opt: int,
        hp: np.ndarray,
        state: np.ndarray,
        t: int,
        lr: float,
        idx: np.ndarray,
        batch_size: int,
        grad: np.ndarray,
        pre: np.ndarray,
        w: Any = None,
    ) -> tuple[int, float]:
        """One epoch chunk to chunk (``idx``: a row of :meth:`draw_orders`).

        Returns the step count and the sum of the rows' losses, each at the
        parameters its step started from (the chunks' progressive losses).

        A diverged epoch leaves NaN in ``theta`` (the loop restores the
        epoch's start and reports it).
        """
        dask, _ = _import_dask()
        k = self.nchunks
        task = dask.delayed(_sgd_chunk, pure=False)
        carry: Any = (theta.copy(), state.copy(), int(t), 0, None, 0.0)
        for j in idx[:k]:
            lo = int(self._offsets[j])
            xb, yb, wb = self._blocks[j]
            carry = task(
                self.bname,
                model,
                loss,
                self.notes,
                lo,
                int(idx[k + j]),
                basis,
                delta,
                l2w,
                int(fit_icpt),
                opt,
                hp,
                float(lr),
                int(batch_size),
                pre,
                carry,
                xb,
                yb,
                wb,
            )
        theta_new, slots, t_new, status, bad, lsum = dask.compute(carry)[0]
        if status == 2:
            if bad is not None:
                self._note_bad([bad])
            theta[:] = np.nan
            return int(t_new), math.nan
        theta[:] = theta_new
        state[:] = slots
        return int(t_new), float(lsum)


def _scan_only(be, xb, yb, wb):
    """1.0 for a chunk without NaN/inf, NaN otherwise (which makes the task scan it)."""
    return 1.0 if be.all_finite(xb) and be.all_finite(yb) else math.nan


def _sum_in_order(parts: list) -> Any:
    out = parts[0]
    out = float(out) if isinstance(out, float) else np.array(out, dtype=np.float64, copy=True)
    for q in parts[1:]:
        out = out + q
    return out


# ---------------------------------------------------------------- where the data live


def _memory_budget() -> float:
    """Bytes that data may take and still be persisted for a fit."""
    client = _active_client()
    if client is not None:
        info = (
            client.scheduler_info(n_workers=-1)
            if _takes_n_workers(client)
            else client.scheduler_info()
        )
        limits = [wk.get("memory_limit") or 0 for wk in info.get("workers", {}).values()]
        total = sum(limits) if limits and all(limits) else _machine_memory()
        return PERSIST_FRACTION * total
    return PERSIST_FRACTION * 0.5 * _machine_memory()


def _takes_n_workers(client: Any) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _machine_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2.0**31


def _active_client() -> Any:
    """The active ``dask.distributed`` client, or None (dask's local scheduler then)."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def _chunk_futures(X: Any, y: Any, w: Any) -> list:
    """The futures of persisted ``X``, ``y`` (and ``w``) chunks, in chunk order."""
    from distributed import futures_of

    def ordered(a: Any) -> list:
        by_key = {f.key: f for f in futures_of(a)}
        keys = a.__dask_keys__()  # [(name, i)] or [[(name, i, 0)]]: one column block
        return [by_key[k if a.ndim == 1 else k[0]] for k in keys]

    xs, ys = ordered(X), ordered(y)
    ws = ordered(w) if w is not None else [None] * len(xs)
    return list(zip(xs, ys, ws))


def chunked_kernels(
    bname: str, X: Any, y: Any, w: Any, model: int, notes: tuple[str, str]
) -> ChunkedKernels:
    """The chunked kernels of a fit: the data persisted when they fit in memory."""
    dask, _ = _import_dask()
    nbytes = X.nbytes + y.nbytes + (0 if w is None else w.nbytes)
    persisted = nbytes <= _memory_budget()
    client = _active_client()
    if persisted:
        X, y, w = dask.persist(X, y, w) if w is not None else (*dask.persist(X, y), None)
    return ChunkedKernels(bname, X, y, w, model, notes, persisted, _client=client)
