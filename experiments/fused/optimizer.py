"""One optimizer for a pack: every branch updated by its own optimizer's Keras math.

Each trainable variable of a pack belongs to one *route*: the branches whose parameters it
stacks along one axis (a fused layer, branches of any optimizer type side by side), or the
single branch whose sub-model owns it. A route keeps, per branch, its update rule, learning
rate and momentum, and an active mask. `update_step` updates every branch of a variable by its
own rule in one elementwise pass (`_update`): the six rules written as one formula whose
per-branch coefficients make it, for each branch, exactly the arithmetic Keras writes for its
optimizer (keras/src/optimizers/sgd.py, rmsprop.py, adagrad.py, adam.py, with Keras's defaults
for rho, epsilon, the initial accumulator and the betas). Two slots serve every rule: ``m``
(SGD's momentum with Keras's sign, Adam's first moment) and ``v`` (RMSprop's and Adam's second
moment, Adagrad's accumulator). The coefficients are a table per route, set in NumPy when
its branches or their activity change; a step computes only Adam's step size (which moves
with the step count), where building the table from the rules inside the step cost some 150
small ops per route and variable rank in every step (bench (b), K=6: 29-30 -> 24 s).

On TensorFlow the update of a variable is one XLA kernel, traced once per shape and slot set
and updating the variable in place (4-5x faster than Keras's op-by-op updates on a CPU); it
does not depend on which rules a pack holds, so a compiled pack takes the next pack's branches
whatever their optimizers. JAX compiles the step anyway; PyTorch runs the same keras.ops eagerly.

A stopped branch's coefficients that move its weights and slots are 0, and the pack zeroes its
slots and restores finite weights when it stops, so its weights no longer change.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["RULES", "SLOT_ATTRIBUTES", "SLOT_OF", "Route", "RoutedOptimizer"]

RULES = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
# The slots each rule keeps, by the attribute of Keras's own optimizer that holds the same
# values (for a branch's checkpoint), and the pack's slot that holds them.
SLOT_ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "sgd": {},
    "momentum": {"momentum": "momentums"},
    "nesterov": {"momentum": "momentums"},
    "rmsprop": {"velocity": "_velocities"},
    "adagrad": {"accumulator": "_accumulators"},
    "adam": {"momentum": "_momentums", "velocity": "_velocities"},
}
SLOT_OF = {"momentum": "m", "velocity": "v", "accumulator": "v"}
_USES = {"m": ("momentum", "nesterov", "adam"), "v": ("rmsprop", "adagrad", "adam")}


def _default(cls: type, name: str) -> float:
    """A constructor default of a Keras optimizer, read from the installed Keras."""
    return float(inspect.signature(cls.__init__).parameters[name].default)


RHO = _default(keras.optimizers.RMSprop, "rho")
RMSPROP_EPSILON = _default(keras.optimizers.RMSprop, "epsilon")
ADAGRAD_EPSILON = _default(keras.optimizers.Adagrad, "epsilon")
ADAGRAD_INITIAL = _default(keras.optimizers.Adagrad, "initial_accumulator_value")
BETA_1 = _default(keras.optimizers.Adam, "beta_1")
BETA_2 = _default(keras.optimizers.Adam, "beta_2")
ADAM_EPSILON = _default(keras.optimizers.Adam, "epsilon")


@dataclass(frozen=True)
class Route:
    """Branches updated together over the same variables, each by its own rule.

    `stacked`: the variables carry an axis of len(branches) (a fused layer); otherwise they
    belong to one branch alone.
    """

    rules: tuple[str, ...]
    branches: tuple[int, ...]
    learning_rates: tuple[float, ...]
    momenta: tuple[float, ...]
    stacked: bool
    also: tuple[str, ...] = ()  # rules to trace the step with beyond the branches' own

    def present(self) -> tuple[str, ...]:
        """The rules the route's step computes, in RULES order: its branches' and `also`'s."""
        return tuple(r for r in RULES if r in self.rules or r in self.also)

    def slots(self) -> tuple[str, ...]:
        return tuple(name for name, users in _USES.items() if any(r in self.present() for r in users))


class RoutedOptimizer(keras.optimizers.Optimizer):
    """Routes each variable to its branches' rules.

    `routes_of` maps id(variable) to its route; `axes_of`, for a stacked variable, the axis its
    branches sit on (0 when absent).
    """

    def __init__(
        self, routes: Sequence[Route], routes_of: Mapping[int, int], axes_of: Mapping[int, int], **kwargs: Any
    ) -> None:
        # The base learning rate is unused: every route has its own vector.
        super().__init__(learning_rate=1.0, name="routed", **kwargs)
        self.routes = list(routes)
        self._routes_of = dict(routes_of)
        self._axes_of = dict(axes_of)
        self._route_index: list[int] = []
        self._axis_index: list[int] = []
        self.slots: list[dict[str, keras.Variable]] = []
        self._cache: dict[int, Any] = {}  # route -> Adam's step size, within one step

    def build(self, variables: Sequence[keras.Variable]) -> None:
        if self.built:
            return
        super().build(variables)
        self._lr, self._coef, self._adam = [], [], []
        self._active: list[np.ndarray] = []
        # The rules each route computes: fixed when the step is traced; a route given new
        # branches later (a reused pack) may use any of them.
        self._present = [route.present() for route in self.routes]
        for r, route in enumerate(self.routes):
            n = len(route.branches)
            for store, shape, name in (
                (self._lr, (n,), "lr"),
                (self._coef, (len(COEFFICIENTS), n), "coefficients"),
                (self._adam, (n,), "adam"),
            ):
                store.append(self.add_variable(shape, initializer="zeros", name=f"route{r}_{name}"))
            self._active.append(np.ones(n, dtype="float32"))
            self.assign_route(r, route)
        for variable in variables:
            route = self._routes_of.get(id(variable))
            if route is None:
                raise ValueError(f"variable {variable.path} has no route in the pack's optimizer")
            self._route_index.append(route)
            self._axis_index.append(self._axes_of.get(id(variable), 0))
            self.slots.append(
                {
                    name: self.add_variable_from_reference(variable, name=name)
                    for name in self.routes[route].slots()
                }
            )

    def apply(self, grads: Any, trainable_variables: Any = None) -> Any:
        self._cache = {}  # Adam's step size is computed once per route, per step
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._cache = {}

    def present(self, r: int) -> tuple[str, ...]:
        """The rules route `r`'s step was traced with."""
        return self._present[r]

    def accepts(self, r: int, route: Route) -> bool:
        """Whether route `r` can take `route`'s branches without tracing the step again."""
        return len(route.branches) == len(self.routes[r].branches) and set(route.rules) <= set(
            self._present[r]
        )

    def assign_route(self, r: int, route: Route) -> None:
        """Give route `r` its branches' rules and hyperparameters, all active."""
        self.routes[r] = route
        self._lr[r].assign(np.asarray(route.learning_rates, dtype="float32"))
        self._active[r] = np.ones(len(route.branches), dtype="float32")
        self._assign_coefficients(r)

    def set_active(self, route: int, position: int, active: bool) -> None:
        """Stop (or restart) one branch of a route: its updates become (or stop being) zero."""
        self._active[route][position] = 1.0 if active else 0.0
        self._assign_coefficients(route)

    def _assign_coefficients(self, r: int) -> None:
        """Route `r`'s coefficients, one row per name of COEFFICIENTS: set when its branches or
        their activity change, not computed in every step. Adam's step size, which changes with
        the step count, is the one value each step computes (`_alpha`)."""
        route = self.routes[r]
        lr = np.asarray(route.learning_rates, dtype="float32")
        mu = np.asarray(route.momenta, dtype="float32")
        values = {"lr": lr, "mu": mu, "-lr": np.negative(lr), "-mu": np.negative(mu)}
        table = np.zeros((len(COEFFICIENTS), len(route.branches)), dtype="float32")
        for b, rule in enumerate(route.rules):
            for row, name in enumerate(COEFFICIENTS):
                value = UNIFIED[rule].get(name, 0.0)
                if value != "alpha":  # Adam's d2 is each step's `_alpha`
                    table[row, b] = values[value][b] if isinstance(value, str) else value
        active = self._active[r]
        for name in STOPPED_AT_ZERO:  # a stopped branch no longer moves, nor do its slots
            table[COEFFICIENTS.index(name)] *= active
        self._coef[r].assign(table)
        adam = np.asarray([rule == "adam" for rule in route.rules], dtype="float32") * active
        self._adam[r].assign(adam)

    def _alpha(self, route: int, dtype: str) -> Any:
        """Adam's step size with its bias correction folded in, as Keras's Adam computes it."""
        if route not in self._cache:
            lr = ops.cast(self._lr[route], dtype)
            local_step = ops.cast(self.iterations + 1, dtype)
            beta_1_power = ops.power(ops.cast(BETA_1, dtype), local_step)
            beta_2_power = ops.power(ops.cast(BETA_2, dtype), local_step)
            self._cache[route] = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        return self._cache[route]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        index = self._get_variable_index(variable)
        route = self._route_index[index]
        shape = [1] * len(variable.shape)
        if self.routes[route].stacked:
            shape[self._axis_index[index]] = len(self.routes[route].branches)
        table = ops.cast(self._coef[route], variable.dtype)
        adam = ops.cast(self._adam[route], variable.dtype)
        alpha = self._alpha(route, variable.dtype) if "adam" in self._present[route] else ops.zeros_like(adam)
        gradient = ops.cast(gradient, variable.dtype)
        names = tuple(self.slots[index])
        slots = [self.slots[index][name] for name in names]
        if keras.backend.backend() == "tensorflow":
            _compiled(names, tuple(shape))(variable, gradient, [s.value for s in slots], table, adam, alpha)
            return
        new = _update(names, variable, gradient, slots, _expand(table, adam, alpha, tuple(shape)))
        self.assign(variable, new["var"])
        for name, slot in zip(names, slots, strict=True):
            self.assign(slot, new[name])


# Every rule as one update with per-branch coefficients (`_update`), each rule's coefficients
# chosen so that the arithmetic is Keras's own to the last bit: x * 1, x + 0, x - (-y) and
# x / 1 are exact, and so are 0-coefficients on a slot the rule does not keep. Strings name
# per-branch values; anything not listed is 0.
COEFFICIENTS = ("p1", "p2", "p3", "q1", "q2", "q3", "d1", "d2", "e1", "e2")
STOPPED_AT_ZERO = ("p3", "q3", "d1", "d2")
UNIFIED: Mapping[str, Mapping[str, float | str]] = {
    # var - g * lr
    "sgd": {"d1": "lr", "e1": 1.0},
    # m = m * mu - g * lr; var + m
    "momentum": {"p1": "mu", "p3": "-lr", "d2": -1.0, "e1": 1.0},
    # m = m * mu - g * lr; var + (m * mu - g * lr)
    "nesterov": {"p1": "mu", "p3": "-lr", "d1": "lr", "d2": "-mu", "e1": 1.0},
    # v = rho * v + (1 - rho) * g^2; var - lr * g / sqrt(v + eps)
    "rmsprop": {"q1": RHO, "q3": 1 - RHO, "d1": "lr", "e1": RMSPROP_EPSILON},
    # v = v + g^2; var - lr * g / sqrt(v + eps)
    "adagrad": {"q1": 1.0, "q3": 1.0, "d1": "lr", "e1": ADAGRAD_EPSILON},
    # m = m + (g - m) * (1 - b1); v = v + (g^2 - v) * (1 - b2); var - m * alpha / (sqrt(v) + eps)
    "adam": {
        "p1": 1.0,
        "p2": 1.0,
        "p3": 1 - BETA_1,
        "q1": 1.0,
        "q2": 1.0,
        "q3": 1 - BETA_2,
        "d2": "alpha",
        "e2": ADAM_EPSILON,
    },
}


def _update(
    names: tuple[str, ...], var: Any, g: Any, slots: Sequence[Any], c: Mapping[str, Any]
) -> dict[str, Any]:
    """Each branch's own rule, as one elementwise pass for all of them:

        m' = m * p1 + (g - m * p2) * p3
        v' = v * q1 + (g^2 - v * q2) * q3
        var' = var - (g * d1 + m' * d2) / (sqrt(v' + e1) + e2)

    (without a slot, its terms are 0). One pass over the variable whatever the mix of rules,
    where computing every rule and selecting one per branch cost 1.6-2.5x more (an Adam-sized
    pass: 1.75 ms for a (12, 784, 100) kernel on the 2-core CPU, against 2.75 ms for the six
    rules selected)."""
    current = dict(zip(names, slots, strict=True))
    new: dict[str, Any] = {}
    step = ops.multiply(g, c["d1"])
    if "m" in current:
        m = current["m"]
        new["m"] = ops.add(
            ops.multiply(m, c["p1"]), ops.multiply(ops.subtract(g, ops.multiply(m, c["p2"])), c["p3"])
        )
        step = ops.add(step, ops.multiply(new["m"], c["d2"]))
    if "v" in current:
        v = current["v"]
        new["v"] = ops.add(
            ops.multiply(v, c["q1"]),
            ops.multiply(ops.subtract(ops.square(g), ops.multiply(v, c["q2"])), c["q3"]),
        )
        step = ops.divide(step, ops.add(ops.sqrt(ops.add(new["v"], c["e1"])), c["e2"]))
    new["var"] = ops.subtract(var, step)
    return new


def _expand(table: Any, adam: Any, alpha: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """A route's coefficient table as the per-branch values `_update` broadcasts over a
    variable (`shape`: 1 everywhere but on the branch axis), Adam's step size put in place."""
    coef = {name: ops.reshape(table[row], shape) for row, name in enumerate(COEFFICIENTS)}
    coef["d2"] = ops.reshape(ops.where(ops.greater(adam, 0.5), alpha, table[COEFFICIENTS.index("d2")]), shape)
    return coef


@functools.cache
def _compiled(names: tuple[str, ...], shape: tuple[int, ...]) -> Any:
    """TensorFlow: `_expand`, `_update` and the assignments as one XLA-compiled function (traced
    once per variable shape, and shared by every pack of the process, whatever its rules).

    Without autograph: the update has no tensor-dependent Python control flow to convert, and
    converting it (and the keras.ops it calls) cost 0.3-0.4 s of every process's first pack
    (traces of an MLP pack's four kernel shapes, 2-core CPU: 0.43-0.62 s with it, 0.18-0.32 s without).
    """
    import tensorflow as tf

    def update(variable: Any, gradient: Any, slots: list[Any], table: Any, adam: Any, alpha: Any) -> None:
        new = _update(names, variable, gradient, slots, _expand(table, adam, alpha, shape))
        variable.assign(new["var"])
        for name, slot in zip(names, slots, strict=True):
            slot.assign(new[name])

    return tf.function(update, jit_compile=True, autograph=False)
