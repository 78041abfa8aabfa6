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

from . import datasets
from ._registry import LOSSES, MODELS, OPTIMIZERS, SCHEDULES
from ._result import DivergenceWarning, FitResult, FitState, History, MinimizeResult
from .api import fit, loss_and_grad, minimize
from .backends import available_backends

__version__ = "0.1.0"

__all__ = [
    "fit", "loss_and_grad", "minimize", "available_backends", "datasets",
    "FitResult", "FitState", "MinimizeResult", "History", "DivergenceWarning",
    "LOSSES", "MODELS", "OPTIMIZERS", "SCHEDULES", "__version__",
]
