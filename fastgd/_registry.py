"""The registries: every loss, model, optimizer and schedule, declared once.

Each entry carries the integer code the compiled kernels dispatch on, its
parameters with defaults, and (for losses and optimizers) hand-checked test
vectors.  Validation, the CLI, docs tables, the tests and the benchmarks all
read from here, so adding an entry never means editing a list elsewhere.

The integer codes are part of the kernel interface (see
``fastgd/backends/__init__.py``); the numba and Cython kernels switch on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class LossSpec:
    """A loss ``rho(r)`` of the residual ``r = prediction - y`` and its derivative ``psi``."""

    name: str
    code: int
    formula: str
    psi_formula: str
    #: Lipschitz constant of ``psi`` (bounds the curvature: MSE 2, Huber 1).
    curvature: float
    #: (r, delta, rho(r), psi(r)) checked by hand.
    vectors: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class ModelSpec:
    """How a prediction is formed from the parameters."""

    name: str
    code: int
    formula: str


@dataclass(frozen=True)
class OptimizerSpec:
    """An update rule over per-coordinate state slots (``state`` has 2 rows)."""

    name: str
    code: int
    hyper: tuple[str, ...]
    formula: str
    #: ``lr="auto"`` for this rule: ``None`` means the Lipschitz step ``1/L``,
    #: a float is a fixed default (adaptive rules are scale free).
    auto_lr: float | None
    aliases: tuple[str, ...] = ()
    #: Per-rule defaults overriding :data:`HYPER_DEFAULTS` (torch's ``eps``).
    defaults: Mapping[str, float] = field(default_factory=dict)

    @property
    def adaptive(self) -> bool:
        """A per-coordinate scale-free rule (adagrad, rmsprop, adam): its steps
        are about ``lr`` whatever the gradient's size."""
        return self.auto_lr is not None


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    code: int
    hyper: tuple[str, ...]
    formula: str


LOSSES: Mapping[str, LossSpec] = MappingProxyType(
    {
        "mse": LossSpec(
            "mse",
            0,
            "r**2",
            "2*r",
            2.0,
            vectors=((0.0, 1.0, 0.0, 0.0), (1.5, 1.0, 2.25, 3.0), (-2.0, 1.0, 4.0, -4.0)),
        ),
        "huber": LossSpec(
            "huber",
            1,
            "r**2/2 if |r| <= delta else delta*(|r| - delta/2)",
            "clip(r, -delta, delta)",
            1.0,
            vectors=(
                (0.0, 1.0, 0.0, 0.0),
                (0.5, 1.0, 0.125, 0.5),
                (1.0, 1.0, 0.5, 1.0),  # the kink: both branches agree
                (-1.0, 1.0, 0.5, -1.0),
                (3.0, 1.0, 2.5, 1.0),
                (-3.0, 2.0, 4.0, -2.0),
            ),
        ),
    }
)

MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        "linear": ModelSpec("linear", 0, "X @ coef + intercept"),
        "poly": ModelSpec("poly", 1, "intercept + sum_j coef[j-1] * x**j  (Horner, on the fly)"),
    }
)

#: Hyperparameter defaults (torch's where torch has one; ``momentum`` defaults to
#: 0.9 because the "momentum" rule with torch's 0 would be plain gd).
HYPER_DEFAULTS: Mapping[str, float] = MappingProxyType(
    {
        "momentum": 0.9,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "rho": 0.99,
        "power_t": 0.25,
        "gamma": 0.99,
    }
)

#: Order of the optimizer hyperparameters in the ``hp`` array the kernels get.
HP_ORDER: tuple[str, ...] = ("momentum", "beta1", "beta2", "eps", "rho")
#: Order of the schedule hyperparameters in the ``sched_hp`` array.
SCHED_HP_ORDER: tuple[str, ...] = ("power_t", "gamma")

OPTIMIZERS: Mapping[str, OptimizerSpec] = MappingProxyType(
    {
        "gd": OptimizerSpec("gd", 0, (), "theta -= lr*g", None, aliases=("sgd",)),
        "momentum": OptimizerSpec(
            "momentum", 1, ("momentum",), "v = mu*v + g; theta -= lr*v", None
        ),
        "nesterov": OptimizerSpec(
            "nesterov", 2, ("momentum",), "v = mu*v + g; theta -= lr*(g + mu*v)", None
        ),
        "adagrad": OptimizerSpec(
            "adagrad",
            3,
            ("eps",),
            "s += g*g; theta -= lr*g/(sqrt(s) + eps)",
            0.1,
            defaults={"eps": 1e-10},
        ),
        "rmsprop": OptimizerSpec(
            "rmsprop",
            4,
            ("rho", "eps"),
            "s = rho*s + (1-rho)*g*g; theta -= lr*g/(sqrt(s) + eps)",
            0.01,
        ),
        "adam": OptimizerSpec(
            "adam",
            5,
            ("beta1", "beta2", "eps"),
            "m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; "
            "theta -= lr*(m/(1-b1**t)) / (sqrt(v/(1-b2**t)) + eps)",
            0.01,
        ),
    }
)

SCHEDULES: Mapping[str, ScheduleSpec] = MappingProxyType(
    {
        "constant": ScheduleSpec("constant", 0, (), "lr"),
        "invscaling": ScheduleSpec("invscaling", 1, ("power_t",), "lr / (epoch+1)**power_t"),
        "exponential": ScheduleSpec("exponential", 2, ("gamma",), "lr * gamma**epoch"),
    }
)

#: Every keyword accepted through ``**hyper`` by ``fit`` and ``minimize``.
HYPER_NAMES: tuple[str, ...] = HP_ORDER + SCHED_HP_ORDER

#: Status codes returned by the kernels' ``run``.
RUNNING, CONVERGED, DIVERGED = 0, 1, 2

_OPT_ALIASES = {alias: spec.name for spec in OPTIMIZERS.values() for alias in spec.aliases}


def optimizer_spec(name: str) -> OptimizerSpec:
    """Look up an optimizer by name or alias (``"sgd"`` is ``"gd"``)."""
    return OPTIMIZERS[_OPT_ALIASES.get(name, name)]


def optimizer_names() -> list[str]:
    """All accepted optimizer names, aliases included."""
    return list(OPTIMIZERS) + list(_OPT_ALIASES)


def hyper_values(opt: OptimizerSpec, hyper: Mapping[str, float]) -> dict[str, float]:
    """Defaults for ``opt`` updated by the user's ``hyper`` (already validated)."""
    vals = dict(HYPER_DEFAULTS)
    vals.update(opt.defaults)
    vals.update(hyper)
    return vals
