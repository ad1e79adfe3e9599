"""Names of the built-in datasets, models, optimizers and tasks, and how a name says where it is.

Kept free of heavy imports so that a CLI can validate a spec's names without
waiting for Keras or TensorFlow to import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DATASETS",
    "DIR_PREFIX",
    "MODELS",
    "MODEL_OPTIONS",
    "MOMENTUM_OPTIMIZERS",
    "NPZ_PREFIX",
    "OPTIMIZERS",
    "is_dataset_function",
    "is_dir",
    "is_npz",
    "is_object_name",
    "is_user_builder",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
MOMENTUM_OPTIMIZERS: tuple[str, ...] = ("momentum", "nesterov")
MODELS: tuple[str, ...] = ("mlp", "cnn", "alexnet")
# digits, breast_cancer and diabetes ship with scikit-learn (offline); the rest are keras.datasets.
DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "cifar10", "breast_cancer", "diabetes")

# The options each built-in model accepts besides dropout; user builders take anything.
MODEL_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "mlp": ("units",),
        "cnn": ("filters", "kernel_size", "units"),
        "alexnet": ("input_size", "width"),
    }
)

NPZ_PREFIX = "npz:"
DIR_PREFIX = "dir:"
_OBJECT_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")


def is_npz(name: str) -> bool:
    """Whether a dataset name points at the user's own ``.npz`` file (``npz:PATH``)."""
    return name.startswith(NPZ_PREFIX)


def is_dir(name: str) -> bool:
    """Whether a dataset name points at a folder of images, one subfolder per class (``dir:PATH``)."""
    return name.startswith(DIR_PREFIX)


def is_object_name(name: str) -> bool:
    """Whether ``name`` is spelled ``package.module:function`` (a user's builder, loss, metric, data)."""
    return _OBJECT_NAME.fullmatch(name) is not None


def is_dataset_function(name: str) -> bool:
    """Whether a dataset name is the user's function ``package.module:function``."""
    return not is_npz(name) and not is_dir(name) and is_object_name(name)


def is_user_builder(name: str) -> bool:
    """Whether a model name is a user builder ``package.module:function``."""
    return ":" in name and not is_npz(name)
