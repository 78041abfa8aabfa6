"""Input checks: every error a user can cause is raised here, naming the parameter,
before any compiled code runs.  Kernels assume what this module guarantees."""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np

from . import _registry as reg

_CHECK_BLOCK = 1 << 16  # rows per block when scanning for NaN/inf (no n-sized temporaries)


def as_int(name: str, value: Any, minimum: int) -> int:
    """An integer >= minimum (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    lo_txt = "(" if low_open else "["
    hi_txt = ")" if high_open else "]"
    interval = f"{lo_txt}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_txt}"
    bad = not math.isfinite(value)
    if low is not None and (value < low or (low_open and value == low)):
        bad = True
    if high is not None and (value > high or (high_open and value == high)):
        bad = True
    if bad:
        raise ValueError(f"{name} must be finite and in {interval}, got {value!r}")
    return value


def choice(name: str, value: Any, options: list[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


# The range of each hyperparameter, checked when the user passes it.
_HYPER_RANGES: Mapping[str, dict[str, Any]] = {
    "momentum": dict(low=0.0, high=1.0, high_open=True),
    "beta1": dict(low=0.0, high=1.0, high_open=True),
    "beta2": dict(low=0.0, high=1.0, high_open=True),
    "eps": dict(low=0.0, low_open=True),
    "rho": dict(low=0.0, high=1.0, high_open=True),
    "power_t": dict(low=0.0),
    "gamma": dict(low=0.0, high=1.0, low_open=True),
}


def check_hyper(hyper: Mapping[str, Any]) -> dict[str, float]:
    """Validate ``**hyper``: unknown names (typos) are a TypeError."""
    out = {}
    for key, value in hyper.items():
        if key not in _HYPER_RANGES:
            raise TypeError(
                f"unexpected keyword argument {key!r}; hyperparameters are {list(reg.HYPER_NAMES)}")
        out[key] = as_float(key, value, **_HYPER_RANGES[key])
    return out


def check_lr(lr: Any, allow_auto: bool = True) -> float | None:
    """``None`` for ``"auto"``, else a positive finite float."""
    if isinstance(lr, str):
        if allow_auto and lr == "auto":
            return None
        extra = ' or "auto"' if allow_auto else ""
        raise ValueError(f"lr must be a positive float{extra}, got {lr!r}")
    return as_float("lr", lr, low=0.0, low_open=True)


def check_record(record: Any) -> str | None:
    if record is None:
        return None
    return choice("record", record, ["loss", "params"])


def _numeric_array(name: str, a: Any) -> np.ndarray:
    """Any array-like as an ndarray, refusing what cannot be a real number."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def float_dtype(X: np.ndarray) -> type:
    """float32 stays float32; every other numeric dtype computes in float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def check_finite(name: str, a: np.ndarray) -> None:
    """Raise naming the first NaN/inf position; scans in row blocks (no big temporaries)."""
    if a.dtype.kind != "f":
        return
    n = a.shape[0]
    for lo in range(0, n, _CHECK_BLOCK):
        block = a[lo:lo + _CHECK_BLOCK]
        ok = np.isfinite(block)
        if not ok.all():
            pos = tuple(int(i) for i in np.argwhere(~ok)[0])
            pos = (pos[0] + lo,) + pos[1:]
            what = block[tuple([pos[0] - lo, *pos[1:]])]
            raise ValueError(f"{name} contains {what} at position {pos if len(pos) > 1 else pos[0]}; "
                             f"inputs must be finite (drop or impute those values)")


def check_data(X: Any, y: Any, degree: int | None) -> tuple[np.ndarray, np.ndarray, int, type]:
    """Validate and coerce ``X``, ``y``: C-contiguous, one float dtype, finite.

    Returns ``(X2d, y, model_code, dtype)``; for the polynomial model X2d is
    the 1-D x viewed as (n, 1) (no copy).  Copies happen only when the input
    is not already C-contiguous in the compute dtype.
    """
    Xa = _numeric_array("X", X)
    ya = _numeric_array("y", y)
    if degree is None:
        if Xa.ndim != 2:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features), got {Xa.ndim}-D with shape {Xa.shape}; "
                "use X.reshape(-1, 1) for a single feature, or pass degree= for a polynomial in 1-D x")
        model = reg.MODELS["linear"].code
    else:
        if Xa.ndim != 1:
            raise ValueError(
                f"X must be 1-D when degree is given (polynomial in one variable), "
                f"got {Xa.ndim}-D with shape {Xa.shape}")
        model = reg.MODELS["poly"].code
    if ya.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got {ya.ndim}-D with shape {ya.shape}")
    n = Xa.shape[0]
    if n == 0:
        raise ValueError("X and y must have at least one sample, got 0")
    if ya.shape[0] != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {ya.shape[0]}")
    dt = float_dtype(Xa)
    Xc = np.ascontiguousarray(Xa, dtype=dt)
    yc = np.ascontiguousarray(ya, dtype=dt)
    check_finite("X", Xc)
    check_finite("y", yc)
    if model == 1:
        Xc = Xc.reshape(n, 1)
    return Xc, yc, model, dt


def check_vector(name: str, v: Any, size: int, dt: type) -> np.ndarray:
    """A finite 1-D vector of the given length, as a fresh array (never the user's)."""
    arr = _numeric_array(name, v)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    out = np.array(arr, dtype=dt, copy=True)
    check_finite(name, out)
    return out
