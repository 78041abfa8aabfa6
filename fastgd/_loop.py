"""The epoch loop: chunks of compiled epochs, the callback, progress, Ctrl-C and history.

``run_epochs`` owns every decision that needs Python between compiled calls:
how many epochs one ``run`` call takes (so Ctrl-C and progress stay
responsive), the per-epoch sample orders drawn from the seed, growing the
history buffers, the callback (given the user's parameters) and the final
objective when the kernels did not compute it and no epoch proved the data
finite.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _registry as reg
from ._precondition import Coordinates
from ._problem import Problem

#: Elements (rows x columns) of X processed per compiled call, so that Ctrl-C
#: and progress stay responsive on big data without slowing small fits.
CHUNK_WORK = 1 << 27
#: Cap on the sample-order buffer of one chunk (elements).
ORDER_CAP = 1 << 21
#: ... and on its bytes: at most 1/ORDER_FRACTION of X's (but ORDER_MIN_BYTES
#: always allowed), so that SGD on big data adds no hidden copy of X.
ORDER_FRACTION = 20
ORDER_MIN_BYTES = 1 << 18
STATUS = {0: "max_iter", 1: "converged", 2: "diverged", 3: "callback", 4: "interrupted"}


@dataclass
class Rule:
    """An update rule with its schedule, hyperparameters and step size."""

    spec: reg.OptimizerSpec
    sched: reg.ScheduleSpec
    hp: np.ndarray
    sched_hp: np.ndarray
    lr: float


@dataclass
class Outcome:
    """What the loop leaves: epochs run, status code, steps, objective, history buffers."""

    epoch: int
    status: int
    steps: int
    f: float
    hist_loss: np.ndarray
    hist_params: np.ndarray
    #: ``f`` was not computed (nothing needed it): ``final_objective`` gives it.
    lazy_f: bool = False


def final_objective(prob: Problem, coords: Coordinates, theta: np.ndarray) -> float:
    """The objective at ``theta`` (kernel coordinates): one pass; inf, never NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = prob.be.objective(
            prob.model,
            prob.loss.code,
            prob.X,
            prob.y,
            theta,
            coords.basis,
            prob.delta,
            coords.l2w,
            w=prob.w,
        )
    return math.inf if math.isnan(f) else float(f)


def grow_history(
    hist_loss: np.ndarray, hist_params: np.ndarray, record: str, need: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Grow the history buffers (geometrically, up to ``cap``) to hold ``need`` epochs.

    Long fits (``max_iter`` in the millions) so never pre-allocate memory for
    epochs they may not run.
    """
    size = min(cap, max(need, 2 * hist_loss.shape[0], 64))
    loss = np.empty(size)
    loss[: hist_loss.shape[0]] = hist_loss
    params = hist_params
    if record == "params":
        params = np.empty((size, hist_params.shape[1]), dtype=hist_params.dtype)
        params[: hist_params.shape[0]] = hist_params
    return loss, params


def quiet(bname: str) -> contextlib.AbstractContextManager[Any]:
    """numpy's overflow warnings off for the reference (divergence is reported by fastgd)."""
    if bname == "numpy":
        return np.errstate(over="ignore", invalid="ignore")
    return contextlib.nullcontext()


class Progress:
    """A tqdm bar over epochs (imported only when asked for)."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "progress=True needs tqdm: pip install 'fastgd[progress]'"
                ) from exc
            self.bar = tqdm(total=total, unit="epoch", desc="fastgd")

    def update(self, n: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if math.isfinite(loss):
                self.bar.set_postfix(loss=f"{loss:.6g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n  # a fit that stopped early ends the bar at 100 %
            self.bar.refresh()
            self.bar.close()


def _chunking(prob: Problem, batch: int | None, callback: Any) -> tuple[int, np.ndarray]:
    """Epochs per compiled call, and the sample-order buffer of stochastic epochs."""
    n, width = prob.n, prob.X.shape[1]
    if getattr(prob.be, "CHUNKED", False):
        # a dask array: one epoch per call (each is a round trip to the cluster, and
        # Ctrl-C then loses no finished epoch); stochastic orders are the kernels'
        return 1, np.empty(0, dtype=np.int64)
    if batch is not None:
        perm = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        order_budget = max(ORDER_MIN_BYTES, prob.X.nbytes // ORDER_FRACTION) // (n * perm.itemsize)
        chunk = max(1, min(CHUNK_WORK // max(n * width, 1), ORDER_CAP // n, order_budget))
    else:
        perm = np.empty(0, dtype=np.int32)
        chunk = max(1, CHUNK_WORK // max(n * width, 1))
        if (
            prob.model == 1
            and prob.loss.name == "mse"
            and getattr(prob.be, "POLY_MSE_MOMENTS", False)
        ):
            # the backend reduces the data to moments once per run call: epochs are O(p^2)
            chunk = max(1, CHUNK_WORK // (prob.p + 1) ** 2)
    if callback is not None:
        chunk = 1
    return chunk, perm


def _shuffled_range(out: np.ndarray, rng: np.random.Generator) -> None:
    """``out`` := a fresh random permutation of ``0 .. len(out) - 1``, in place.

    Every epoch's order is drawn from the identity (not a reshuffle of the
    last epoch's), so a fit continued epoch by epoch from a ``FitState`` with
    the same generator draws the same orders as one fit.  The identity is
    written in place (cumulative sum of ones): no temporary of n indices.
    """
    out.fill(1)
    out[0] = 0
    np.cumsum(out, out=out)
    rng.shuffle(out)


def run_epochs(
    prob: Problem,
    coords: Coordinates,
    rule: Rule,
    theta: np.ndarray,
    state: np.ndarray,
    t0: int,
    *,
    epoch0: int = 0,
    batch: int | None,
    max_iter: int,
    tol: float,
    rng: np.random.Generator | None,
    record: str | None,
    callback: Callable[..., Any] | None,
    progress: bool,
    check_finite: bool,
) -> Outcome:
    """Run up to ``max_iter`` epochs from ``theta`` (kernel coordinates, updated in place).

    ``batch`` None is full batch.  ``state`` (optimizer slots, internal
    coordinates), the step counter ``t0`` and the schedule (from epoch
    ``epoch0``) continue from a previous fit; epochs and history count from 0.
    The objective at the returned ``theta`` is in ``Outcome.f``, or
    ``Outcome.lazy_f`` says that nothing needed it yet.  Data not yet proven
    finite (``prob.unscanned``) are proven by the loop's own passes (an
    objective, or a completed stochastic epoch's progressive loss); NaN/inf in
    them -- or in data a diverged fit ran on with ``check_finite=False`` --
    raise the named ``ValueError`` before any result is returned.
    """
    be = prob.be
    p = prob.p
    if callback is not None and prob.unscanned:
        prob.scan()  # the callback sees parameters before the end: the data must be finite
    need_obj = record is not None or callback is not None
    hist_loss = np.empty(0)
    hist_params = np.empty((0, p + 1), dtype=prob.dt)
    grad = np.zeros(p + 1, dtype=prob.dt)
    chunk, perm = _chunking(prob, batch, callback)
    stochastic = batch is not None
    order_buf = np.empty((0, prob.n), dtype=perm.dtype)  # one buffer, reused by every chunk
    empty_order = np.empty((0, 0), dtype=np.int32)
    bsz = batch if stochastic else 0
    # The statistics pass already holds what the full-batch MSE shortcut
    # needs.  The linear model's only for a rule that is not adaptive: an
    # adaptive rule turns the rounding noise of a gradient at its optimum into
    # steps of about lr, and the Gram matrix's noise is not the row pass's (a
    # fit continued call by call, whose later calls run the row pass, must
    # follow the same path as one fit).
    extra = (
        {"stats": coords.stats}
        if coords.stats is not None
        and not stochastic
        and prob.loss.name == "mse"
        and (prob.model == 1 or not rule.spec.adaptive)
        else {}
    )
    sched_hp = np.r_[rule.sched_hp[:2], float(epoch0)]
    bar = Progress(progress, max_iter)
    epoch, status, t, f = 0, 0, t0, math.nan
    # Stochastic epochs without a history compute no objective: ``run``
    # returns instead the last epoch's progressive loss (the mean loss of the
    # residuals the steps took), never passed back as ``f0`` nor reported as
    # the objective.  An epoch visits every row, so a finite one (with finite
    # parameters) proves the data finite; ``swept``: one did, in a call that
    # neither diverged nor was interrupted.  ``prog`` NaN: none completed.
    have_f = not (stochastic and not need_obj)
    swept, prog = False, math.nan
    try:
        while epoch < max_iter:
            n_ep = min(chunk, max_iter - epoch)
            if stochastic:
                if getattr(be, "CHUNKED", False):
                    order = be.draw_orders(rng, n_ep)
                elif n_ep == 1:
                    assert rng is not None  # stochastic fits always have one
                    _shuffled_range(perm, rng)
                    order = perm[None, :]
                else:
                    if order_buf.shape[0] < n_ep:
                        order_buf = np.empty((n_ep, prob.n), dtype=perm.dtype)
                    order = order_buf[:n_ep]
                    assert rng is not None
                    for k in range(n_ep):
                        _shuffled_range(order[k], rng)
            else:
                order = empty_order
            if record is not None and hist_loss.shape[0] < epoch + n_ep + 1:
                hist_loss, hist_params = grow_history(
                    hist_loss, hist_params, record, epoch + n_ep + 1, max_iter + 1
                )
            with quiet(prob.bname):  # divergence is reported by the caller
                done, code, t, fr = be.run(
                    prob.model,
                    prob.loss.code,
                    prob.X,
                    prob.y,
                    theta,
                    coords.basis,
                    prob.delta,
                    coords.l2w,
                    int(prob.fit_icpt),
                    rule.spec.code,
                    rule.hp,
                    state,
                    t,
                    rule.sched.code,
                    rule.lr,
                    sched_hp,
                    epoch,
                    n_ep,
                    bsz,
                    order,
                    tol,
                    int(need_obj),
                    grad,
                    f,
                    hist_loss,
                    hist_params,
                    coords.pre,
                    w=prob.w,
                    **extra,
                )
            if have_f:
                f = fr
            elif done > 0 and code != 2:
                prog = fr
                swept = swept or math.isfinite(prog)
            epoch += done
            bar.update(done, f)
            if code != 0:
                status = code
                break
            if callback is not None:
                coef, icpt = coords.to_user(theta)
                if callback(epoch, coef.astype(prob.dt), icpt, f) is True:
                    status = 3
                    break
    except KeyboardInterrupt:
        status = 4
    finally:
        bar.close()

    # Full batches computed the objective at theta; stochastic epochs without a
    # history did not.  The objective is computed here on divergence, and when
    # no pass so far proved the data finite (this pass
    # then does: finite parameters give a finite objective only on finite data,
    # and with check_finite=False it is what names a NaN/inf); otherwise it is
    # left to the first read of ``FitResult.objective``.  A completed
    # stochastic epoch is such a pass (not one cut short by Ctrl-C, after
    # which theta may be mid-epoch): a finite progressive loss proves the data
    # finite, a non-finite one has the data scanned (the named error, or
    # finite data whose losses overflow).
    proven = (check_finite and not prob.unscanned) or (swept and status in (0, 1))
    bad_sweep = not have_f and status in (0, 1) and not swept and not math.isnan(prog)
    if (
        status == 2
        or (have_f and not math.isfinite(f))
        or (not have_f and not proven and not bad_sweep)
    ):
        f = final_objective(prob, coords, theta)
        have_f = True
    if (prob.unscanned or not check_finite) and (
        status == 2 or bad_sweep or (have_f and not math.isfinite(f))
    ):
        # NaN/inf in the data: the error names it.  (Huber's clipped slope keeps
        # the parameters finite on an infinite y, so the loss is checked too.)
        prob.scan()
    prob.unscanned = False
    return Outcome(
        epoch,
        status,
        t,
        float(f) if have_f else math.nan,
        hist_loss,
        hist_params,
        lazy_f=not have_f,
    )
