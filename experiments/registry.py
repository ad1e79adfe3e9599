"""Names of the built-in datasets, models, optimizers and metrics.

Kept free of heavy imports so that a CLI can validate a spec's names without
waiting for Keras or TensorFlow to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DATASETS",
    "METRICS",
    "MODELS",
    "MODEL_OPTIONS",
    "MOMENTUM_OPTIMIZERS",
    "NPZ_PREFIX",
    "OPTIMIZERS",
    "is_npz",
    "is_user_builder",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
MOMENTUM_OPTIMIZERS: tuple[str, ...] = ("momentum", "nesterov")
MODELS: tuple[str, ...] = ("mlp", "cnn", "alexnet")
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10")

# The options each built-in model accepts besides dropout; user builders take anything.
MODEL_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "mlp": ("units",),
        "cnn": ("filters", "kernel_size", "units"),
        "alexnet": ("input_size", "width"),
    }
)

# What `experiments.train` logs per epoch: it compiles with one loss and "accuracy".
METRICS: tuple[str, ...] = ("loss", "accuracy", "val_loss", "val_accuracy")

NPZ_PREFIX = "npz:"


def is_npz(name: str) -> bool:
    """Whether a dataset name points at the user's own ``.npz`` file (``npz:PATH``)."""
    return name.startswith(NPZ_PREFIX)


def is_user_builder(name: str) -> bool:
    """Whether a model name is a user builder ``package.module:function``."""
    return ":" in name and not is_npz(name)
