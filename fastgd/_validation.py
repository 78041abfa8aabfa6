"""Input checks: every error a user can cause is raised here, naming the parameter,
before any compiled code runs.  Kernels assume what this module guarantees."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import _registry as reg

#: The computing dtype: np.float32 or np.float64.
FloatType = type[np.floating[Any]]

#: Elements per block when scanning for NaN/inf: the one boolean buffer stays
#: at 256 KiB whatever the shape (no n-sized temporaries).
_CHECK_ELEMS = 1 << 18


def _scalar(value: Any) -> Any:
    """A 0-d numpy array as its scalar (``np.array(0.1)`` is a fine ``lr``)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value[()]
    return value


def as_int(name: str, value: Any, minimum: int) -> int:
    """An integer >= minimum (bools and floats are refused).

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    value : Any
        A Python or numpy integer (a 0-d integer array is accepted).
    minimum : int

    Returns
    -------
    int

    Raises
    ------
    TypeError
        For anything that is not an integer (``True``, ``2.0``, ``"3"``).
    ValueError
        For an integer below ``minimum``.

    Examples
    --------
    >>> as_int("max_iter", 10, 1)
    10
    """
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def as_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the given interval.

    Parameters
    ----------
    name : str
        The parameter's name, used in the error message.
    value : Any
        A Python or numpy real number (a 0-d array is accepted).
    low, high : float, optional
        Bounds of the interval (closed unless ``low_open`` / ``high_open``).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        For non-real values (bools, strings, complex numbers, arrays).
    ValueError
        For NaN, +-inf or a value outside the interval.

    Examples
    --------
    >>> as_float("eps", 1e-8, low=0.0, low_open=True)
    1e-08
    """
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    lo_txt = "(" if low_open or low is None else "["
    hi_txt = ")" if high_open or high is None else "]"
    interval = (
        f"{lo_txt}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_txt}"
    )
    bad = not math.isfinite(value)
    if low is not None and (value < low or (low_open and value == low)):
        bad = True
    if high is not None and (value > high or (high_open and value == high)):
        bad = True
    if bad:
        raise ValueError(f"{name} must be finite and in {interval}, got {value!r}")
    return value


def as_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (numpy bools too); ``"no"``, ``0`` or ``None`` are refused.

    Examples
    --------
    >>> as_bool("fit_intercept", np.True_)
    True
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")


def choice(name: str, value: Any, options: list[Any]) -> Any:
    """``value`` if it is one of ``options`` (compared by equality, strings only
    matching strings), else a ValueError listing them."""
    ok = any(
        value is opt if opt is None else (isinstance(value, str) and value == opt)
        for opt in options
    )
    if not ok:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def as_rng(seed: Any) -> np.random.Generator:
    """A numpy Generator from ``seed``: None, a non-negative integer, a
    ``SeedSequence`` or a ``Generator`` (used as is).

    Examples
    --------
    >>> as_rng(0).integers(10) == np.random.default_rng(0).integers(10)
    np.True_
    """
    if seed is None or isinstance(
        seed, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)
    ):
        return np.random.default_rng(seed)
    seed = _scalar(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "seed must be None, a non-negative integer or a numpy Generator, "
            f"got {seed!r} ({type(seed).__name__})"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(int(seed))


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
                f"unexpected keyword argument {key!r}; hyperparameters are {list(reg.HYPER_NAMES)}"
            )
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
    """``"loss"``, ``"params"`` or ``None``."""
    return choice("record", record, ["loss", "params", None])


def _numeric_array(name: str, a: Any) -> np.ndarray:
    """Any array-like as an ndarray, refusing what cannot be a real number.

    ``np.memmap`` and other ndarray subclasses are kept as they are (no copy).
    """
    if a is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:
            # ragged nested lists: "inhomogeneous shape ..."
            raise ValueError(
                f"{name} must be a rectangular array of numbers; numpy could not convert it: {exc}"
            ) from None
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {arr.dtype}")
    if kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr


def float_dtype(X: np.ndarray) -> FloatType:
    """float32 (either byte order) stays float32; every other numeric dtype
    computes in float64."""
    return np.float32 if X.dtype.kind == "f" and X.dtype.itemsize == 4 else np.float64


def check_finite(name: str, a: np.ndarray, note: str = "", offset: int = 0) -> None:
    """Raise a ValueError naming ``name`` and the first NaN/inf position.

    Scans in row blocks of about ``_CHECK_ELEMS`` elements, so the boolean
    temporary stays small whatever the shape of ``a``.  ``note`` is appended
    to the message (e.g. to explain a float32 overflow on conversion).
    ``offset``: the row index of ``a[0]`` in the whole data (a chunk's rows).

    Examples
    --------
    >>> check_finite("y", np.array([1.0, np.nan]))
    Traceback (most recent call last):
    ...
    ValueError: y contains nan at position 1; inputs must be finite (drop or impute those values)
    """
    if a.dtype.kind != "f" or a.size == 0:
        return
    n = a.shape[0]
    step = max(1, _CHECK_ELEMS // max(1, a.size // n))
    buf = np.empty((min(step, n),) + a.shape[1:], dtype=bool)  # reused by every block
    for lo in range(0, n, step):
        block = a[lo : lo + step]
        ok = np.isfinite(block, out=buf[: block.shape[0]])
        if not ok.all():
            pos = tuple(int(i) for i in np.argwhere(~ok)[0])
            what = block[pos]
            pos = (pos[0] + lo + offset,) + pos[1:]
            raise ValueError(
                f"{name} contains {what} at position {pos if len(pos) > 1 else pos[0]}"
                f"{note}; inputs must be finite (drop or impute those values)"
            )


def _coerce(
    name: str,
    a: np.ndarray,
    dt: FloatType,
    finite: bool = True,
    all_finite: Callable[[np.ndarray], bool] | None = None,
) -> np.ndarray:
    """C-contiguous in ``dt`` (no copy when it already is), checked finite.

    ``all_finite`` is a backend's one-pass scan; only when it reports a NaN or
    inf does the block scan below run, to name the position.  A float64 value
    beyond float32's range becomes inf when the data are float32; the message
    then says so.
    """
    with np.errstate(over="ignore"):  # reported below, with the position
        out = np.ascontiguousarray(a, dtype=dt)
    note = conversion_note(a, dt)
    if finite and (all_finite is None or not all_finite(out)):
        check_finite(name, out, note)
    return out


def conversion_note(a: Any, dt: FloatType) -> str:
    """What a NaN/inf message adds when a float array was narrowed to ``dt``."""
    src = getattr(a, "dtype", None)
    if src is None or src.kind != "f" or np.dtype(dt).itemsize >= src.itemsize:
        return ""
    return f" after conversion from {src} to {np.dtype(dt).name} (X is {np.dtype(dt).name})"


def check_data(
    X: Any,
    y: Any,
    degree: int | None,
    finite: bool = True,
    all_finite: Callable[[np.ndarray], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray, int, FloatType]:
    """Validate and coerce ``X``, ``y``: C-contiguous, one float dtype, finite.

    ``finite=False`` skips the NaN/inf scan (the caller's ``check_finite=False``:
    it must then scan itself when a result comes out non-finite).
    ``all_finite``: the backend's fast scan (``backends.*.all_finite``).

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
                "use X.reshape(-1, 1) for a single feature, or pass degree= for a polynomial in 1-D x"
            )
        model = reg.MODELS["linear"].code
    else:
        if Xa.ndim != 1:
            raise ValueError(
                f"X must be 1-D when degree is given (polynomial in one variable), "
                f"got {Xa.ndim}-D with shape {Xa.shape}"
            )
        model = reg.MODELS["poly"].code
    if ya.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got {ya.ndim}-D with shape {ya.shape}")
    n = Xa.shape[0]
    if n == 0:
        raise ValueError("X and y must have at least one sample, got 0")
    if ya.shape[0] != n:
        raise ValueError(f"X and y must have the same number of samples, got {n} and {ya.shape[0]}")
    dt = float_dtype(Xa)
    Xc = _coerce("X", Xa, dt, finite, all_finite)
    yc = _coerce("y", ya, dt, finite, all_finite)
    if model == 1:
        Xc = Xc.reshape(n, 1)
    return Xc, yc, model, dt


def check_vector(name: str, v: Any, size: int, dt: FloatType) -> np.ndarray:
    """A finite 1-D vector of the given length, as a fresh array (never the user's)."""
    arr = _numeric_array(name, v)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {arr.shape}")
    out = np.array(arr, dtype=dt, copy=True)
    check_finite(name, out)
    return out


def check_sample_weight(sample_weight: Any, n: int, dt: FloatType) -> np.ndarray | None:
    """Validated sample weights, normalised to mean 1, in the data dtype ``dt``.

    ``None`` (and weights that are all equal, which change nothing) give None:
    the unweighted code path.  Otherwise a fresh array (never the user's):
    ``w / mean(w)``, so that the kernels' "sum of weighted terms over the
    number of rows" is the weighted mean ``sum_i w_i rho_i / sum_i w_i``.

    Raises
    ------
    TypeError
        For weights that are not numbers.
    ValueError
        For a wrong shape or length, NaN/inf, negative weights, or weights
        that are all zero.

    Examples
    --------
    >>> check_sample_weight([1, 3], 2, np.float64).tolist()
    [0.5, 1.5]
    >>> check_sample_weight(np.ones(3), 3, np.float64) is None
    True
    """
    if sample_weight is None:
        return None
    wa = _numeric_array("sample_weight", sample_weight)
    if wa.ndim == 0:  # a scalar weighs every row alike
        wa = np.full(n, wa, dtype=np.float64)
    if wa.ndim != 1 or wa.shape[0] != n:
        raise ValueError(
            f"sample_weight must have shape ({n},) (one weight per sample), got {wa.shape}"
        )
    w = np.array(wa, dtype=np.float64, copy=True)
    check_finite("sample_weight", w)
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise ValueError(f"sample_weight must be >= 0, got {w[i]} at position {i}")
    total = float(w.sum())
    if not total > 0:
        raise ValueError("sample_weight must have a positive sum, got all zeros")
    if not math.isfinite(total):
        raise ValueError("sample_weight is too large: its sum overflows float64")
    if (w == w[0]).all():
        return None
    w /= total  # then times n: no overflow for tiny or huge weights
    w *= n
    return w.astype(dt, copy=False)


# ---------------------------------------------------------------- minimize's user functions


def check_fun_value(f: Any) -> float:
    """What a user ``fun`` returned, as a float: a real scalar (NaN/inf are let
    through, they mean divergence), else a TypeError/ValueError naming ``fun``."""
    if isinstance(f, (str, bytes)) or f is None:
        raise TypeError(f"fun must return a real number, got {type(f).__name__}")
    if np.ndim(f) != 0:
        raise ValueError(f"fun must return a scalar, got shape {np.shape(f)}")
    if np.iscomplexobj(f):
        raise TypeError(f"fun must return a real number, got complex {f!r}")
    try:
        return float(f)
    except (TypeError, ValueError):
        raise TypeError(f"fun must return a real number, got {type(f).__name__}") from None


def check_grad_value(g: Any, shape: tuple[int, ...]) -> np.ndarray:
    """What a user ``grad`` returned, as an array of ``shape`` with a real dtype."""
    arr = np.asarray(g) if g is not None else None
    if arr is None or arr.shape != shape:
        got = None if arr is None else arr.shape
        raise ValueError(f"grad must return an array of shape {shape} (like x0), got {got}")
    if arr.dtype.kind == "c":
        raise TypeError(f"grad must return real numbers, got complex dtype {arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"grad must return numbers, got dtype {arr.dtype}")
    return arr


def check_x0(x0: Any) -> np.ndarray:
    """``minimize``'s start: a non-empty finite 1-D vector, as a fresh array
    (float32 stays float32, anything else numeric becomes float64)."""
    xa = _numeric_array("x0", x0)
    if xa.ndim != 1 or xa.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {xa.shape}")
    x = np.array(xa, dtype=float_dtype(xa), copy=True)
    check_finite("x0", x)
    return x


def checked_functions(fun: Any, grad: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """``fun`` and ``grad`` wrapped so that every call (not just the first) is
    checked: a bad return value later in the loop raises instead of being
    broadcast into the parameters.  Used whenever the loop calls Python
    functions (not for numba-jitted ``fun``/``grad``, which run compiled)."""

    def fun_checked(x: np.ndarray) -> float:
        return check_fun_value(fun(x))

    def grad_checked(x: np.ndarray) -> np.ndarray:
        return check_grad_value(grad(x), shape)

    return fun_checked, grad_checked
