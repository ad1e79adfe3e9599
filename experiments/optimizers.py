"""The six optimizers the seeds compare (seed 001), by name.

Example:
    >>> make_optimizer("nesterov", 0.01).nesterov
    True
"""

from __future__ import annotations

import keras

from experiments.errors import did_you_mean
from experiments.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS

__all__ = ["DEFAULT_MOMENTUM", "make_optimizer"]

# Seed 001's SGD(momentum=0.9), used when a momentum optimizer is given none.
DEFAULT_MOMENTUM = 0.9


def make_optimizer(
    name: str, learning_rate: float, momentum: float | None = None
) -> keras.optimizers.Optimizer:
    """A fresh optimizer; ``momentum`` applies to ``momentum``/``nesterov`` only.

    Raises:
        ValueError: unknown name, or a momentum given to an optimizer without one
            (a search space that samples it there searches nothing).
    """
    if name not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {name!r}{did_you_mean(name, OPTIMIZERS)}; expected one of "
            f"{', '.join(OPTIMIZERS)}"
        )
    if momentum is not None and name not in MOMENTUM_OPTIMIZERS:
        raise ValueError(
            f"momentum={momentum} applies only to optimizers {', '.join(MOMENTUM_OPTIMIZERS)}; "
            f"got optimizer {name!r}"
        )
    if name in MOMENTUM_OPTIMIZERS:
        return keras.optimizers.SGD(
            learning_rate,
            momentum=DEFAULT_MOMENTUM if momentum is None else momentum,
            nesterov=name == "nesterov",
        )
    factory = {
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "adam": keras.optimizers.Adam,
    }[name]
    return factory(learning_rate)
