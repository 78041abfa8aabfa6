"""``fastgd bench``: time every benchmark problem on this machine and print one table.

The problems, their cases and sizes come from :mod:`fastgd._problems` (the
pytest-benchmark suite in ``bench/`` runs the same ones).  For every problem
and case: the median over ``--repeats`` runs (after one untimed first call,
which compiles or loads the JIT cache and is reported separately; the cases of
a problem take turns, one run each per round), the speedup
against the problem's reference (the numpy backend), and for the memory-bound
``loss_and_grad`` problems the achieved GB/s over the bytes of X and y and its
fraction of the machine's read bandwidth, measured in the same run by the
read probes (a parallel numba sum over the same bytes; a numpy sum as well,
and the faster of the two is the machine's figure).  Then the speed targets
are checked, met or not.

``--scaling`` instead times ``loss_and_grad`` at growing row counts and prints
the time per sample.

Run it as ``fastgd bench`` or ``python -m fastgd._bench``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from . import _problems as P

#: Calls shorter than this are repeated inside one timed run (timer resolution).
_MIN_RUN_S = 0.02
#: Longest wait for idle threads before a timed run (see ``_settle``).
_SETTLE_MAX_S = 0.5


# ---------------------------------------------------------------- options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fastgd bench`` to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> from fastgd import _bench
    >>> parser = argparse.ArgumentParser(prog="fastgd bench")
    >>> _bench.add_arguments(parser)
    >>> parser.parse_args(["--scale", "tiny"]).repeats
    5
    """
    parser.add_argument(
        "--scale",
        default=None,
        help=f"problem size: full (P = 1,000,000 x 100 float64, polynomial on 1e7 points), small, "
        f"tiny, or a factor in (0, 1] of the full row counts (default: ${P.SCALE_ENV} or full)",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated cases to run: fastgd backends (numpy, numba, cython) and anchors "
        "(sklearn, polyfit); default: all available.  Without numpy there is no speedup column",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs per case; the table shows their median (default 5)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for the parallel kernels, BLAS and the read probe (default: all cores)",
    )
    parser.add_argument(
        "--problems",
        default=None,
        help="comma-separated problem names or shell patterns (e.g. 'loss_and_grad-*,tiny_fit'); "
        f"default: all of {P.problem_names()}",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write the results and machine info to PATH as JSON",
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="instead: time loss_and_grad (mse, float64) at growing n and print "
        "the time per sample",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dask",
        action="store_true",
        help="instead: a full-batch epoch on a 2-worker dask LocalCluster against "
        "the in-memory epoch and dask-glm, with chunk and size scaling "
        "(needs the dask extra and dask-glm); --json PATH writes the "
        "results there and the table beside it (.txt)",
    )
    parser.add_argument("--no-glm", action="store_true", help="with --dask: skip dask-glm")


# ---------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return getattr(mod, "__version__", "unknown")


def _compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    try:
        out = subprocess.run(
            [cc, "--version"], check=False, capture_output=True, text=True, timeout=10
        )
        first = out.stdout.splitlines()[0] if out.stdout else ""
        return f"{cc}: {first}".strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return cc


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, load and the versions that matter for the timings.

    Returns
    -------
    dict
        JSON-serialisable.

    Examples
    --------
    >>> from fastgd._bench import machine_info
    >>> "numpy" in machine_info()["versions"]
    True
    """
    import fastgd

    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _mem_total_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "fastgd": fastgd.__version__,
            "numpy": np.__version__,
            "numba": _version("numba"),
            "llvmlite": _version("llvmlite"),
            "Cython": _version("Cython"),
            "scikit-learn": _version("sklearn"),
        },
        "compiler": _compiler(),
        "backends": fastgd.available_backends(),
    }
    try:
        import numba

        info["numba_threads"] = numba.get_num_threads()
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            info["numba_threading_layer"] = None
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "version", "num_threads")}
            for d in threadpool_info()
        ]
    except ImportError:
        pass
    return info


class _Threads:
    """Limit every thread pool (numba, OpenMP, BLAS) to ``n`` threads while active."""

    def __init__(self, n: int | None):
        self.n = n
        self._ctx: Any = None
        self._numba_prev: int | None = None
        self._fastgd_prev: int | None = None

    def __enter__(self) -> _Threads:
        if self.n is None:
            return self
        os.environ.setdefault("OMP_NUM_THREADS", str(self.n))
        import fastgd

        fastgd.available_backends()  # load the extensions so their OpenMP runtime is seen
        try:
            import numba

            from . import _config

            _config.configure_numba()
            self._numba_prev = numba.get_num_threads()
            self._fastgd_prev = _config.num_threads()
            n = min(self.n, numba.config.NUMBA_NUM_THREADS)
            numba.set_num_threads(n)
            _config.set_num_threads(n)  # the cap fastgd's numba kernels apply
        except ImportError:
            pass
        try:
            from threadpoolctl import threadpool_limits

            self._ctx = threadpool_limits(limits=self.n)
            self._ctx.__enter__()
        except ImportError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        if self._numba_prev is not None:
            import numba

            from . import _config

            numba.set_num_threads(self._numba_prev)
            _config.set_num_threads(self._fastgd_prev)


# ---------------------------------------------------------------- timing


@dataclass
class Result:
    """The timing of one case of one problem (JSON-serialisable with ``asdict``)."""

    problem: str
    case: str
    kind: str
    backend: str | None
    status: str = "ok"  # "ok", "skipped" or "error"
    reason: str = ""
    times: list[float] = field(default_factory=list)  # seconds per call, factor applied
    median: float | None = None
    inner: int = 1  # calls per timed run
    first_call: float | None = None
    factor: float = 1.0
    note: str = ""
    speedup: float | None = None  # reference median / this median
    nbytes: int | None = None
    gbps: float | None = None
    bw_fraction: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _inner_calls(fn: Callable[[], Any], once: float | None) -> int:
    """Calls per timed run: enough that one run lasts about ``_MIN_RUN_S``.

    ``once``: a known duration of one call (else one untimed call measures it).
    """
    if once is None or once < _MIN_RUN_S:
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
    if once >= _MIN_RUN_S:
        return 1
    return min(100_000, max(1, math.ceil(_MIN_RUN_S / max(once, 1e-7))))


def _settle(limit: float = _SETTLE_MAX_S, step: float = 0.005) -> float:
    """Wait until no thread of this process is busy; returns the seconds waited.

    Thread pools keep spinning for a while after a parallel call (OpenMP's
    about 10 ms, OpenBLAS's about 0.1 s), and spinning threads take cores from
    whatever runs next: a case timed right after another backend's call would
    pay for that backend's threads.  Waits until the process uses less than
    20% of a core over ``step`` seconds, at most ``limit`` seconds.
    """
    t0 = time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - t0 < limit:
        time.sleep(step)
        now = time.process_time()
        if now - cpu < 0.2 * step:
            break
        cpu = now
    return time.perf_counter() - t0


def _timed_run(fn: Callable[[], Any], inner: int) -> float:
    """One timed run of ``inner`` calls, after :func:`_settle`; seconds per call."""
    _settle()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def time_call(
    fn: Callable[[], Any], repeats: int, once: float | None = None
) -> tuple[list[float], int]:
    """``repeats`` timed runs of ``fn`` (after warm-up); seconds per call, and calls per run.

    A call shorter than ``_MIN_RUN_S`` is repeated within each run so that
    timer resolution and loop overhead do not matter.  ``once``: a known
    duration of one call (else one more untimed call measures it).
    """
    inner = _inner_calls(fn, once)
    return [_timed_run(fn, inner) for _ in range(repeats)], inner


def _start_case(case: P.Case, res: Result, data: P.Data) -> P.Prepared | None:
    """Prepare, call once (untimed: JIT compilation or cache loading) and check one case.

    Returns the prepared case, or None when it is skipped or failed (``res``
    says why).
    """
    reason = case.missing()
    if reason:
        res.status, res.reason = "skipped", reason
        return None
    try:
        prep = case.prepare(data)
        t0 = time.perf_counter()
        out = prep.fn()
        res.first_call = time.perf_counter() - t0
        if prep.check is not None:
            res.extra.update(prep.check(out))
        # a first call without JIT compilation tells how long one call takes
        hint = res.first_call if case.backend in (None, "numpy") else None
        res.inner = _inner_calls(prep.fn, hint)
    except P.Unavailable as exc:
        res.status, res.reason = "skipped", str(exc)
        return None
    except Exception as exc:  # noqa: BLE001 - report and go on with the other cases
        res.status, res.reason = "error", f"{type(exc).__name__}: {exc}"
        return None
    res.factor, res.note = prep.factor, prep.note
    res.extra["offset_s"] = prep.offset
    return prep


def run_cases(
    prob: P.Problem,
    cases: list[P.Case],
    data: P.Data,
    repeats: int,
    tick: Callable[[str], None] | None = None,
) -> list[Result]:
    """Warm up, check and time the cases of one problem, side by side.

    Every case is prepared and called once first; then each of the
    ``repeats`` rounds times one run of every case in turn, so that a change
    in the machine's load (other processes, memory traffic) during the
    problem falls on all its cases alike, and their ratios -- speedups,
    fractions of the read probe -- compare runs made at the same time.  Each
    run starts once the previous case's thread pool has gone idle.
    ``tick(label)`` is called as each case is prepared.
    """
    results = [Result(prob.name, c.label, c.kind, c.backend) for c in cases]
    live: list[tuple[Result, P.Prepared]] = []
    for case, res in zip(cases, results):
        if tick is not None:
            tick(case.label)
        prep = _start_case(case, res, data)
        if prep is not None:
            live.append((res, prep))
    for _ in range(repeats):
        for res, prep in live:
            if res.status != "ok":
                continue
            try:
                res.times.append(prep.report(_timed_run(prep.fn, res.inner)))
            except Exception as exc:  # noqa: BLE001 - report and go on with the other cases
                res.status, res.reason = "error", f"{type(exc).__name__}: {exc}"
    for res, _ in live:
        if res.status != "ok":
            continue
        res.median = float(np.median(res.times))
        if prob.nbytes is not None:
            res.nbytes = prob.nbytes(data)
            res.gbps = res.nbytes / res.median / 1e9
    return results


def _finish_problem(prob: P.Problem, results: list[Result]) -> dict[str, Any]:
    """Speedups against the reference, and bandwidth fractions against the best probe."""
    ok = {r.case: r for r in results if r.status == "ok"}
    ref = ok.get(prob.reference)
    for r in results:
        if r.status == "ok" and ref is not None and r.kind != "probe":
            r.speedup = ref.median / r.median
    summary: dict[str, Any] = {}
    probes = [r for r in results if r.status == "ok" and r.kind == "probe"]
    if probes:
        best = max(probes, key=lambda r: r.gbps or 0.0)
        summary = {"read_gbps": best.gbps, "read_probe": best.case}
        for r in results:
            if r.status == "ok" and r.gbps is not None:
                r.bw_fraction = r.gbps / best.gbps
    return summary


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    """One speed target and whether it was met."""

    name: str
    backend: str
    measured: str
    met: bool | None  # None: could not be measured here
    detail: str = ""


def _get(results: Iterable[Result], problem: str, case: str) -> Result | None:
    for r in results:
        if r.problem == problem and r.case == case and r.status == "ok":
            return r
    return None


def evaluate_targets(results: list[Result]) -> list[Target]:
    """The speed targets of the compiled backends, met or not.

    Targets (problem P: 1,000,000 x 100 float64): ``loss_and_grad`` mse and
    huber at >= 90 % of the measured read bandwidth (checked for the public
    call and for the kernel alone) and >= 3x the numpy reference; float32
    ``loss_and_grad`` >= 1.8x the float64 throughput; one shuffled SGD epoch
    through ``fit`` (``record=None``) >= 6x scikit-learn's ``SGDRegressor``,
    with a fixed lr and with every default; a full-batch fit with
    ``lr="auto"`` <= 1.3x the same fit given that lr; the SGD epoch per row at
    1e7 rows <= 1.3x at 1e6; mini-batch Adam on Cython within 10 % of numba;
    ``backend="auto"`` within 10 % of the fastest backend on every problem;
    the first numba fit of a job with an empty cache <= 10 s; the 11-point
    500-epoch fit <= 100 us per call and >= 40x the numpy reference; the
    degree-3 polynomial on 1e7 points with default options >= 100x
    ``np.polyfit`` with its coefficients to 1e-8 relative; full-batch epochs on
    P preconditioned <= 1.05x unpreconditioned.

    Parameters
    ----------
    results : list of Result

    Returns
    -------
    list of Target
    """
    out: list[Target] = []
    for be in ("numba", "cython"):
        for variant, label in ((be, "fastgd.loss_and_grad"), (f"{be} (kernel)", "kernel only")):
            parts, mets = [], []
            for loss in ("mse", "huber"):
                r = _get(results, f"loss_and_grad-{loss}-float64", variant)
                if r is not None and r.bw_fraction is not None:
                    parts.append(f"{loss} {100 * r.bw_fraction:.0f}%")
                    mets.append(r.bw_fraction >= 0.90)
            out.append(
                Target(
                    f"loss_and_grad f64 >= 90% read bandwidth ({label})",
                    be,
                    ", ".join(parts) or "-",
                    all(mets) if mets else None,
                )
            )
        for variant, label in ((be, "fastgd.loss_and_grad"), (f"{be} (kernel)", "kernel only")):
            parts, mets = [], []
            for loss in ("mse", "huber"):
                r64 = _get(results, f"loss_and_grad-{loss}-float64", variant)
                r32 = _get(results, f"loss_and_grad-{loss}-float32", variant)
                if r64 is not None and r32 is not None:
                    ratio = r64.median / r32.median
                    parts.append(f"{loss} {ratio:.2f}x")
                    mets.append(ratio >= 1.8)
            out.append(
                Target(
                    f"float32 >= 1.8x float64 throughput ({label})",
                    be,
                    ", ".join(parts) or "-",
                    all(mets) if mets else None,
                )
            )
        r64 = _get(results, "loss_and_grad-dtypes", f"{be} float64")
        r32 = _get(results, "loss_and_grad-dtypes", f"{be} float32")
        ratio = r64.median / r32.median if r64 is not None and r32 is not None else None
        out.append(
            Target(
                "float32 >= 1.8x float64 (fastgd.loss_and_grad, side by side)",
                be,
                f"{ratio:.2f}x" if ratio else "-",
                None if ratio is None else ratio >= 1.8,
            )
        )
        sk = _get(results, "sgd_epoch", "sklearn SGDRegressor")
        for variant, label, goal in (
            (be, "fastgd.fit, fixed lr, record=None", 6.0),
            (f"{be} (epoch kernel)", "epoch kernel only", 6.0),
        ):
            r = _get(results, "sgd_epoch", variant)
            ratio = sk.median / r.median if r is not None and sk is not None else None
            out.append(
                Target(
                    f"SGD epoch >= {goal:g}x sklearn SGDRegressor ({label})",
                    be,
                    f"{ratio:.2f}x" if ratio else "-",
                    None if ratio is None else ratio >= goal,
                )
            )
        r, sk2 = (
            _get(results, "sgd_fit", f"{be} fit, defaults"),
            _get(results, "sgd_fit", "sklearn SGDRegressor"),
        )
        ratio = sk2.median / r.median if r is not None and sk2 is not None else None
        out.append(
            Target(
                "SGD fit, every default >= 6x sklearn SGDRegressor",
                be,
                f"{ratio:.2f}x" if ratio else "-",
                None if ratio is None else ratio >= 6,
            )
        )
        parts, mets = [], []
        for dt in ("float64", "float32"):
            for loss in ("mse", "huber"):
                r, ref = (
                    _get(results, f"loss_and_grad-{loss}-{dt}", be),
                    _get(results, f"loss_and_grad-{loss}-{dt}", "numpy"),
                )
                if r is not None and ref is not None:
                    parts.append(f"{loss} {dt[5:]} {ref.median / r.median:.1f}x")
                    mets.append(ref.median / r.median >= 3.0)
        out.append(
            Target(
                "fastgd.loss_and_grad >= 3x numpy reference",
                be,
                ", ".join(parts) or "-",
                all(mets) if mets else None,
            )
        )
        r0, r1 = (
            _get(results, "gd_lr_auto", f"{be} lr=fixed"),
            _get(results, "gd_lr_auto", f"{be} lr=auto"),
        )
        ratio = r1.median / r0.median if r0 is not None and r1 is not None else None
        out.append(
            Target(
                "fit with lr='auto' <= 1.3x the same fit with that lr given",
                be,
                f"{ratio:.2f}x" if ratio else "-",
                None if ratio is None else ratio <= 1.3,
            )
        )
        per_row = {}
        for k in range(3):
            r = _get(results, "sgd_scaling", f"{be} n = scaling_n[{k}]")
            if r is not None and r.extra.get("n"):
                per_row[k] = r.median / r.extra["n"] * 1e9
        if 1 in per_row and 2 in per_row:
            out.append(
                Target(
                    "SGD epoch per row, largest n <= 1.3x middle n",
                    be,
                    " / ".join(f"{v:.1f}" for v in per_row.values()) + " ns/row",
                    per_row[2] <= 1.3 * per_row[1],
                )
            )
        else:
            out.append(Target("SGD epoch per row, largest n <= 1.3x middle n", be, "-", None))
        r, ref = _get(results, "tiny_fit", be), _get(results, "tiny_fit", "numpy")
        out.append(
            Target(
                "tiny fit <= 100 us per call",
                be,
                _fmt_time(r.median) if r else "-",
                None if r is None else r.median <= 100e-6,
            )
        )
        sp = ref.median / r.median if r is not None and ref is not None else None
        out.append(
            Target(
                "tiny fit >= 40x numpy reference",
                be,
                f"{sp:.0f}x" if sp else "-",
                None if sp is None else sp >= 40.0,
            )
        )
        r, pf = _get(results, "poly3_fit", be), _get(results, "poly3_fit", "np.polyfit")
        if r is not None and pf is not None:
            ratio = pf.median / r.median
            err = r.extra.get("rel_err_vs_polyfit", math.inf)
            out.append(
                Target(
                    "poly3 on 1e7 points >= 100x np.polyfit, coef to 1e-8",
                    be,
                    f"{ratio:.1f}x, rel err {err:.1e}",
                    ratio >= 100.0 and err <= P.POLY_RTOL,
                )
            )
        else:
            out.append(
                Target("poly3 on 1e7 points >= 100x np.polyfit, coef to 1e-8", be, "-", None)
            )
        r0 = _get(results, "gd_precondition", f"{be} precondition=none")
        r1 = _get(results, "gd_precondition", f"{be} precondition=auto")
        ratio = r1.median / r0.median if r0 is not None and r1 is not None else None
        out.append(
            Target(
                "preconditioned full-batch epoch <= 1.05x unpreconditioned",
                be,
                f"{ratio:.3f}x" if ratio else "-",
                None if ratio is None else ratio <= 1.05,
            )
        )
    a_num, a_cy = _get(results, "adam_fit", "numba"), _get(results, "adam_fit", "cython")
    out.append(
        Target(
            "mini-batch Adam: cython within 10% of numba",
            "cython",
            f"{a_cy.median / a_num.median:.2f}x" if a_num and a_cy else "-",
            None if not (a_num and a_cy) else a_cy.median <= 1.1 * a_num.median,
        )
    )
    out += _auto_targets(results)
    for job in P.COLD_JOBS:
        r = _get(results, "numba_cold", f"numba cold {job}")
        out.append(
            Target(
                f"cold numba start, first fit of '{job}' <= 10 s",
                "numba",
                f"{r.median:.1f} s" if r else "-",
                None if r is None else r.median <= 10,
            )
        )
    return out


def _auto_targets(results: list[Result]) -> list[Target]:
    """``backend="auto"`` within 10 % of the fastest backend on every problem it serves."""
    from .backends import AUTO_ORDER, available_backends

    avail = available_backends()
    worst, where, measured = 1.0, "", 0
    for prob in sorted({r.problem for r in results}):
        pick = next((b for b in AUTO_ORDER if b in avail), None)
        chosen = _get(results, prob, pick) if pick else None
        rivals = [r for b in ("numba", "cython") if (r := _get(results, prob, b)) is not None]
        if chosen is None or len(rivals) < 2:
            continue
        measured += 1
        ratio = chosen.median / min(r.median for r in rivals)
        if ratio > worst:
            worst, where = ratio, prob
    if not measured:
        return [Target("backend='auto' within 10% of the fastest backend", "auto", "-", None)]
    return [
        Target(
            "backend='auto' within 10% of the fastest backend",
            "auto",
            f"worst {worst:.2f}x ({where or 'none'}) over {measured} problems",
            worst <= 1.10,
        )
    ]


# ---------------------------------------------------------------- output


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.3f} s"


def _table(rows: list[list[str]], header: list[str], right: set[int]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(r, widths))
        ).rstrip()

    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def format_results(
    problems: list[P.Problem], results: list[Result], summaries: dict[str, Any], repeats: int
) -> str:
    """The terminal table: one block of rows per problem."""
    header = ["problem / case", "median", "speedup", "GB/s", "% read bw", "1st call", ""]
    rows: list[list[str]] = []
    notes: list[str] = []
    by_problem: dict[str, list[Result]] = {}
    for r in results:
        by_problem.setdefault(r.problem, []).append(r)
    for prob in problems:
        rs = by_problem.get(prob.name)
        if not rs:
            continue
        rows.append([f"{prob.name}: {prob.title}", "", "", "", "", "", ""])
        for r in rs:
            label = f"  {r.case}" + ("  (reference)" if r.case == prob.reference else "")
            if r.status != "ok":
                rows.append([label, r.status, "", "", "", "", r.reason])
                continue
            mark = ""
            if r.note and r.kind != "probe":
                if r.note not in notes:
                    notes.append(r.note)
                mark = f"[{notes.index(r.note) + 1}]"
            rows.append(
                [
                    label,
                    _fmt_time(r.median),
                    f"{r.speedup:.2f}x" if r.speedup is not None else "",
                    f"{r.gbps:.1f}" if r.gbps is not None else "",
                    f"{100 * r.bw_fraction:.0f}%" if r.bw_fraction is not None else "",
                    _fmt_time(r.first_call),
                    mark,
                ]
            )
    lines = _table(rows, header, right={1, 2, 3, 4, 5})
    lines.append("")
    lines.append(
        f"median of {repeats} timed runs, the cases of a problem taking turns (one run "
        f"each per round, started once the previous run's threads are idle), after one "
        f"untimed first call ('1st call': "
        f"includes JIT compilation or loading numba's cache); speedup = reference "
        f"median / median."
    )
    probes = {k: v for k, v in summaries.items() if v}
    if probes:
        lines.append(
            "% read bw: GB/s over the bytes of X and y, relative to the faster read probe "
            "of the same problem in this run (a parallel numba sum, a numpy sum)."
        )
    lines += [f"[{i + 1}] {note}" for i, note in enumerate(notes)]
    lines += _compile_summary(results)
    return "\n".join(lines)


def compile_times(results: list[Result]) -> dict[str, float]:
    """Per compiled backend: the sum over its cases of (first call - median), in seconds.

    The first call of a case compiles its kernels (or loads them from numba's
    cache), which the timed runs exclude.
    """
    out: dict[str, float] = {}
    for r in results:
        if r.status == "ok" and r.backend in ("numba", "cython") and r.first_call is not None:
            out[r.backend] = out.get(r.backend, 0.0) + max(0.0, r.first_call - r.median / r.factor)
    return out


def _compile_summary(results: list[Result]) -> list[str]:
    ct = compile_times(results)
    if not ct:
        return []
    parts = ", ".join(f"{b} {t:.2f} s" for b, t in ct.items())
    return [f"compilation / cache loading, untimed (sum of first call - median): {parts}"]


def format_targets(targets: list[Target], sizes: P.Sizes) -> str:
    """The target checks that could be measured in this run, met or not."""
    rows = [
        [t.name, t.backend, t.measured, "met" if t.met else "NOT met"]
        for t in targets
        if t.met is not None
    ]
    lines = _table(rows, ["target", "backend", "measured", ""], right=set()) if rows else []
    skipped = sum(t.met is None for t in targets)
    if skipped:
        lines.append(
            f"{skipped} target checks not measured in this run (problem not selected or "
            f"backend not available)"
        )
    if sizes.name != "full":
        lines.append(
            f"(scale {sizes.name}: the targets are defined at full size; these checks "
            f"are indicative only)"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- selection


def _select_problems(spec: str | None) -> list[P.Problem]:
    allp = P.problems()
    if not spec:
        return allp
    pats = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = [p for p in allp if any(fnmatch.fnmatch(p.name, pat) for pat in pats)]
    if not chosen:
        raise ValueError(f"--problems {spec!r} matches none of {[p.name for p in allp]}")
    return chosen


_ANCHOR_KEYS = {"sklearn SGDRegressor": "sklearn", "np.polyfit": "polyfit"}


def _case_selected(case: P.Case, wanted: set[str] | None) -> bool:
    if wanted is None or case.kind == "probe":
        return True
    if case.kind == "anchor":
        return _ANCHOR_KEYS.get(case.label, case.label) in wanted
    return case.backend in wanted


def _progress(total: int, enabled: bool):
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, unit="case", file=sys.stderr, leave=False)
        except ImportError:
            pass
    return None


# ---------------------------------------------------------------- modes


def run_problems(
    sizes: P.Sizes,
    problems: list[P.Problem],
    wanted: set[str] | None,
    repeats: int,
    progress: bool = True,
) -> tuple[list[Result], dict[str, Any]]:
    """Time every selected case of ``problems``; returns the results and per-problem summaries."""
    data = P.Data(sizes)
    tasks = [
        (prob, case) for prob in problems for case in prob.cases if _case_selected(case, wanted)
    ]
    bar = _progress(len(tasks), progress)
    results: list[Result] = []
    summaries: dict[str, Any] = {}
    try:
        for prob in problems:
            mine = [c for (p, c) in tasks if p is prob]

            def tick(label: str, name: str = prob.name) -> None:
                if bar is not None:
                    bar.set_description(f"{name}: {label}"[:60])
                    bar.update(1)

            got = run_cases(prob, mine, data, repeats, tick)
            summaries[prob.name] = _finish_problem(prob, got)
            results += got
    finally:
        if bar is not None:
            bar.close()
    return results, summaries


def run_scaling(
    sizes: P.Sizes, wanted: set[str] | None, repeats: int, progress: bool = True
) -> list[dict[str, Any]]:
    """Time ``loss_and_grad`` (mse, float64) at ``sizes.scaling_n`` rows for every backend."""
    import fastgd

    backends = [b for b in fastgd.available_backends() if wanted is None or b in wanted]
    data = P.Data(sizes)
    out = []
    bar = _progress(len(sizes.scaling_n) * (len(backends) + 1), progress)
    try:
        for n in sizes.scaling_n:
            X, y = data.scaling(n)
            coef = np.linspace(-1.0, 1.0, X.shape[1])
            nbytes = X.nbytes + y.nbytes
            fns: list[tuple[str, Callable[[], Any]]] = [
                (b, partial(fastgd.loss_and_grad, X, y, coef, 0.5, backend=b)) for b in backends
            ]
            if importlib.util.find_spec("numba") is not None:
                probe = P.read_probe()
                flat = X.reshape(-1)
                # called in this iteration only
                fns.append(("read bandwidth (numba parallel sum)", lambda: probe(flat) + probe(y)))  # noqa: B023
            for name, fn in fns:
                if bar is not None:
                    bar.set_description(f"n={n:,}: {name}"[:60])
                fn()
                times, _ = time_call(fn, repeats)
                med = float(np.median(times))
                out.append(
                    {
                        "n": n,
                        "p": X.shape[1],
                        "case": name,
                        "median": med,
                        "ns_per_sample": med / n * 1e9,
                        "gbps": nbytes / med / 1e9,
                    }
                )
                if bar is not None:
                    bar.update(1)
            data.drop("scaling")
    finally:
        if bar is not None:
            bar.close()
    return out


def format_scaling(rows: list[dict[str, Any]], sizes: P.Sizes) -> str:
    p = rows[0]["p"] if rows else sizes.scaling_p
    table = [
        [
            f"{r['n']:,}",
            r["case"],
            _fmt_time(r["median"]),
            f"{r['ns_per_sample']:.2f}",
            f"{r['gbps']:.1f}",
        ]
        for r in rows
    ]
    lines = [
        (
            f"loss_and_grad (mse, float64) on make_linear(n, {p}): time per sample should stay "
            f"flat (it rises once the data no longer fit in the caches)"
        )
    ]
    lines += _table(table, ["n", "case", "median", "ns/sample", "GB/s"], right={0, 2, 3, 4})
    lines.append(
        f"{p} features so that n = 1e7 is {10_000_000 * (p + 1) * 8 / 1e9:.1f} GB of X and "
        f"y (100 features would be 8 GB)."
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``fastgd bench`` with parsed options (see :func:`add_arguments`).

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        The exit status: 0, or 2 for invalid options or a case that failed.

    Examples
    --------
    >>> import argparse
    >>> from fastgd import _bench
    >>> parser = argparse.ArgumentParser()
    >>> _bench.add_arguments(parser)
    >>> _bench.run(parser.parse_args(["--scale", "tiny", "--problems", "tiny_fit",
    ...                               "--repeats", "1", "--no-progress"]))  # doctest: +SKIP
    0
    """
    if getattr(args, "dask", False):
        from ._bench_dask import run_dask_bench, write_results

        out_d = run_dask_bench(
            int(getattr(args, "repeats", 5)), glm=not getattr(args, "no_glm", False)
        )
        jpath = getattr(args, "json", None)
        write_results(out_d, jpath, None if not jpath else os.path.splitext(jpath)[0] + ".txt")
        return 0
    try:
        sizes = P.get_sizes(getattr(args, "scale", None))
        repeats = int(getattr(args, "repeats", 5))
        if repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {repeats}")
        threads = getattr(args, "threads", None)
        if threads is not None and threads < 1:
            raise ValueError(f"--threads must be >= 1, got {threads}")
        spec = getattr(args, "backends", None)
        wanted = None if not spec else {s.strip() for s in spec.split(",") if s.strip()}
        problems = _select_problems(getattr(args, "problems", None))
    except ValueError as exc:
        print(f"fastgd bench: error: {exc}", file=sys.stderr)
        return 2
    progress = not getattr(args, "no_progress", False)
    scaling = getattr(args, "scaling", False)
    threads = threads or os.cpu_count() or 1
    out: dict[str, Any] = {"scale": asdict(sizes), "repeats": repeats, "threads": threads}

    with _Threads(threads):
        machine = machine_info()
        print(
            f"fastgd bench: scale {sizes.name} (P = {sizes.n:,} x {sizes.p} float64, polynomial "
            f"on {sizes.n_poly:,} points), {machine['cpu']}, {machine['cores']} cores, "
            f"threads {threads}, backends {machine['backends']}"
        )
        status = 0
        if scaling:
            rows = run_scaling(sizes, wanted, repeats, progress)
            print(format_scaling(rows, sizes))
            out["scaling"] = rows
        else:
            results, summaries = run_problems(sizes, problems, wanted, repeats, progress)
            print(format_results(problems, results, summaries, repeats))
            targets = evaluate_targets(results)
            print()
            print(format_targets(targets, sizes))
            out.update(
                results=[asdict(r) for r in results],
                read_bandwidth=summaries,
                compile_s=compile_times(results),
                targets=[asdict(t) for t in targets],
                problems={p.name: p.title for p in problems},
            )
            if any(r.status == "error" for r in results):
                status = 2
        machine = machine_info()  # now with the threading layer that ran
    out["machine"] = machine
    path = getattr(args, "json", None)
    if path:
        with open(path, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
        print(f"results written to {path}")
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fastgd._bench``."""
    parser = argparse.ArgumentParser(prog="fastgd bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
