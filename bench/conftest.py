"""pytest-benchmark suite: every problem of ``fastgd._problems`` for every case.

Run at full size (P = 1,000,000 x 100 float64, polynomial on 1e7 points)::

    python -m pytest bench/ --benchmark-only --benchmark-json=bench/results.json

and at CI size, without timing::

    FASTGD_BENCH_SCALE=tiny python -m pytest bench/ --benchmark-disable -q

Each problem is one pytest-benchmark group, so the table compares its cases
(numpy reference, numba, cython, outside anchors, read-bandwidth probe)
directly.  Every case gets one untimed warm-up call first (JIT compilation,
cache loading) whose result is also checked.  Cases that cannot run here (a
backend not built, scikit-learn not installed) are skipped with the reason.
Reference times that are extrapolated (see ``fastgd._problems``) carry
``time_factor``, ``time_offset`` and ``note`` in ``extra_info`` and are listed
at the end of the run; the time they stand for is ``time_offset + time_factor
* measured``, which ``bench/plot_results.py`` computes.
"""

from __future__ import annotations

import re
import time

import pytest

import fastgd
from fastgd import _bench, _problems as P

SIZES = P.get_sizes()
PROBLEMS = P.problems()
#: Cases faster than this are left to pytest-benchmark's calibration (many
#: rounds, several calls per round); slower ones run ``ROUNDS`` rounds of one call.
FAST = 0.02
ROUNDS = 5

_notes: list[str] = []
_extrapolated: list[str] = []
_results: list[_bench.Result] = []


def pytest_report_header(config):
    return (
        f"fastgd benchmarks: scale {SIZES.name} (P = {SIZES.n:,} x {SIZES.p}, polynomial "
        f"{SIZES.n_poly:,} points; set {P.SCALE_ENV}=full|small|tiny|<factor>); "
        f"backends available: {fastgd.available_backends()}"
    )


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def cases_of(family: str) -> list:
    """``pytest.param(problem, case)`` for every case of the problems in ``family``."""
    return [
        pytest.param(prob, case, id=f"{prob.name}-{_id(case.label)}")
        for prob in PROBLEMS
        if prob.family == family
        for case in prob.cases
    ]


@pytest.fixture(scope="session")
def data() -> P.Data:
    """The benchmark datasets, generated once per session."""
    return P.Data(SIZES)


def run_case(benchmark, data: P.Data, prob: P.Problem, case: P.Case) -> None:
    """Warm up, check and time one case into ``prob.name``'s group."""
    reason = case.missing()
    if reason:
        pytest.skip(reason)
    try:
        prep = case.prepare(data)
    except P.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = prob.name
    benchmark.extra_info.update(
        problem=prob.name,
        case=case.label,
        kind=case.kind,
        reference=prob.reference,
        scale=SIZES.name,
        time_factor=prep.factor,
        time_offset=prep.offset,
        note=prep.note,
    )
    if prob.nbytes is not None:
        benchmark.extra_info["bytes"] = prob.nbytes(data)
    if benchmark.disabled:
        result = benchmark(prep.fn)
        if prep.check is not None:
            prep.check(result)
        return
    t0 = time.perf_counter()
    result = prep.fn()  # untimed warm-up: JIT compilation / cache load happen here
    benchmark.extra_info["first_call_s"] = time.perf_counter() - t0
    if prep.check is not None:
        benchmark.extra_info.update(prep.check(result))
    once = benchmark.extra_info["first_call_s"]
    if case.backend not in (None, "numpy"):  # the first call compiled: time a second one
        t0 = time.perf_counter()
        prep.fn()
        once = time.perf_counter() - t0
    if once < FAST:
        benchmark(prep.fn)
    else:
        benchmark.pedantic(prep.fn, rounds=ROUNDS, iterations=1)
    if prep.note:
        _notes.append(f"{prob.name} / {case.label}: {prep.note}")
    if prep.factor != 1.0 or prep.offset != 0.0:
        _extrapolated.append(prob.name)
    res = _bench.Result(
        prob.name,
        case.label,
        case.kind,
        case.backend,
        factor=prep.factor,
        note=prep.note,
        median=prep.report(benchmark.stats.stats.median),
        extra=dict(benchmark.extra_info),
    )
    if prob.nbytes is not None:
        res.nbytes = benchmark.extra_info["bytes"]
        res.gbps = res.nbytes / res.median / 1e9
    _results.append(res)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _results:
        for prob in PROBLEMS:
            _bench._finish_problem(prob, [r for r in _results if r.problem == prob.name])
        terminalreporter.section("fastgd: speed targets (medians of this run)")
        for line in _bench.format_targets(_bench.evaluate_targets(_results), SIZES).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            "% read bandwidth: against the faster read probe of the same group; "
            "'fastgd bench' prints the full table"
        )
    if _notes:
        terminalreporter.section("fastgd: notes on the cases")
        for line in _notes:
            terminalreporter.write_line(line)
    if _extrapolated:
        terminalreporter.write_line(
            f"extrapolated references ({', '.join(_extrapolated)}): the table shows the measured "
            "time of the reduced work; the time it stands for is time_offset + time_factor * "
            "median (extra_info), as bench/plot_results.py computes it"
        )
