"""The search space, written once and translated for each engine.

A spec's `space` maps a parameter name to a fixed value, a list of choices or a range. A
choice may carry a sub-space per value, whose entries override the top-level ones when that
value is drawn:

    optimizer:
      choices:
        sgd:  {learning_rate: {choices: [default, 0.1]}}
        adam: {learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}}
        adagrad: {}                 # everything from the top level
    learning_rate: default          # the optimizer's own Keras default

Parsing here gives errors that name the exact path (`space.optimizer.choices.adam.learning_rate.low`).
Each parameter is a `Slot`: its plain name (what configs, MLflow and reports show) and the key
an engine knows it by, which is `name@value` inside a sub-space, because Optuna (and
KerasTuner) need one distribution per name. `walk` draws a config the way every engine does:
choices that carry sub-spaces first (the optimizer first of all), then the optimizer, then the
rest, so that a sub-space is known before the parameters it overrides are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from experiments.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS

if TYPE_CHECKING:
    import optuna

Scalar = str | int | float | bool
DEFAULT = "default"  # learning_rate: the optimizer's own Keras default


@dataclass(frozen=True)
class Fixed:
    value: Scalar


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class Choice:
    choices: tuple[Scalar, ...]
    # value -> that value's sub-space (only values that carry one; `{}` overrides nothing)
    branches: Mapping[Scalar, Mapping[str, Fixed | Choice | Range]] = field(default_factory=dict)


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


@dataclass(frozen=True)
class Slot:
    """One parameter as configs draw it: inside a sub-space, `parent` is (choice name, value)."""

    name: str
    param: Param
    parent: tuple[str, Scalar] | None = None

    @property
    def key(self) -> str:
        """The name an engine knows the parameter by: `learning_rate@adam` inside a sub-space."""
        return self.name if self.parent is None else f"{self.name}@{self.parent[1]}"

    @property
    def path(self) -> str:
        if self.parent is None:
            return f"space.{self.name}"
        return f"space.{self.parent[0]}.choices.{self.parent[1]}.{self.name}"


def parse_param(name: str, raw: Any, path: str | None = None) -> Param:
    """One space entry -> Fixed | Choice | Range, checked for emptiness and order."""
    path = path or f"space.{name}"
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
        if isinstance(choices, Mapping) and choices:
            return Choice(tuple(choices), {value: sub or {} for value, sub in choices.items()})
        if not isinstance(choices, list) or not choices:
            raise SpaceError(
                f"{path}.choices", "must be a non-empty list, or a mapping of value -> sub-space"
            )
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


def _check_values(name: str, param: Param, path: str) -> None:
    """Range checks on the values a training parameter can take."""
    for value in _values(param):
        if name == "optimizer":
            if value not in OPTIMIZERS:
                raise SpaceError(
                    path, f"unknown optimizer {value!r} (expected one of: {', '.join(OPTIMIZERS)})"
                )
            continue
        if name == "learning_rate" and value == DEFAULT:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            hint = " or 'default' (the optimizer's own)" if name == "learning_rate" else ""
            raise SpaceError(path, f"must be a number{hint}, got {value!r}")
        if name == "learning_rate" and not value > 0:
            raise SpaceError(path, f"learning rate must be > 0, got {value}")
        if name in ("dropout", "momentum") and not 0 <= value < 1:
            raise SpaceError(path, f"must be in [0, 1), got {value}")
        if name == "patience" and (value < 0 or value != int(value)):
            raise SpaceError(path, f"patience must be a whole number >= 0, got {value}")
        if name == "batch_size" and (value < 1 or value != int(value)):
            raise SpaceError(path, f"batch size must be a whole number >= 1, got {value}")


def _next(pending: Mapping[str, Slot]) -> str:
    """Which pending parameter to draw next: choices with sub-spaces, then the optimizer (momentum
    depends on it), then the rest in spec order."""
    branching = [name for name, slot in pending.items() if _branches(slot.param)]
    if branching:
        return "optimizer" if "optimizer" in branching else branching[0]
    return "optimizer" if "optimizer" in pending else next(iter(pending))


def _branches(param: Param) -> Mapping[Scalar, Mapping[str, Param]]:
    return param.branches if isinstance(param, Choice) else {}


def _applies(name: str, config: Mapping[str, Any]) -> bool:
    """Momentum only for the SGD variants with momentum, wherever the space puts it."""
    return name != "momentum" or config.get("optimizer") in MOMENTUM_OPTIMIZERS


@dataclass(frozen=True)
class Space:
    """Named parameters, some with sub-spaces; `momentum` is conditional on an SGD variant with it."""

    params: Mapping[str, Param]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], allowed: set[str] | None) -> Space:
        """Parse `space:`; `allowed` is the set of model options (None: any, a user builder)."""
        if not isinstance(raw, Mapping):
            raise SpaceError("space", f"must be a mapping of parameter -> value/choices/range, got {raw!r}")
        params: dict[str, Param] = {}
        for name, value in raw.items():
            params[str(name)] = _parse_entry(str(name), value, f"space.{name}", allowed)
        for name, value in DEFAULTS.items():
            params.setdefault(name, Fixed(value))
        space = cls(params)
        space._check_sub_spaces()
        if not space.momentum_possible:
            for slot in space.slots():
                if slot.name == "momentum":
                    raise SpaceError(
                        slot.path,
                        f"only used by {' or '.join(MOMENTUM_OPTIMIZERS)}, which space.optimizer never picks",
                    )
        return space

    def _check_sub_spaces(self) -> None:
        """Sub-spaces nest one level, override each name from one choice only, and leave the
        optimizer, momentum's condition, and other choices with sub-spaces alone."""
        owner: dict[str, str] = {}
        for parent, param in self.params.items():
            for value, sub in _branches(param).items():
                path = f"space.{parent}.choices.{value}"
                if not isinstance(sub, Mapping):
                    raise SpaceError(
                        path, f"a sub-space must be a mapping of parameter -> value, got {sub!r}"
                    )
                for name in sub:
                    where = f"{path}.{name}"
                    if name == parent or name == "optimizer" or _branches(self.params.get(name, Fixed(0))):
                        raise SpaceError(where, f"a sub-space cannot set {name!r}, which is drawn before it")
                    if _branches(sub[name]):
                        raise SpaceError(f"{where}.choices", "sub-spaces nest one level only")
                    if owner.setdefault(name, parent) != parent:
                        raise SpaceError(
                            where,
                            f"{name!r} is already set by the sub-spaces of space.{owner[name]}; "
                            "only one choice's sub-spaces may set it",
                        )
                    if name == "momentum" and parent == "optimizer" and value not in MOMENTUM_OPTIMIZERS:
                        raise SpaceError(
                            where, f"only used by {' or '.join(MOMENTUM_OPTIMIZERS)}, not {value}"
                        )

    @property
    def optimizers(self) -> tuple[str, ...]:
        """Every optimizer a config of this space can name (fused packs trace their step for all)."""
        return tuple(dict.fromkeys(str(v) for v in _values(self.params["optimizer"])))

    @property
    def momentum_possible(self) -> bool:
        return any(opt in MOMENTUM_OPTIMIZERS for opt in _values(self.params["optimizer"]))

    # -- the slots and how configs are drawn ----------------------------------------------------

    def slots(self) -> list[Slot]:
        """Every parameter of every sub-space, parents before the sub-spaces they carry."""
        out: list[Slot] = []
        for name in self._order():
            param = self.params[name]
            out.append(Slot(name, param))
            for value, sub in _branches(param).items():
                out += [Slot(child, p, (name, value)) for child, p in sub.items()]
        return out

    def _order(self) -> list[str]:
        pending = {name: Slot(name, p) for name, p in self.params.items()}
        order = []
        while pending:
            order.append(_next(pending))
            del pending[order[-1]]
        return order

    def expand(
        self, options: Callable[[Slot], Iterable[Scalar]]
    ) -> Iterator[tuple[dict[str, Scalar], dict[str, Slot]]]:
        """Every config `options(slot)` allows for each searched slot, in draw order, with the slot
        each parameter came from. Fixed values need no options."""
        pending = {name: Slot(name, p) for name, p in self.params.items()}
        yield from _expand(pending, {}, {}, options)

    def walk(self, pick: Callable[[Slot], Scalar]) -> dict[str, Scalar]:
        """One config, `pick(slot)` giving each searched slot's value as it is drawn."""
        config, _ = next(self.expand(lambda slot: [pick(slot)]))
        order = ["optimizer", *self.params]
        return dict(
            sorted(config.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order))
        )

    def suggest(self, trial: optuna.Trial) -> dict[str, Scalar]:
        """Draw one config through Optuna, under each slot's engine key (`learning_rate@adam`)."""

        def pick(slot: Slot) -> Scalar:
            param = slot.param
            if isinstance(param, Choice):
                return trial.suggest_categorical(slot.key, list(param.choices))
            assert isinstance(param, Range)
            if param.integer:
                step = int(param.step or 1)
                return trial.suggest_int(slot.key, int(param.low), int(param.high), step=step, log=param.log)
            return trial.suggest_float(slot.key, param.low, param.high, step=param.step, log=param.log)

        return self.walk(pick)

    def config(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A whole config (plain names) from the values an engine recorded under its keys."""
        return self.walk(lambda slot: values[slot.key])

    def slots_of(self, config: Mapping[str, Any]) -> dict[str, Slot]:
        """The slot each parameter of a config (plain names) was drawn from."""
        _, slots = next(self.expand(lambda slot: [config[slot.name]]))
        return slots

    def grid_points(self, searcher: str = "grid sampler") -> list[dict[str, Scalar]]:
        """Every config of a grid search, as {engine key: value}: each choice's own sub-space
        enumerated, momentum only where it applies. A range is a SpaceError naming `searcher`."""

        def options(slot: Slot) -> Iterable[Scalar]:
            if isinstance(slot.param, Range):
                raise SpaceError(
                    slot.path,
                    f"the {searcher} needs a list of values: write {{choices: [...]}} instead of a range",
                )
            assert isinstance(slot.param, Choice)
            return slot.param.choices

        points = []
        for config, slots in self.expand(options):
            points.append(
                {slot.key: config[name] for name, slot in slots.items() if not isinstance(slot.param, Fixed)}
            )
        return points

    # -- what reports and best.yaml read ------------------------------------------------------

    @property
    def searched(self) -> list[str]:
        """Plain names searched anywhere (in some sub-space, or at the top), the optimizer first."""
        names: list[str] = []
        for slot in self.slots():
            if not isinstance(slot.param, Fixed) and slot.name not in names:
                names.append(slot.name)
        return sorted(names, key=lambda name: name != "optimizer")

    def variants(self, name: str) -> list[Param]:
        """Every entry a plain name has: the top-level one and those of the sub-spaces."""
        return [slot.param for slot in self.slots() if slot.name == name]

    @property
    def branching(self) -> list[str]:
        """The choices that carry sub-spaces."""
        return [name for name, param in self.params.items() if _branches(param)]

    def fixed(self) -> dict[str, Scalar]:
        return {name: p.value for name, p in self.params.items() if isinstance(p, Fixed)}

    def to_dict(self) -> dict[str, Any]:
        """Back to the spec's YAML shape."""
        return _to_dict(self.params)


def _parse_entry(name: str, value: Any, path: str, allowed: set[str] | None) -> Param:
    """One entry of the space or of a sub-space: a known name, parsed, its values checked."""
    if name not in TRAIN_PARAMS and allowed is not None and name not in allowed:
        known = sorted({*TRAIN_PARAMS, *allowed})
        close = get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpaceError(path, f"unknown parameter{hint}; known: {', '.join(known)}")
    param = parse_param(name, value, path)
    if isinstance(param, Choice) and param.branches:
        subs: dict[Scalar, dict[str, Param]] = {}
        for choice, sub in param.branches.items():
            where = f"{path}.choices.{choice}"
            if name in TRAIN_PARAMS:
                _check_values(name, Fixed(choice), where)
            if not isinstance(sub, Mapping):
                raise SpaceError(where, f"a sub-space must be a mapping of parameter -> value, got {sub!r}")
            subs[choice] = {str(k): _parse_entry(str(k), v, f"{where}.{k}", allowed) for k, v in sub.items()}
        param = Choice(param.choices, subs)
    elif name in TRAIN_PARAMS:
        _check_values(name, param, path)
    return param


def _expand(
    pending: dict[str, Slot],
    config: dict[str, Scalar],
    slots: dict[str, Slot],
    options: Callable[[Slot], Iterable[Scalar]],
) -> Iterator[tuple[dict[str, Scalar], dict[str, Slot]]]:
    if not pending:
        yield config, slots
        return
    name = _next(pending)
    slot = pending[name]
    rest = {key: value for key, value in pending.items() if key != name}
    if not _applies(name, config):
        yield from _expand(rest, config, slots, options)
        return
    values = [slot.param.value] if isinstance(slot.param, Fixed) else options(slot)
    for value in values:
        after = dict(rest)
        for child, param in _branches(slot.param).get(value, {}).items():
            after[child] = Slot(child, param, (name, value))
        yield from _expand(after, {**config, name: value}, {**slots, name: slot}, options)


def _to_dict(params: Mapping[str, Param]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, p in params.items():
        if isinstance(p, Fixed):
            out[name] = p.value
        elif isinstance(p, Choice):
            if p.branches:
                out[name] = {"choices": {c: _to_dict(p.branches.get(c, {})) for c in p.choices}}
            else:
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


def spec_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as a trial logged it, back in the spec's words: `learning_rate: default` where
    `learning_rate_default` says the optimizer's own default was used."""
    out = {k: v for k, v in config.items() if k != "learning_rate_default"}
    if config.get("learning_rate_default"):
        out["learning_rate"] = DEFAULT
    return out


def describe(config: Mapping[str, Any]) -> str:
    """A short human label for a config, used in run names: `adam lr=3.2e-03 do=0.25 p=3`."""
    parts = [str(config.get("optimizer", ""))]
    if config.get("learning_rate_default") or config.get("learning_rate") == DEFAULT:
        parts.append("lr=default")
    elif "learning_rate" in config:
        parts.append(f"lr={float(config['learning_rate']):.1e}")
    if "momentum" in config:
        parts.append(f"m={float(config['momentum']):.2f}")
    if "dropout" in config:
        parts.append(f"do={float(config['dropout']):.2f}")
    if "patience" in config:
        parts.append(f"p={config['patience']}")
    return " ".join(parts)
