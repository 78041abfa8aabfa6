"""fastgd: fast, verified gradient descent.

Hot loops (gradients and parameter updates for MSE, Huber and polynomial
least squares) are compiled twice, with numba and with Cython, behind one
API, and checked against a pure-numpy reference.

>>> import fastgd
>>> X, y, coef, b = fastgd.datasets.make_linear(500, 2, seed=0)
>>> res = fastgd.fit(X, y)
>>> res.status
'converged'
"""

from typing import Any

from . import datasets
from ._compile import compile_kernels
from ._registry import LOSSES, MODELS, OPTIMIZERS, SCHEDULES
from ._result import DivergenceWarning, FitResult, FitState, History, MinimizeResult
from ._version import __version__
from .api import fit, loss_and_grad, minimize
from .backends import available_backends


def __getattr__(name: str) -> Any:
    """``fastgd.GDRegressor``: imported on first use, so that ``import fastgd``
    does not import scikit-learn."""
    if name == "GDRegressor":
        try:
            from .estimator import GDRegressor
        except ImportError as exc:
            raise ImportError(
                "fastgd.GDRegressor needs scikit-learn: pip install 'fastgd[sklearn]'"
            ) from exc
        return GDRegressor
    raise AttributeError(f"module 'fastgd' has no attribute {name!r}")


__all__ = [
    "fit",
    "loss_and_grad",
    "minimize",
    "available_backends",
    "compile_kernels",
    "datasets",
    "FitResult",
    "FitState",
    "MinimizeResult",
    "GDRegressor",
    "History",
    "DivergenceWarning",
    "LOSSES",
    "MODELS",
    "OPTIMIZERS",
    "SCHEDULES",
    "__version__",
]
