"""What is trained: datasets, model builders, optimizers and ``train``.

Importing this package is cheap: the name registries load at once, while the names
that need Keras, TensorFlow or scikit-learn load on first use, so that a CLI can
validate names without importing TensorFlow.

Example:
    >>> import experiments
    >>> data = experiments.load_dataset("digits")
    >>> config = experiments.TrainConfig(model="mlp", optimizer="adam", learning_rate=1e-3)
    >>> experiments.train(config, data).value  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from experiments.errors import ConfigError, DatasetError, ModelError
from experiments.registry import (
    DATASETS,
    MODEL_OPTIONS,
    MODELS,
    MOMENTUM_OPTIMIZERS,
    OPTIMIZERS,
    is_npz,
    is_user_builder,
)
from experiments.tasks import TASKS

if TYPE_CHECKING:
    from experiments.backends import backend_name, failure_reason, is_out_of_memory, release_memory
    from experiments.data import Dataset, load_dataset
    from experiments.models import build_model
    from experiments.optimizers import make_optimizer
    from experiments.training import TrainConfig, TrialResult, train

__all__ = [
    "DATASETS",
    "MODELS",
    "MODEL_OPTIONS",
    "MOMENTUM_OPTIMIZERS",
    "OPTIMIZERS",
    "TASKS",
    "ConfigError",
    "Dataset",
    "DatasetError",
    "ModelError",
    "TrainConfig",
    "TrialResult",
    "backend_name",
    "build_model",
    "failure_reason",
    "is_npz",
    "is_out_of_memory",
    "is_user_builder",
    "load_dataset",
    "make_optimizer",
    "release_memory",
    "train",
]

# Public name -> the module that defines it, imported on first attribute access.
_LAZY = {
    "backend_name": "experiments.backends",
    "failure_reason": "experiments.backends",
    "is_out_of_memory": "experiments.backends",
    "release_memory": "experiments.backends",
    "Dataset": "experiments.data",
    "load_dataset": "experiments.data",
    "build_model": "experiments.models",
    "make_optimizer": "experiments.optimizers",
    "TrainConfig": "experiments.training",
    "TrialResult": "experiments.training",
    "train": "experiments.training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'experiments' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
