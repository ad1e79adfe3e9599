"""The search space, translated for KerasTuner: `hp.Choice/Float/Int`, and configs back out.

The space is written once (`sweeps.spec.space`); here each searched slot becomes one KerasTuner
hyperparameter under its engine key (`learning_rate@adam` inside a sub-space), declared in the
order `Space.slots` lists them (parents first), each in the conditional scopes that say when it
is drawn: a sub-space's entries under `conditional_scope(parent, [value])`, a top-level entry
that some sub-spaces override under the parent's other values, and `momentum` under the momentum
SGD variants. Bayesian optimization and grid search then see each parameter only where it
applies. Fixed values are not hyperparameters: they join the config when it is built from a
trial's values.

Example:
    >>> hp = declare(space)  # doctest: +SKIP
    >>> config_from_values(space, trial.hyperparameters.values)  # doctest: +SKIP
    {'optimizer': 'momentum', 'momentum': 0.9, 'learning_rate': 0.0032, ...}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from experiments.registry import MOMENTUM_OPTIMIZERS
from sweeps.errors import SpecError
from sweeps.spec.space import DEFAULT, Choice, Fixed, Range, Scalar, Slot, Space, SpaceError

if TYPE_CHECKING:
    import keras_tuner

__all__ = ["check_grid", "conditions", "config_from_values", "declare", "hp_choices", "stepped_top"]

# A stepped float range's top is declared this fraction of a step above its last value, so
# KerasTuner's `(max - min) // step` counts that value in spite of float rounding.
_STEP_SLACK = 1e-6


def _labels(param: Choice) -> bool:
    """Whether `hp.Choice` gets the values as strings: `default` among numbers."""
    kinds = {type(v) for v in param.choices}
    return DEFAULT in param.choices and len(kinds) > 1


def hp_choices(name: str, param: Choice) -> list[Scalar]:
    """The values of a `hp.Choice`, which takes one type only: ints mixed with floats become
    floats, `default` among learning rates makes them all strings; anything else mixed is a spec
    error naming the parameter."""
    values = list(param.choices)
    kinds = {type(v) for v in values}
    if len(kinds) == 1:
        return values
    if _labels(param):
        return [str(v) for v in values]
    if kinds <= {int, float}:
        return [float(v) for v in values]
    names = ", ".join(sorted(k.__name__ for k in kinds))
    raise SpecError(
        f"space.{name}.choices: KerasTuner's hp.Choice takes values of one type; got {names} in {values}"
    )


def stepped_top(param: Range) -> tuple[float, int]:
    """The last value a stepped range reaches, and how many steps lead there.

    As Optuna does, a `high` that is not a whole number of steps above `low` is lowered to the
    last step below it.
    """
    assert param.step is not None
    steps = math.floor((param.high - param.low) / param.step + 1e-9)
    return param.low + steps * param.step, steps


def _declare_one(hp: keras_tuner.HyperParameters, slot: Slot) -> None:
    name, param = slot.key, slot.param
    if isinstance(param, Choice):
        hp.Choice(name, hp_choices(slot.path.removeprefix("space."), param))
        return
    assert isinstance(param, Range)
    sampling = "log" if param.log else "linear"
    if param.integer:
        step = None if param.step is None else int(param.step)
        hp.Int(name, int(param.low), int(param.high), step=step, sampling=sampling)
        return
    if param.step is None:
        hp.Float(name, param.low, param.high, sampling=sampling)
        return
    top, _ = stepped_top(param)
    # KerasTuner counts a stepped float's values as `(max - min) // step + 1`, which drops
    # the top value when rounding makes the division fall short (0.5 // 0.1 == 4.0).
    hp.Float(name, param.low, top + _STEP_SLACK * param.step, step=param.step)


def conditions(space: Space, slot: Slot) -> list[tuple[str, list[Scalar]]]:
    """When a slot is drawn, as (parent key, values) pairs that must all hold; [] for always.
    A pair with no values: never (every value of the parent overrides it)."""
    found: list[tuple[str, list[Scalar]]] = []
    if slot.parent is not None:
        found.append((slot.parent[0], [slot.parent[1]]))
    else:
        for parent in space.branching:
            param = space.params[parent]
            assert isinstance(param, Choice)
            keep = [v for v in param.choices if slot.name not in param.branches.get(v, {})]
            if len(keep) < len(param.choices):
                found.append((parent, keep))
    if slot.name == "momentum":
        optimizer = space.params["optimizer"]
        if isinstance(optimizer, Choice):
            found.append(("optimizer", [o for o in optimizer.choices if o in MOMENTUM_OPTIMIZERS]))
    merged: dict[str, list[Scalar]] = {}
    for parent, values in found:  # the same parent twice: both must hold
        merged[parent] = [v for v in merged.get(parent, values) if v in values]
    return list(merged.items())


def _key_values(space: Space, parent: str, values: list[Scalar]) -> list[Scalar]:
    """A parent's condition values as its `hp.Choice` holds them."""
    param = space.params[parent]
    assert isinstance(param, Choice)
    return hp_choices(parent, Choice(tuple(values))) if not _labels(param) else [str(v) for v in values]


def declare(space: Space, hp: keras_tuner.HyperParameters | None = None) -> keras_tuner.HyperParameters:
    """The searched slots of `space` as KerasTuner hyperparameters, each in its conditional
    scopes (see `conditions`); a slot that no config draws is left out."""
    import keras_tuner

    hp = hp if hp is not None else keras_tuner.HyperParameters()
    for slot in space.slots():
        if isinstance(slot.param, Fixed):
            continue
        scopes = conditions(space, slot)
        if any(not values for _, values in scopes):
            continue
        if len(scopes) > 1:
            # KerasTuner looks a scope's parent up among the hyperparameters of the enclosing
            # scopes, so it cannot nest the scopes of two top-level choices.
            parents = " and ".join(parent for parent, _ in scopes)
            raise SpecError(
                f"{slot.path}: the kerastuner engine conditions a parameter on one choice only, but "
                f"{slot.name} here depends on {parents}; set it in the optimizer's sub-spaces, or use "
                "engine optuna"
            )
        if not scopes:
            _declare_one(hp, slot)
            continue
        ((parent, values),) = scopes
        with hp.conditional_scope(parent, _key_values(space, parent, values)):
            _declare_one(hp, slot)
    return hp


def _clean(param: Range | Choice | Fixed, value: Any) -> Scalar:
    """A value as plain Python data: ints for integer ranges, floats without the rounding
    residue of `low + i * step` (0.30000000000000004), a choice's own value for its label."""
    if isinstance(param, Range):
        if param.integer:
            return int(value)
        value = float(value)
        return float(f"{value:.12g}") if param.step is not None else value
    if isinstance(param, Choice) and _labels(param):
        return next(c for c in param.choices if str(c) == str(value))
    if isinstance(value, bool | str):
        return value
    return int(value) if isinstance(value, int) else float(value)


def config_from_values(space: Space, values: Mapping[str, Any]) -> dict[str, Scalar]:
    """A trial's config (plain names) from KerasTuner's `hp.values`: fixed values filled in,
    each sub-space's values read from its keys, KerasTuner's own `tuner/*` entries left out."""

    def pick(slot: Slot) -> Scalar:
        if slot.key not in values:
            raise KeyError(f"KerasTuner gave no value for {slot.key!r} (values: {dict(values)})")
        return _clean(slot.param, values[slot.key])

    return space.walk(pick)


def check_grid(space: Space) -> None:
    """Grid search enumerates lists of values: a range is a spec error, as with Optuna's grid.

    (KerasTuner would grid a float range as 10 arbitrary points.) A list of momentum values is
    fine: it is enumerated under the momentum variants only.
    """
    try:
        space.grid_points("grid tuner")
    except SpaceError as exc:
        raise SpecError(str(exc)) from None
