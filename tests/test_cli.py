"""The ``fastgd`` command, run as a user runs it: ``python -m fastgd ...`` in a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastgd
from fastgd import _registry as reg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastgd.__file__)))


def run_cli(*args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, "-m", "fastgd", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def assert_clean_error(proc, *words):
    """Exit status 2 and exactly one line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def linear_csv(tmp_path_factory):
    X, y, coef, b = fastgd.datasets.make_linear(400, 3, noise=0.01, seed=5)
    path = tmp_path_factory.mktemp("data") / "data.csv"
    table = np.c_[X[:, 0], y, X[:, 1:]]  # target in the middle
    np.savetxt(path, table, delimiter=",", header="a,target,b,c", comments="")
    return path, coef, b


def test_help_lists_the_subcommands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for cmd in ("demo", "fit", "bench"):
        assert cmd in proc.stdout
    proc = run_cli("fit", "--help")
    assert proc.returncode == 0
    for name in list(reg.LOSSES) + reg.optimizer_names() + list(reg.SCHEDULES):
        assert name in proc.stdout  # choices come from the registry
    for hyper in reg.HYPER_NAMES:
        assert "--" + hyper.replace("_", "-") in proc.stdout
    assert run_cli("--version").stdout.strip() == f"fastgd {fastgd.__version__}"


def test_fit_csv_by_name_and_json(linear_csv, tmp_path):
    path, coef, b = linear_csv
    out = tmp_path / "res.json"
    proc = run_cli(
        "fit", path, "--target", "target", "--tol", "1e-10", "--max-iter", "5000", "--json", out
    )
    assert proc.returncode == 0, proc.stderr
    assert "converged" in proc.stdout and "intercept" in proc.stdout
    res = json.loads(out.read_text())
    assert list(res["coef"]) == ["a", "b", "c"]
    np.testing.assert_allclose(list(res["coef"].values()), coef, atol=5e-3)
    assert abs(res["intercept"] - b) < 5e-3
    assert res["status"] == "converged" and res["n_samples"] == 400 and res["r2"] > 0.999
    assert res["target"] == "target" and res["loss"] == "mse"


def test_fit_csv_by_index_with_options(linear_csv, tmp_path):
    path, coef, b = linear_csv
    out = tmp_path / "res.json"
    proc = run_cli(
        "fit",
        path,
        "--target",
        "1",
        "--features",
        "a,c",
        "--loss",
        "huber",
        "--delta",
        "0.5",
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--beta1",
        "0.8",
        "--batch-size",
        "32",
        "--max-iter",
        "50",
        "--backend",
        "numpy",
        "--precondition",
        "none",
        "--json",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert list(res["coef"]) == ["a", "c"]
    assert res["optimizer"] == "adam" and res["loss"] == "huber" and res["backend"] == "numpy"
    assert res["lr"] == 0.05 and res["precondition"] == "none"


def test_fit_npy_polynomial(tmp_path):
    x, y, coef, b = fastgd.datasets.make_polynomial(500, 2, noise=0.0, seed=1)
    np.save(tmp_path / "d.npy", np.c_[y, x])
    out = tmp_path / "r.json"
    proc = run_cli(
        "fit",
        tmp_path / "d.npy",
        "--target",
        "0",
        "--degree",
        "2",
        "--optimizer",
        "momentum",
        "--tol",
        "1e-12",
        "--max-iter",
        "20000",
        "--json",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert list(res["coef"]) == ["1^1", "1^2"]
    np.testing.assert_allclose(list(res["coef"].values()), coef, atol=1e-6)


def test_fit_npz_with_X_and_y(tmp_path):
    X, y, coef, b = fastgd.datasets.make_linear(300, 2, noise=0.0, seed=2)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "r.json"
    proc = run_cli(
        "fit",
        tmp_path / "d.npz",
        "--tol",
        "1e-12",
        "--max-iter",
        "5000",
        "--float32",
        "--json",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    np.testing.assert_allclose(list(res["coef"].values()), coef, atol=1e-4)


@pytest.mark.slow
def test_demo_tiny(tmp_path):
    out = tmp_path / "plots"
    proc = run_cli("demo", "--scale", "0.0005", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for heading in ("Data", "MSE vs Huber", "Closed-form", "Optimizers", "Backends", "Done in"):
        assert heading in text
    for be in fastgd.available_backends():
        assert be in text
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "backends.png",
        "cubic_fit.png",
        "mse_vs_huber.png",
        "optimizers.png",
        "path.png",
        "path_preconditioned.png",
    ]
    assert all((out / p).stat().st_size > 5000 for p in pngs)
    assert "Traceback" not in proc.stderr


def test_demo_numbers_and_no_plots(tmp_path):
    import io

    from fastgd._demo import run_demo

    buf = io.StringIO()
    r = run_demo(scale=0.002, out=tmp_path / "none", plots=False, backend="numpy", stream=buf)
    assert not (tmp_path / "none").exists() and r["plots"] == []
    assert r["backend"] == "numpy"
    assert r["huber"]["coef_err"] < r["mse"]["coef_err"] / 3  # Huber resists the outliers
    assert r["lstsq_rel_diff"] < 1e-6  # the MSE fit is the least-squares solution
    assert set(r["backends"]["cubic MSE, GD"]) == set(fastgd.available_backends())
    assert r["backends"]["cubic MSE, GD"]["numpy"]["speedup"] == 1.0
    assert "numpy" in buf.getvalue()


@pytest.mark.parametrize(
    "args, words",
    [
        (["fit", "missing.csv", "--target", "y"], ["missing.csv", "No such file"]),
        (["fit", "{csv}", "--target", "nope"], ["'nope' not found", "target"]),
        (["fit", "{csv}", "--target", "9"], ["out of range"]),
        (["fit", "{csv}"], ["--target"]),
        (["fit", "{csv}", "--target", "target", "--loss", "l1"], ["--loss", "invalid choice"]),
        (["fit", "{csv}", "--target", "target", "--lr", "fast"], ["--lr"]),
        (["fit", "{csv}", "--target", "target", "--lr", "-1"], ["lr"]),
        (["fit", "{csv}", "--target", "target", "--max-iter", "0"], ["max_iter"]),
        (["fit", "{csv}", "--target", "target", "--max-iter", "ten"], ["--max-iter"]),
        (["fit", "{csv}", "--target", "target", "--momentum", "1.5"], ["momentum"]),
        (["fit", "{csv}", "--target", "target", "--degree", "2"], ["--degree", "one feature"]),
        (["fit", "{csv}", "--target", "target", "--backend", "gpu"], ["--backend"]),
        (["fit", "{bad}", "--target", "y"], ["not a numeric CSV"]),
        (["fit", "{nohdr}", "--target", "0"], ["header"]),
        (["fit", "{nan}", "--target", "y"], ["contains nan"]),
        (["fit", "{npy1d}", "--target", "0"], ["2-D"]),
        (["demo", "--scale", "-1"], ["scale"]),
        (["nosuchcommand"], ["invalid choice"]),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, linear_csv, args, words):
    files = {
        "csv": linear_csv[0],
        "bad": tmp_path / "bad.csv",
        "nohdr": tmp_path / "nohdr.csv",
        "nan": tmp_path / "nan.csv",
        "npy1d": tmp_path / "v.npy",
    }
    files["bad"].write_text("x,y\n1,2\n3,abc\n")
    files["nohdr"].write_text("1,2\n3,4\n")
    files["nan"].write_text("x,y\n1,2\nnan,4\n")
    np.save(files["npy1d"], np.arange(5.0))
    proc = run_cli(*[a.format(**files) for a in args])
    assert_clean_error(proc, *words)


def test_bench_is_wired_lazily():
    proc = run_cli("bench", "--help")
    try:
        import fastgd._bench  # noqa: F401
    except ModuleNotFoundError:
        assert_clean_error(proc, "bench", "fastgd._bench")
    else:
        assert proc.returncode == 0, proc.stderr
        assert "usage: fastgd bench" in proc.stdout


def test_main_in_process_returns_status(capsys):
    from fastgd.cli import main

    assert main(["--help"]) == 0
    assert main(["fit", "no-such-file.csv", "--target", "y"]) == 2
    assert "error" in capsys.readouterr().err


def test_version_is_the_one_in_fastgd_version_py(capsys):
    """``fastgd --version`` and ``fastgd.__version__`` print fastgd/_version.py's version,
    the one the package metadata is built with (pyproject.toml reads it there)."""
    from fastgd import _version
    from fastgd.cli import main

    assert fastgd.__version__ == _version.__version__
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fastgd {_version.__version__}"
    path = os.path.join(ROOT, "pyproject.toml")
    if os.path.exists(path):  # a source checkout: the metadata's version is read there
        with open(path, encoding="utf-8") as fh:
            pyproject = fh.read()
        assert 'dynamic = ["version"]' in pyproject
        assert 'version = { attr = "fastgd._version.__version__" }' in pyproject
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"fastgd {fastgd.__version__}"
