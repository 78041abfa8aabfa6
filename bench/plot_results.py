"""Plot the speedup of every backend and anchor over the numpy reference, per problem.

Reads either JSON that fastgd writes:

* ``fastgd bench --json results.json`` (uses the medians as reported, with
  extrapolated reference times already applied), or
* ``python -m pytest bench/ --benchmark-only --benchmark-json=results.json``
  (uses each benchmark's median, and applies ``time_offset + time_factor *
  median`` from ``extra_info`` to the extrapolated reference times).

Usage::

    python bench/plot_results.py results.json -o docs/speedup.png

One horizontal bar per (problem, case), grouped by problem, on a log axis;
the reference of each problem is the line at 1x.  Read-bandwidth probes are
left out (they are not ways of solving the problem).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

#: Colours per case family, in legend order.
_COLOURS = {
    "numba": "#1f77b4",
    "cython": "#ff7f0e",
    "sklearn": "#2ca02c",
    "np.polyfit": "#9467bd",
    "other": "#7f7f7f",
}


def _family(case: str) -> str:
    for key in ("numba", "cython", "sklearn", "np.polyfit"):
        if case.startswith(key) or key in case.split():
            return key
    return "other"


def load(path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows ``{problem, case, kind, median, reference}`` and run info from either JSON format.

    Parameters
    ----------
    path : str

    Returns
    -------
    rows : list of dict
    info : dict
        ``machine`` / ``scale`` when the file has them.
    """
    with open(path) as fh:
        doc = json.load(fh)
    rows: list[dict[str, Any]] = []
    if "benchmarks" in doc:  # pytest-benchmark
        for b in doc["benchmarks"]:
            ex = b.get("extra_info", {})
            if "problem" not in ex:
                continue
            med = b["stats"]["median"]
            med = ex.get("time_offset", 0.0) + ex.get("time_factor", 1.0) * med
            rows.append(
                {
                    "problem": ex["problem"],
                    "case": ex["case"],
                    "kind": ex.get("kind", ""),
                    "median": med,
                    "reference": ex.get("reference", "numpy"),
                }
            )
        mi = doc.get("machine_info", {})
        cpu = mi.get("cpu", {})
        info = {
            "cpu": cpu.get("brand_raw") if isinstance(cpu, dict) else None,
            "date": doc.get("datetime"),
            "scale": rows and doc["benchmarks"][0].get("extra_info", {}).get("scale"),
        }
    elif "results" in doc:  # fastgd bench
        refs: dict[str, str] = {}
        for r in doc["results"]:
            refs.setdefault(r["problem"], r["case"])  # the first case is the reference
        for r in doc["results"]:
            if r.get("status") == "ok":
                rows.append(
                    {
                        "problem": r["problem"],
                        "case": r["case"],
                        "kind": r["kind"],
                        "median": r["median"],
                        "reference": refs[r["problem"]],
                    }
                )
        m = doc.get("machine", {})
        info = {
            "cpu": m.get("cpu"),
            "date": m.get("date"),
            "cores": m.get("cores"),
            "scale": doc.get("scale", {}).get("name"),
        }
    else:
        raise ValueError(f"{path}: neither pytest-benchmark nor 'fastgd bench' JSON")
    return rows, info


def speedups(rows: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """``(problem, case, reference median / median)`` for every non-reference case."""
    ref = {(r["problem"], r["case"]): r["median"] for r in rows}
    out = []
    for r in rows:
        if r["kind"] == "probe" or r["case"] == r["reference"]:
            continue
        base = ref.get((r["problem"], r["reference"]))
        if base:
            out.append((r["problem"], r["case"], base / r["median"]))
    return out


def plot(data: list[tuple[str, str, float]], info: dict[str, Any], out: str) -> None:
    """Write the grouped bar chart to ``out`` (any format matplotlib knows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems: list[str] = []
    for prob, _, _ in data:
        if prob not in problems:
            problems.append(prob)
    labels, values, colours, ypos, ticks = [], [], [], [], []
    y = 0.0
    for prob in problems:
        mine = [(c, s) for p, c, s in data if p == prob]
        start = y
        for case, s in mine:
            labels.append(case)
            values.append(s)
            colours.append(_COLOURS[_family(case)])
            ypos.append(y)
            y += 1.0
        ticks.append(((start + y - 1.0) / 2.0, prob))
        y += 0.8
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(values) + 1.6))
    bars = ax.barh(ypos, values, color=colours, height=0.8)
    for bar, lab in zip(bars, labels):
        if "kernel)" in lab:  # the compiled pass or epoch alone, without input validation
            bar.set_hatch("///")
            bar.set_edgecolor("white")
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yy, v, lab in zip(ypos, values, labels):
        ax.text(v * 1.05, yy, f"{lab}  {v:.3g}x", va="center", fontsize=7)
    ax.set_yticks([t for t, _ in ticks])
    ax.set_yticklabels([p for _, p in ticks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over the numpy reference (log scale; 1x = reference)")
    right = max(values) if values else 10.0
    ax.set_xlim(min(min(values, default=1.0), 1.0) / 2.0, right * 30.0)
    title = "fastgd: speedup per problem and backend"
    sub = ", ".join(
        str(v)
        for v in (
            info.get("cpu"),
            info.get("cores") and f"{info['cores']} cores",
            info.get("scale") and f"scale {info['scale']}",
            (info.get("date") or "")[:10],
        )
        if v
    )
    ax.set_title(f"{title}\n{sub}" if sub else title, fontsize=10)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c)
        for k, c in _COLOURS.items()
        if any(_family(lab) == k for lab in labels)
    ]
    names = [k for k in _COLOURS if any(_family(lab) == k for lab in labels)]
    if handles:
        ax.legend(handles, names, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``plot_results.py JSON [-o PNG]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "json", help="fastgd bench --json output, or pytest --benchmark-json output"
    )
    parser.add_argument("-o", "--output", default="bench/speedup.png", help="image to write")
    args = parser.parse_args(argv)
    rows, info = load(args.json)
    data = speedups(rows)
    if not data:
        print(f"{args.json}: no timed cases to plot", file=sys.stderr)
        return 1
    plot(data, info, args.output)
    print(f"wrote {args.output} ({len(data)} bars)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
