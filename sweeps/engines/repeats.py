"""Failures that repeating a config cannot change, and when they leave nothing to try.

Training is seeded (`train.seed`), so a config whose loss turns NaN does so again, and a
model that cannot be built for a config never will be: trying it again only spends time.
Failures that depend on the moment (out of memory, a worker killed, an exception from the
system) are not of that kind; they stay as they are (retries of a dead worker included).

Engines ask this module at one point, right after a trial failed: is the failure of that
kind, and does the space then hold no config that has not failed so? A fixed space (one
config) stops after its first such failure; a grid counts the point as done.

Example:
    >>> from sweeps.spec.space import Space
    >>> space = Space.parse({"optimizer": "sgd"}, None)
    >>> is_deterministic("nan_loss"), space_size(space)
    (True, 1)
    >>> exhausted(space, [{"optimizer": "sgd"}])
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from experiments.registry import MOMENTUM_OPTIMIZERS
from sweeps.spec.space import Choice, Fixed, Param, Range, Space

__all__ = ["DEAD_ATTR", "DETERMINISTIC", "exhausted", "is_deterministic", "space_size"]

# Trial failure reasons that a seeded re-run repeats exactly.
DETERMINISTIC = frozenset({"nan_loss", "model_error", "config_error"})
# Where an engine marks a trial that failed so (its value: the reason).
DEAD_ATTR = "sweeplab_failed_for_good"


def is_deterministic(reason: str) -> bool:
    return reason in DETERMINISTIC


def _size(param: Param) -> int | None:
    if isinstance(param, Fixed):
        return 1
    if isinstance(param, Choice):
        return len(param.choices)
    if isinstance(param, Range) and (param.integer or param.step is not None):
        step = param.step or 1.0
        return math.floor((param.high - param.low) / step + 1e-9) + 1
    return None  # a continuous range: no config is ever proposed twice


def space_size(space: Space) -> int | None:
    """How many distinct configs the space holds (momentum counted only where it applies);
    None when it is continuous."""
    params = dict(space.params)
    optimizer = params.pop("optimizer")
    momentum = params.pop("momentum", None)
    rest = 1
    for param in params.values():
        size = _size(param)
        if size is None:
            return None
        rest *= size
    momentum_size = 1 if momentum is None else _size(momentum)
    total = 0
    for value in (
        [optimizer.value] if isinstance(optimizer, Fixed) else list(getattr(optimizer, "choices", ()))
    ):
        if value in MOMENTUM_OPTIMIZERS:
            if momentum_size is None:
                return None
            total += rest * momentum_size
        else:
            total += rest
    return total


def _key(space: Space, config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    whole = space.config({k: v for k, v in config.items() if k in space.params})
    return tuple(
        sorted(
            (k, float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in whole.items()
        )
    )


def exhausted(space: Space, failed_for_good: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every config of a finite space has failed in a way that repeats."""
    size = space_size(space)
    if size is None:
        return False
    return len({_key(space, config) for config in failed_for_good}) >= size
