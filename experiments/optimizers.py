"""The six optimizers the seeds compare (seed 001), by name.

Example:
    >>> make_optimizer("nesterov", 0.01).nesterov
    True
"""

from __future__ import annotations

import inspect

import keras

from experiments.errors import did_you_mean
from experiments.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS

__all__ = ["DEFAULT_MOMENTUM", "default_learning_rate", "make_optimizer", "momentum_of"]

# Seed 001's SGD(momentum=0.9), used when a momentum optimizer is given none.
DEFAULT_MOMENTUM = 0.9


def momentum_of(name: str, momentum: float | None) -> float:
    """The momentum optimizer ``name`` steps with: 0 for the rules without one, the seeds' 0.9
    for a momentum rule given none (`make_optimizer`, a fused branch and its checkpoint agree)."""
    if name not in MOMENTUM_OPTIMIZERS:
        return 0.0
    return float(DEFAULT_MOMENTUM if momentum is None else momentum)


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
            learning_rate, momentum=momentum_of(name, momentum), nesterov=name == "nesterov"
        )
    return _keras_class(name)(learning_rate)


def _keras_class(name: str) -> type[keras.optimizers.Optimizer]:
    if name in ("sgd", *MOMENTUM_OPTIMIZERS):
        return keras.optimizers.SGD
    return {
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "adam": keras.optimizers.Adam,
    }[name]


def default_learning_rate(name: str) -> float:
    """The learning rate Keras's optimizer class uses when given none (SGD 0.01, Adam 0.001, ...):
    what seed 001 compared the optimizers at. Read from the installed Keras, not copied."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}{did_you_mean(name, OPTIMIZERS)}")
    return float(inspect.signature(_keras_class(name)).parameters["learning_rate"].default)
