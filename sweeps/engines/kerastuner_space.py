"""The search space, translated for KerasTuner: `hp.Choice/Float/Int`, and configs back out.

The space is written once (`sweeps.spec.space`); here each searched parameter becomes one
KerasTuner hyperparameter, declared in the order `Space.suggest` draws them (the optimizer
first), so that `momentum` can sit in a `conditional_scope` of the momentum SGD variants and
Bayesian optimization and grid search see it only there. Fixed values are not
hyperparameters: they join the config when it is built from a trial's values.

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
from sweeps.spec.space import Choice, Fixed, Range, Scalar, Space

if TYPE_CHECKING:
    import keras_tuner

__all__ = ["check_grid", "config_from_values", "declare", "draw_order", "hp_choices", "stepped_top"]

# A stepped float range's top is declared this fraction of a step above its last value, so
# KerasTuner's `(max - min) // step` counts that value in spite of float rounding.
_STEP_SLACK = 1e-6


def draw_order(space: Space) -> list[str]:
    """Parameter names in the order configs are drawn: the optimizer first, as `Space.suggest`."""
    return sorted(space.params, key=lambda name: name != "optimizer")


def hp_choices(name: str, param: Choice) -> list[Scalar]:
    """The values of a `hp.Choice`, which takes one type only: ints mixed with floats become
    floats; anything else mixed is a spec error naming the parameter."""
    values = list(param.choices)
    kinds = {type(v) for v in values}
    if len(kinds) == 1:
        return values
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


def _declare_one(hp: keras_tuner.HyperParameters, name: str, param: Choice | Range) -> None:
    if isinstance(param, Choice):
        hp.Choice(name, hp_choices(name, param))
        return
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


def declare(space: Space, hp: keras_tuner.HyperParameters | None = None) -> keras_tuner.HyperParameters:
    """The searched parameters of `space` as KerasTuner hyperparameters.

    `momentum` is declared under `conditional_scope("optimizer", <momentum variants>)` when the
    optimizer is searched; with a fixed optimizer (which `Space.parse` has checked is a
    momentum variant) it is an ordinary hyperparameter.
    """
    import keras_tuner

    hp = hp if hp is not None else keras_tuner.HyperParameters()
    optimizer = space.params["optimizer"]
    for name in draw_order(space):
        param = space.params[name]
        if isinstance(param, Fixed):
            continue
        if name == "momentum" and isinstance(optimizer, Choice):
            variants = [o for o in optimizer.choices if o in MOMENTUM_OPTIMIZERS]
            with hp.conditional_scope("optimizer", variants):
                _declare_one(hp, name, param)
        else:
            _declare_one(hp, name, param)
    return hp


def _clean(param: Range | Choice | Fixed, value: Any) -> Scalar:
    """A value as plain Python data: ints for integer ranges, floats without the rounding
    residue of `low + i * step` (0.30000000000000004)."""
    if isinstance(param, Range):
        if param.integer:
            return int(value)
        value = float(value)
        return float(f"{value:.12g}") if param.step is not None else value
    if isinstance(value, bool | str):
        return value
    return int(value) if isinstance(value, int) else float(value)


def config_from_values(space: Space, values: Mapping[str, Any]) -> dict[str, Scalar]:
    """A trial's config from KerasTuner's `hp.values`: fixed values filled in, `momentum`
    only for the momentum variants, KerasTuner's own `tuner/*` entries left out."""
    config: dict[str, Scalar] = {}
    for name in draw_order(space):
        if not space.applies(name, config):
            continue
        param = space.params[name]
        if isinstance(param, Fixed):
            config[name] = param.value
        elif name in values:
            config[name] = _clean(param, values[name])
        else:
            raise KeyError(f"KerasTuner gave no value for {name!r} (values: {dict(values)})")
    return config


def check_grid(space: Space) -> None:
    """Grid search enumerates lists of values: a range is a spec error, as with Optuna's grid.

    (KerasTuner would grid a float range as 10 arbitrary points.) Unlike Optuna's grid, a
    list of momentum values is fine: KerasTuner enumerates it under the momentum variants only.
    """
    for name, param in space.params.items():
        if isinstance(param, Range):
            raise SpecError(
                f"space.{name}: the grid tuner needs a list of values: "
                "write {choices: [...]} instead of a range"
            )
