"""The search space, written once and translated for each engine.

A spec's `space` maps a parameter name to a fixed value, a list of choices or a range.
Parsing here gives errors that name the parameter; the same `Space` then proposes configs
through Optuna's `trial.suggest_*` (and KerasTuner's `hp.*` in `sweeps.engines`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from experiments.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS

if TYPE_CHECKING:
    import optuna

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Fixed:
    value: Scalar


@dataclass(frozen=True)
class Choice:
    choices: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False


Param = Fixed | Choice | Range

# Parameters the training job itself understands; anything else must be a model option.
TRAIN_PARAMS = ("optimizer", "learning_rate", "momentum", "dropout", "patience", "batch_size")
DEFAULTS: dict[str, Scalar] = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "dropout": 0.0,
    "patience": 2,
}
INT_PARAMS = ("patience", "batch_size")


class SpaceError(ValueError):
    """A space entry that cannot be searched; `path` names it (e.g. `space.dropout.high`)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


def parse_param(name: str, raw: Any) -> Param:
    """One space entry -> Fixed | Choice | Range, checked for emptiness and order."""
    path = f"space.{name}"
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            raise SpaceError(path, f"a list needs a key: write {{choices: {raw}}}")
        if raw is None:
            raise SpaceError(path, "no value given")
        return Fixed(raw)
    keys = set(raw)
    if "choices" in keys:
        extra = keys - {"choices"}
        if extra:
            raise SpaceError(path, f"'choices' takes no other keys (got {sorted(extra)})")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{path}.choices", "must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{path}.choices", f"repeats a value: {choices}")
        return Choice(tuple(choices))
    allowed = {"low", "high", "log", "step"}
    unknown = keys - allowed
    if unknown or not {"low", "high"} <= keys:
        raise SpaceError(
            path,
            f"expected a value, {{choices: [...]}} or {{low, high[, log, step]}}; got keys {sorted(keys)}",
        )
    low, high = raw["low"], raw["high"]
    for key, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise SpaceError(f"{path}.{key}", f"must be a number, got {value!r}")
    if low >= high:
        raise SpaceError(path, f"empty or inverted range: low={low} must be below high={high}")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise SpaceError(f"{path}.low", f"a log range needs low > 0, got {low}")
    step = raw.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0):
        raise SpaceError(f"{path}.step", f"must be a positive number, got {step!r}")
    if log and step is not None:
        raise SpaceError(path, "log and step cannot be combined")
    integer = name in INT_PARAMS or (
        isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))
    )
    return Range(float(low), float(high), log, None if step is None else float(step), integer)


def _values(param: Param) -> Iterator[Scalar]:
    if isinstance(param, Fixed):
        yield param.value
    elif isinstance(param, Choice):
        yield from param.choices
    else:
        yield param.low
        yield param.high


def _check_values(name: str, param: Param) -> None:
    """Range checks on the values a training parameter can take."""
    path = f"space.{name}"
    for value in _values(param):
        if name == "optimizer":
            if value not in OPTIMIZERS:
                raise SpaceError(
                    path, f"unknown optimizer {value!r} (expected one of: {', '.join(OPTIMIZERS)})"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpaceError(path, f"must be a number, got {value!r}")
        if name == "learning_rate" and not value > 0:
            raise SpaceError(path, f"learning rate must be > 0, got {value}")
        if name in ("dropout", "momentum") and not 0 <= value < 1:
            raise SpaceError(path, f"must be in [0, 1), got {value}")
        if name == "patience" and (value < 0 or value != int(value)):
            raise SpaceError(path, f"patience must be a whole number >= 0, got {value}")
        if name == "batch_size" and (value < 1 or value != int(value)):
            raise SpaceError(path, f"batch size must be a whole number >= 1, got {value}")


@dataclass(frozen=True)
class Space:
    """Named parameters; `momentum` is conditional on an SGD variant with momentum."""

    params: Mapping[str, Param]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], allowed: set[str] | None) -> Space:
        """Parse `space:`; `allowed` is the set of model options (None: any, a user builder)."""
        if not isinstance(raw, Mapping):
            raise SpaceError("space", f"must be a mapping of parameter -> value/choices/range, got {raw!r}")
        params: dict[str, Param] = {}
        for name, value in raw.items():
            if name not in TRAIN_PARAMS and allowed is not None and name not in allowed:
                from difflib import get_close_matches

                known = sorted({*TRAIN_PARAMS, *allowed})
                close = get_close_matches(str(name), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise SpaceError(f"space.{name}", f"unknown parameter{hint}; known: {', '.join(known)}")
            param = parse_param(str(name), value)
            if name in TRAIN_PARAMS:
                _check_values(name, param)
            params[str(name)] = param
        for name, value in DEFAULTS.items():
            params.setdefault(name, Fixed(value))
        space = cls(params)
        if "momentum" in params and not space.momentum_possible:
            raise SpaceError(
                "space.momentum",
                f"only used by {' or '.join(MOMENTUM_OPTIMIZERS)}, which space.optimizer never picks",
            )
        return space

    @property
    def momentum_possible(self) -> bool:
        return any(opt in MOMENTUM_OPTIMIZERS for opt in _values(self.params["optimizer"]))

    @property
    def searched(self) -> list[str]:
        return [name for name, p in self.params.items() if not isinstance(p, Fixed)]

    def fixed(self) -> dict[str, Scalar]:
        return {name: p.value for name, p in self.params.items() if isinstance(p, Fixed)}

    def applies(self, name: str, config: Mapping[str, Any]) -> bool:
        """Whether `name` takes part in a config (momentum only for the momentum SGD variants)."""
        return name != "momentum" or config.get("optimizer") in MOMENTUM_OPTIMIZERS

    def suggest(self, trial: optuna.Trial) -> dict[str, Scalar]:
        """Draw one config through Optuna; the optimizer is drawn first so momentum can depend on it."""
        config: dict[str, Scalar] = {}
        for name in sorted(self.params, key=lambda n: n != "optimizer"):
            param = self.params[name]
            if not self.applies(name, config):
                continue
            if isinstance(param, Fixed):
                config[name] = param.value
            elif isinstance(param, Choice):
                config[name] = trial.suggest_categorical(name, list(param.choices))
            elif param.integer:
                step = int(param.step or 1)
                config[name] = trial.suggest_int(
                    name, int(param.low), int(param.high), step=step, log=param.log
                )
            else:
                config[name] = trial.suggest_float(
                    name, param.low, param.high, step=param.step, log=param.log
                )
        return config

    def config(self, searched: Mapping[str, Any]) -> dict[str, Any]:
        """A whole config from the searched values an engine recorded, plus the fixed ones."""
        config = {**self.fixed(), **searched}
        return {name: config[name] for name in self.params if name in config and self.applies(name, config)}

    def grid(self) -> dict[str, list[Scalar]]:
        """The value lists for Optuna's GridSampler; ranges and conditional momentum cannot be gridded."""
        grid: dict[str, list[Scalar]] = {}
        for name, param in self.params.items():
            if isinstance(param, Range):
                raise SpaceError(
                    f"space.{name}",
                    "the grid sampler needs a list of values: write {choices: [...]} instead of a range",
                )
            if isinstance(param, Choice):
                if name == "momentum":
                    raise SpaceError(
                        "space.momentum",
                        "the grid sampler cannot search a conditional parameter: give momentum one value",
                    )
                grid[name] = list(param.choices)
        return grid

    def to_dict(self) -> dict[str, Any]:
        """Back to the spec's YAML shape."""
        out: dict[str, Any] = {}
        for name, p in self.params.items():
            if isinstance(p, Fixed):
                out[name] = p.value
            elif isinstance(p, Choice):
                out[name] = {"choices": list(p.choices)}
            else:
                cast = int if p.integer else float
                entry: dict[str, Any] = {"low": cast(p.low), "high": cast(p.high)}
                if p.log:
                    entry["log"] = True
                if p.step is not None:
                    entry["step"] = cast(p.step)
                out[name] = entry
        return out


def describe(config: Mapping[str, Any]) -> str:
    """A short human label for a config, used in run names: `adam lr=3.2e-03 do=0.25 p=3`."""
    parts = [str(config.get("optimizer", ""))]
    if "learning_rate" in config:
        parts.append(f"lr={float(config['learning_rate']):.1e}")
    if "momentum" in config:
        parts.append(f"m={float(config['momentum']):.2f}")
    if "dropout" in config:
        parts.append(f"do={float(config['dropout']):.2f}")
    if "patience" in config:
        parts.append(f"p={config['patience']}")
    return " ".join(parts)
