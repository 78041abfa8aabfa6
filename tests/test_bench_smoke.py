"""``fastgd bench`` at tiny size: the table and the JSON have the promised shape."""

import argparse
import dataclasses
import json

import pytest

import fastgd
from fastgd import _bench, _problems

pytestmark = pytest.mark.slow


def _args(*argv):
    parser = argparse.ArgumentParser()
    _bench.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_sizes_from_name_factor_and_environment(monkeypatch):
    assert _problems.get_sizes("full").n == 1_000_000
    assert _problems.get_sizes("full").p == 100
    assert _problems.get_sizes("full").n_poly == 10_000_000
    assert _problems.get_sizes("0.1").n == 100_000
    monkeypatch.setenv(_problems.SCALE_ENV, "tiny")
    assert _problems.get_sizes().name == "tiny"
    with pytest.raises(ValueError, match="scale"):
        _problems.get_sizes("huge")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        _problems.get_sizes(2.0)


def test_every_problem_compares_every_backend():
    for prob in _problems.problems():
        backends = {c.backend for c in prob.cases if c.kind == "backend"}
        if prob.info.get("compiled_only"):  # a ratio among compiled cases: says why
            assert backends - {"numpy"}, prob.name
            continue
        assert "numpy" in backends and "numba" in backends, prob.name
        if prob.name != "rosenbrock":
            assert set(fastgd.backends.backend_names()) <= backends, prob.name
        assert prob.cases[0].backend == "numpy", prob.name


def test_bench_table_and_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    status = _bench.run(
        _args(
            "--scale",
            "tiny",
            "--repeats",
            "2",
            "--no-progress",
            "--threads",
            "2",
            "--problems",
            "loss_and_grad-mse-float64,sgd_epoch,tiny_fit",
            "--json",
            str(path),
        )
    )
    out = capsys.readouterr().out
    assert status == 0, out
    for name in (
        "loss_and_grad-mse-float64",
        "sgd_epoch",
        "tiny_fit",
        "median",
        "speedup",
        "GB/s",
        "% read bw",
        "target",
        "met",
    ):
        assert name in out
    assert "poly3_fit" not in out.split("target")[0]

    doc = json.loads(path.read_text())
    machine = doc["machine"]
    for key in ("cpu", "cores", "compiler", "date"):
        assert machine[key], key
    for key in ("numpy", "numba", "Cython", "fastgd"):
        assert key in machine["versions"]
    assert doc["scale"]["name"] == "tiny" and doc["repeats"] == 2

    results = doc["results"]
    assert {r["problem"] for r in results} == {"loss_and_grad-mse-float64", "sgd_epoch", "tiny_fit"}
    by = {(r["problem"], r["case"]): r for r in results}
    for backend in fastgd.available_backends():
        for prob in ("loss_and_grad-mse-float64", "sgd_epoch", "tiny_fit"):
            r = by[(prob, backend)]
            assert r["status"] == "ok", r["reason"]
            assert len(r["times"]) == 2 and r["median"] > 0
            assert r["speedup"] is not None and r["first_call"] is not None
    assert by[("tiny_fit", "numpy")]["speedup"] == pytest.approx(1.0)
    lag = [
        r for r in results if r["problem"] == "loss_and_grad-mse-float64" and r["status"] == "ok"
    ]
    assert all(r["gbps"] > 0 and r["bw_fraction"] > 0 for r in lag)
    probes = [r for r in lag if r["kind"] == "probe"]
    assert probes and max(r["bw_fraction"] for r in probes) == pytest.approx(1.0)
    assert doc["read_bandwidth"]["loss_and_grad-mse-float64"]["read_gbps"] > 0
    skipped = [r for r in results if r["status"] == "skipped"]
    assert all(r["reason"] for r in skipped)
    names = {t["name"] for t in doc["targets"]}
    assert any("SGDRegressor" in n for n in names) and any("100 us" in n for n in names)


def test_bench_scaling_mode(tmp_path, capsys):
    path = tmp_path / "scaling.json"
    status = _bench.run(
        _args(
            "--scale",
            "tiny",
            "--scaling",
            "--repeats",
            "1",
            "--no-progress",
            "--backends",
            "numpy",
            "--json",
            str(path),
        )
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "ns/sample" in out
    rows = json.loads(path.read_text())["scaling"]
    sizes = _problems.get_sizes("tiny")
    assert sorted({r["n"] for r in rows}) == sorted(sizes.scaling_n)
    assert all(r["ns_per_sample"] > 0 for r in rows if r["case"] == "numpy")


@pytest.mark.parametrize("argv", [["--repeats", "0"], ["--problems", "nope"], ["--scale", "huge"]])
def test_bench_rejects_bad_options(argv, capsys):
    assert _bench.run(_args("--no-progress", *argv)) == 2
    assert "error" in capsys.readouterr().err


def test_extrapolated_references_are_labelled_and_positive():
    sizes = dataclasses.replace(_problems.get_sizes("tiny"), poly_ref_epochs=1, sgd_ref_rows=500)
    probs = [p for p in _problems.problems() if p.name in ("poly3_fit", "sgd_epoch")]
    results, _ = _bench.run_problems(
        sizes, probs, {"numpy", "numba", "polyfit"}, repeats=2, progress=False
    )
    ref = {r.problem: r for r in results if r.case == "numpy"}
    for name in ("poly3_fit", "sgd_epoch"):
        assert ref[name].status == "ok", ref[name].reason
        assert ref[name].note.startswith(("extrapolated", "timed on"))
        assert ref[name].median > 0 and ref[name].factor >= 1
    poly = {r.case: r for r in results if r.problem == "poly3_fit"}
    if "numba" in fastgd.available_backends():
        assert poly["numba"].extra["rel_err_vs_polyfit"] <= _problems.POLY_RTOL
        assert str(poly["numba"].extra["n_iter"]) in ref["poly3_fit"].note
