"""Sphinx configuration of the fastgd documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (needs the
``docs`` extra and the Cython extension built: ``pip install -e ".[docs]"``).
The plots on the guide pages are drawn at build time by fastgd itself
(``matplotlib.sphinxext.plot_directive``), from small fits on the numpy and
Cython backends.
"""

from __future__ import annotations

import os
import sys
import warnings

# Document the fastgd of this checkout (built in place or installed editable).
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("MPLBACKEND", "Agg")

import fastgd  # noqa: E402

# The plots run small fits with backend="auto": Cython when it is built.  Without
# it they would wait for numba's JIT (minutes), so the build insists on it.
if "cython" not in fastgd.available_backends():
    raise RuntimeError(
        "the docs build needs fastgd's Cython extension: "
        "pip install -e '.[docs]' or python setup.py build_ext --inplace"
    )

project = "fastgd"
author = "the fastgd authors"
copyright = "fastgd authors"
version = release = fastgd.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "matplotlib.sphinxext.plot_directive",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# -- API reference ------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the numpydoc sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # members are listed by the class template
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- Markdown -----------------------------------------------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# -- Plots drawn by the build ---------------------------------------------------
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 96)]
plot_rcparams = {"figure.max_open_warning": 0}
# The diverging fit on the step-size page records objectives near the float64
# limit; matplotlib's log scale overflows harmlessly when drawing them.
warnings.filterwarnings("ignore", "overflow encountered in exp", RuntimeWarning)
plot_pre_code = """
import numpy as np
import matplotlib.pyplot as plt
import fastgd
"""

# -- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"fastgd {release}"
html_static_path: list[str] = []


# -- The registries as tables, read from fastgd itself ----------------------------


def _registry_rows(name: str) -> tuple[list[str], list[list[str]]]:
    from fastgd._registry import HYPER_DEFAULTS, hyper_values

    reg = getattr(fastgd, name)

    def lit(s: object) -> str:
        return f"``{s}``" if str(s) else ""

    if name == "LOSSES":
        return (
            ["name", "rho(r)", "psi(r) = rho'(r)", "curvature bound"],
            [
                [lit(s.name), lit(s.formula), lit(s.psi_formula), f"{s.curvature:g}"]
                for s in reg.values()
            ],
        )
    if name == "MODELS":
        return (["name", "prediction"], [[lit(s.name), lit(s.formula)] for s in reg.values()])
    if name == "OPTIMIZERS":
        return (
            ["name", "hyperparameters (defaults)", "update", 'lr="auto"'],
            [
                [
                    lit(s.name) + "".join(f" (alias {lit(a)})" for a in s.aliases),
                    ", ".join(f"{lit(h)} ({hyper_values(s, {})[h]:g})" for h in s.hyper) or "—",
                    lit(s.formula),
                    "1/L (Lipschitz step)" if s.auto_lr is None else f"{s.auto_lr:g} × a distance",
                ]
                for s in reg.values()
            ],
        )
    if name == "SCHEDULES":
        return (
            ["name", "hyperparameters (defaults)", "step size of epoch ``epoch``"],
            [
                [
                    lit(s.name),
                    ", ".join(f"{lit(h)} ({HYPER_DEFAULTS[h]:g})" for h in s.hyper) or "—",
                    lit(s.formula),
                ]
                for s in reg.values()
            ],
        )
    raise ValueError(f"unknown registry {name!r}")


def setup(app):
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class RegistryTable(SphinxDirective):
        """``.. fastgd-registry:: OPTIMIZERS`` -- a table of a registry's entries."""

        required_arguments = 1

        def run(self):
            header, rows = _registry_rows(self.arguments[0])
            lines = [".. list-table::", "   :header-rows: 1", ""]
            for row in [header, *rows]:
                lines.append(f"   * - {row[0]}")
                lines.extend(f"     - {cell}" for cell in row[1:])
            node = nodes.container()
            self.state.nested_parse(
                StringList(lines, source="fastgd-registry"), self.content_offset, node
            )
            return node.children

    app.add_directive("fastgd-registry", RegistryTable)
    return {"parallel_read_safe": True}
