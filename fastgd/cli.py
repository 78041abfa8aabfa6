"""The ``fastgd`` command: ``demo``, ``fit`` and ``bench``.

Every subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and is imported only when its subcommand runs, so ``fastgd --help`` stays fast.
User errors (bad options, unreadable files, invalid data) print one line on
stderr and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__, _registry as reg

#: subcommand -> (module, one-line help).  Modules are imported lazily.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("fastgd._demo", "fit large synthetic problems: losses, optimizers, backends, plots"),
    "fit": ("fastgd.cli", "fit a CSV / .npy / .npz file and print the coefficients"),
    "bench": ("fastgd._bench", "benchmark the backends"),
    "compile": (
        "fastgd._compile",
        "compile the numba kernels ahead of time (CI, container images)",
    ),
}


class UsageError(Exception):
    """A problem with the command line or the user's file (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line instead of the usage block."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line_warnings(
    message: Any,
    category: type,
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    print(f"fastgd: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------- fastgd fit


def _hyper_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``fastgd fit`` (choices read from the registries).

    Parameters
    ----------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> import argparse
    >>> from fastgd.cli import add_arguments
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["data.csv", "--target", "y", "--loss", "huber"]).loss
    'huber'
    """
    from .backends import backend_names

    parser.add_argument(
        "data",
        metavar="DATA",
        help="a CSV file with a header row, a .npy 2-D array, a .npz with arrays "
        "X and y (or one 2-D array), or a .zarr store with arrays X and y "
        "(fitted chunk by chunk with dask; see --dask)",
    )
    parser.add_argument(
        "--target",
        metavar="COL",
        help="the column to predict: a header name or a 0-based index "
        "(not needed for a .npz with X and y)",
    )
    parser.add_argument(
        "--features",
        metavar="COLS",
        help="comma-separated columns to use as features (default: all others)",
    )
    parser.add_argument("--delimiter", default=",", help="CSV field delimiter (default ',')")
    parser.add_argument("--float32", action="store_true", help="compute in float32")
    g = parser.add_argument_group("model")
    g.add_argument("--loss", choices=list(reg.LOSSES), default="mse")
    g.add_argument("--delta", type=float, default=1.0, help="Huber threshold (default 1.0)")
    g.add_argument(
        "--degree",
        type=int,
        default=None,
        help="fit a polynomial of this degree in the single feature column",
    )
    g.add_argument("--l2", type=float, default=0.0, help="ridge penalty (default 0)")
    g.add_argument("--no-intercept", action="store_true", help="fit without an intercept")
    g = parser.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=reg.optimizer_names(), default="gd")
    g.add_argument("--lr", default="auto", help="step size, a positive number or 'auto' (default)")
    g.add_argument("--schedule", choices=list(reg.SCHEDULES), default="constant")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="rows per mini-batch (default: full batch; 1 is SGD)",
    )
    g.add_argument("--max-iter", type=int, default=1000, help="maximum epochs (default 1000)")
    g.add_argument("--tol", type=float, default=1e-6, help="stopping tolerance (default 1e-6)")
    g.add_argument("--seed", type=int, default=0, help="seed of the mini-batch order (default 0)")
    g.add_argument("--backend", choices=["auto"] + backend_names(), default="auto")
    g.add_argument(
        "--precondition",
        choices=["auto", "none"],
        default="auto",
        help="fit in a well-conditioned basis (auto, default) or on the raw coefficients (none)",
    )
    for name in reg.HYPER_NAMES:
        g.add_argument(
            _hyper_flag(name),
            dest=name,
            type=float,
            default=None,
            help=f"hyperparameter {name} (default {reg.HYPER_DEFAULTS[name]:g})",
        )
    g = parser.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="also write the coefficients and summary as JSON")
    g = parser.add_argument_group("dask (for a .zarr DATA; needs the dask extra)")
    g.add_argument(
        "--dask",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on a dask.distributed cluster: the scheduler at ADDRESS "
        "(tcp://host:8786), or a LocalCluster started here when ADDRESS is "
        "omitted (default without --dask: dask's local scheduler)",
    )
    g.add_argument("--progress", action="store_true", help="show a progress bar")


def _column(spec: str, names: list[str]) -> int:
    spec = spec.strip()
    if spec in names:
        return names.index(spec)
    try:
        idx = int(spec)
    except ValueError:
        raise UsageError(f"column {spec!r} not found; columns are {names}") from None
    if not -len(names) <= idx < len(names):
        raise UsageError(f"column index {idx} out of range for {len(names)} columns")
    return idx % len(names)


def _split(
    table: np.ndarray, names: list[str], target: str | None, features: str | None
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    if target is None:
        raise UsageError("--target COL is required for this file")
    t = _column(target, names)
    if features:
        cols = [_column(c, names) for c in features.split(",")]
        if t in cols:
            raise UsageError(f"the target column {names[t]!r} is also listed in --features")
    else:
        cols = [c for c in range(len(names)) if c != t]
    return table[:, cols], table[:, t], [names[c] for c in cols], names[t]


def load_data(
    path: str, target: str | None = None, features: str | None = None, delimiter: str = ","
) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Read a data file for ``fastgd fit``.

    Parameters
    ----------
    path : str
        ``.csv`` (or any other extension): text with a header row naming the
        columns, numbers only below it.  ``.npy``: a 2-D array whose columns are
        named by their index (memory-mapped, not read whole).  ``.npz``: arrays
        ``X`` (n, p) and ``y`` (n,) used as they are (``target`` and
        ``features`` are then ignored), or a single 2-D array read like a .npy.
    target : str, optional
        The column to predict, by header name or 0-based index.
    features : str, optional
        Comma-separated feature columns (default: all but the target).
    delimiter : str
        CSV field delimiter.

    Returns
    -------
    X : ndarray, shape (n, p)
    y : ndarray, shape (n,)
    feature_names : list of str
    target_name : str

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from fastgd.cli import load_data
    >>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("a,b,y\\n1,2,3\\n4,5,6\\n")
    >>> X, y, names, t = load_data(path, "y")
    >>> X.tolist(), y.tolist(), names, t
    ([[1.0, 2.0], [4.0, 5.0]], [3.0, 6.0], ['a', 'b'], 'y')
    """
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".zarr":  # dask arrays: read chunk by chunk where the fit runs
        from ._demo_dask import open_dataset

        X, y = open_dataset(path)
        if X.ndim == 1:
            X = X[:, None]
        return X, y, [str(i) for i in range(X.shape[1])], "y"
    if ext == ".npy":
        table = np.load(path, mmap_mode="r", allow_pickle=False)
        if table.ndim != 2:
            raise UsageError(f"{path}: expected a 2-D array, got shape {table.shape}")
        return _split(table, [str(i) for i in range(table.shape[1])], target, features)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if "X" in keys and "y" in keys:
                X, y = z["X"], z["y"]
                if X.ndim == 1:
                    X = X.reshape(-1, 1)
                if X.ndim != 2:
                    raise UsageError(f"{path}: X must be 2-D, got shape {X.shape}")
                return X, y, [str(i) for i in range(X.shape[1])], "y"
            if len(keys) != 1:
                raise UsageError(
                    f"{path}: expected arrays 'X' and 'y', or a single 2-D array; found {keys}"
                )
            table = z[keys[0]]
        if table.ndim != 2:
            raise UsageError(f"{path}: expected a 2-D array, got shape {table.shape}")
        return _split(table, [str(i) for i in range(table.shape[1])], target, features)
    with open(path, encoding="utf-8") as fh:
        header = fh.readline()
    names = [h.strip().strip('"') for h in header.strip().split(delimiter)]
    if not header.strip() or not names:
        raise UsageError(f"{path}: empty file (expected a header row and data)")
    try:
        [float(h) for h in names]
    except ValueError:
        pass
    else:
        raise UsageError(
            f"{path}: the first row looks like data; a CSV needs a header row naming the columns"
        )
    try:
        table = np.loadtxt(
            path, delimiter=delimiter, skiprows=1, dtype=np.float64, ndmin=2, encoding="utf-8"
        )
    except ValueError as exc:
        raise UsageError(f"{path}: not a numeric CSV ({exc})") from None
    if table.shape[0] == 0:
        raise UsageError(f"{path}: no data rows below the header")
    if table.shape[1] != len(names):
        raise UsageError(
            f"{path}: the header has {len(names)} columns but the data has {table.shape[1]}"
        )
    return _split(table, names, target, features)


def _lr(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"--lr must be a positive number or 'auto', got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    """Run ``fastgd fit`` with parsed arguments; returns the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        As produced by a parser set up with :func:`add_arguments`.

    Returns
    -------
    int
        0 on success (whatever the fit's status), 2 on a user error.

    Examples
    --------
    >>> import argparse, os, tempfile, numpy as np
    >>> from fastgd.cli import add_arguments, run
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, X=np.arange(5.0).reshape(-1, 1), y=2 * np.arange(5.0) + 1)
    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> run(p.parse_args([path, "--tol", "1e-10", "--max-iter", "5000"])) # doctest: +ELLIPSIS
    fastgd fit: ...
    0
    """
    if getattr(args, "dask", None) is not None:
        from ._demo_dask import cluster

        with cluster(None if args.dask == "local" else args.dask):
            return _run(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .api import fit

    X, y, names, tname = load_data(args.data, args.target, args.features, args.delimiter)
    if args.float32:
        X, y = X.astype(np.float32), y.astype(np.float32)
    degree = args.degree
    if degree is not None:
        if X.shape[1] != 1:
            raise UsageError(
                f"--degree needs exactly one feature column, got {X.shape[1]} "
                f"({names}); choose one with --features"
            )
        X = X[:, 0]
        names = [f"{names[0]}^{j}" for j in range(1, degree + 1)]
    hyper = {k: getattr(args, k) for k in reg.HYPER_NAMES if getattr(args, k) is not None}
    res = fit(
        X,
        y,
        loss=args.loss,
        delta=args.delta,
        degree=degree,
        fit_intercept=not args.no_intercept,
        l2=args.l2,
        optimizer=args.optimizer,
        lr=_lr(args.lr),
        schedule=args.schedule,
        batch_size=args.batch_size,
        max_iter=args.max_iter,
        tol=args.tol,
        seed=args.seed,
        backend=args.backend,
        progress=args.progress,
        precondition=args.precondition,
        **hyper,
    )
    pred = res.predict(X)  # (lazy on dask arrays: the sums below are one pass)
    resid = y.astype(np.float64) - pred
    ss_tot = float(np.sum((y - np.mean(y, dtype=np.float64)) ** 2))
    r2 = 1.0 - float(np.sum(resid * resid)) / ss_tot if ss_tot > 0 else math.nan
    summary = {
        "data": args.data,
        "target": tname,
        "n_samples": len(y),
        "loss": args.loss,
        "optimizer": res.info.get("optimizer"),
        "backend": res.backend,
        "degree": degree,
        "status": res.status,
        "converged": res.converged,
        "n_iter": res.n_iter,
        "objective": res.objective,
        "r2": r2,
        "lr": res.lr,
        "precondition": res.precondition,
        "elapsed": res.elapsed,
        "coef": {n: float(c) for n, c in zip(names, res.coef)},
        "intercept": res.intercept,
    }
    w = max([len(n) for n in names] + [len("intercept")])
    print(f"fastgd fit: {args.data}  ({len(y):,} rows, target {tname!r})")
    print(
        f"  {'loss':<10}{args.loss}   optimizer {summary['optimizer']}   backend {res.backend}"
        f"   lr {res.lr:.4g}"
    )
    print(f"  {'status':<10}{res.status} after {res.n_iter} epochs in {res.elapsed:.3f} s")
    print(f"  {'objective':<10}{res.objective:.6g}   R^2 {r2:.6f}")
    print(f"  {'parameter':<{w}}  value")
    for n, c in summary["coef"].items():
        print(f"  {n:<{w}}  {c: .8g}")
    print(f"  {'intercept':<{w}}  {res.intercept: .8g}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, allow_nan=True)
            fh.write("\n")
        print(f"  written: {args.json}")
    return 0


# ---------------------------------------------------------------- main


def _subcommand(argv: Sequence[str]) -> str | None:
    for a in argv:
        if not a.startswith("-"):
            return a
    return None


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    """The ``fastgd`` argument parser.

    Parameters
    ----------
    load : str, optional
        The subcommand whose options to add (its module is imported); the other
        subcommands are listed without importing anything.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> from fastgd.cli import build_parser
    >>> "demo" in build_parser().format_help()
    True
    """
    parser = _Parser(prog="fastgd", description="fastgd: fast, verified gradient descent.")
    parser.add_argument("--version", action="version", version=f"fastgd {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}", parser_class=_Parser
    )
    for name, (module, help_) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == load:
            mod = sys.modules[__name__] if module == __name__ else importlib.import_module(module)
            mod.add_arguments(sp)
            sp.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastgd`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 success, 2 bad usage or data, 130 interrupted.

    Examples
    --------
    >>> from fastgd.cli import main
    >>> main(["fit", "no-such-file.csv", "--target", "y"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = _subcommand(argv)
    load = cmd if cmd in SUBCOMMANDS else None
    try:
        try:
            parser = build_parser(load)
        except ModuleNotFoundError as exc:
            if load and exc.name == SUBCOMMANDS[load][0]:
                print(
                    f"fastgd {load}: error: the {load} command is not available in this "
                    f"installation ({exc.name} is missing)",
                    file=sys.stderr,
                )
                return 2
            raise
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings
            return int(args._run(args))
    except SystemExit as exc:  # argparse: --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print("fastgd: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, TypeError, OSError, ImportError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror and exc.filename:
            msg = f"{exc.filename}: {exc.strerror}"
        print(f"fastgd {cmd or ''}: error: {msg}".replace("  ", " "), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
