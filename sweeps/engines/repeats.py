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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sweeps.spec.space import Choice, Range, Scalar, Slot, Space

__all__ = ["DEAD_ATTR", "DETERMINISTIC", "exhausted", "is_deterministic", "space_size"]

# Trial failure reasons that a seeded re-run repeats exactly.
DETERMINISTIC = frozenset({"nan_loss", "model_error", "config_error"})
# Where an engine marks a trial that failed so (its value: the reason).
DEAD_ATTR = "sweeplab_failed_for_good"
SIZE_LIMIT = 100_000  # a space larger than this is treated as never exhausted


def is_deterministic(reason: str) -> bool:
    return reason in DETERMINISTIC


class _Continuous(Exception):
    """A slot with no finite list of values: the space never proposes a config twice."""


def _options(slot: Slot) -> Sequence[Scalar]:
    param = slot.param
    if isinstance(param, Choice):
        return param.choices
    if isinstance(param, Range) and (param.integer or param.step is not None):
        step = param.step or 1.0
        return [param.low + i * step for i in range(math.floor((param.high - param.low) / step + 1e-9) + 1)]
    raise _Continuous


def space_size(space: Space, limit: int = SIZE_LIMIT) -> int | None:
    """How many distinct configs the space holds, each choice with its own sub-space (momentum
    only where it applies); None when it is continuous or holds more than `limit`."""
    count = 0
    try:
        for _ in space.expand(_options):
            count += 1
            if count > limit:
                return None
    except _Continuous:
        return None
    return count


def _key(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A config as the engine recorded it (its own keys), with 1 and 1.0 alike."""
    return tuple(
        sorted(
            (k, float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
            for k, v in config.items()
        )
    )


def exhausted(space: Space, failed_for_good: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every config of a finite space has failed in a way that repeats; the configs are
    as one engine records them (Optuna: the searched values under their keys; KerasTuner:
    whole configs), so that equal configs compare equal."""
    size = space_size(space)
    if size is None:
        return False
    return len({_key(config) for config in failed_for_good}) >= size
