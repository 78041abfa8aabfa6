"""Digits reached on badly conditioned least squares: fastgd's defaults against numpy.

    python bench/lre_table.py [--backend cython]

Each design has an exact answer (y is built without noise from known
coefficients, so the least-squares coefficients are those).  The digits are
the LRE, ``-log10(max_j |c_j - c*_j| / |c*_j|)``, of fastgd's full-batch gd with
its defaults (``lr="auto"``, ``precondition="auto"``; ``tol=1e-15``,
``max_iter=1_000_000``), of ``np.polynomial.Polynomial.fit(...).convert()`` and
of ``np.linalg.lstsq`` on the monomial (or raw) design.  17 means exact.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastgd


def lre(got: np.ndarray, ref: np.ndarray) -> float:
    err = float(np.max(np.abs(np.asarray(got, float) - ref) / np.abs(ref)))
    return -np.log10(err) if err > 0 else 17.0


def designs():
    x = np.arange(21.0)
    yield "degree 5, x = 0..20", x, np.polynomial.polynomial.polyval(x, np.ones(6)), 5, np.ones(6)
    for lo, hi, k in ((-9.0, -3.0, 10), (0.0, 20.0, 10), (3.0, 10.0, 4), (1e3, 1e3 + 7, 3)):
        x = np.linspace(lo, hi, 200)
        c = np.ones(k + 1)
        yield f"degree {k}, x in [{lo:g}, {hi:g}]", x, np.polynomial.polynomial.polyval(x, c), k, c
    rng = np.random.default_rng(0)
    z = rng.normal(size=(600, 5))
    X = np.c_[
        1e-3 * z[:, 0],
        1e5 * z[:, 1],
        1e3 + 10 * z[:, 2],
        -50 + z[:, 3],
        -50 + z[:, 3] + 0.045 * z[:, 4],
    ]
    w = np.array([1e3, 1e-5, 0.01, 1.0, -2.0])
    yield ("linear: scales 1e-3..1e5, offsets, corr 0.999", X, X @ w + 7.0, None, np.r_[7.0, w])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    rows = []
    for name, X, y, k, truth in designs():
        fastgd.fit(X, y, degree=k, backend=args.backend, max_iter=2)  # compile / warm up
        t0 = time.perf_counter()
        res = fastgd.fit(
            X, y, degree=k, tol=1e-15, max_iter=1_000_000, backend=args.backend, record=None
        )
        el = time.perf_counter() - t0
        got = np.r_[res.intercept, res.coef]
        none = fastgd.fit(
            X,
            y,
            degree=k,
            tol=1e-15,
            max_iter=100_000,
            backend=args.backend,
            record=None,
            precondition="none",
        )
        if k:
            pf = lre(np.polynomial.Polynomial.fit(X, y, k).convert().coef, truth)
            A = np.vander(X, k + 1, increasing=True)
        else:
            pf = float("nan")
            A = np.c_[np.ones(len(y)), X]
        ls = lre(np.linalg.lstsq(A, y, rcond=None)[0], truth)
        rows.append(
            (
                name,
                lre(got, truth),
                res.n_iter,
                el,
                pf,
                ls,
                lre(np.r_[none.intercept, none.coef], truth),
            )
        )
    print(f"backend: {res.backend}")
    print(
        "| design | fastgd (defaults) | epochs | time | Polynomial.fit | lstsq | fastgd, precondition='none', 1e5 epochs |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, a, it, el, pf, ls, nn in rows:
        pfs = "-" if np.isnan(pf) else f"{pf:.1f}"
        print(f"| {name} | {a:.1f} | {it} | {el * 1e3:.1f} ms | {pfs} | {ls:.1f} | {nn:.1f} |")


if __name__ == "__main__":
    main()
