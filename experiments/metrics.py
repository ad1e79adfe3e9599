"""The loss and metrics a trial is compiled with, and the names its history will hold.

A metric logs under the name it is written with: a Keras identifier (``auc``, ``mae``,
``precision``, ``root_mean_squared_error``, ...) under that identifier, ``rmse`` and
``top_5_accuracy`` (any k) under theirs, and a ``package.module:function`` under ``function``.
So the per-epoch names (``loss``, each metric, and ``val_`` of each) follow from the spec alone,
without importing Keras, and an objective no metric produces is an error when the spec loads.

Example:
    >>> logged_metrics("binary", None)
    ('loss', 'accuracy', 'auc', 'val_loss', 'val_accuracy', 'val_auc')
    >>> logged_metrics("classification", ["accuracy", "top_5_accuracy"])[-1]
    'val_top_5_accuracy'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from experiments.errors import ConfigError
from experiments.imports import load_object
from experiments.registry import is_object_name
from experiments.tasks import TASK_INFO

__all__ = [
    "check_metrics",
    "compile_args",
    "logged_metrics",
    "metric_name",
    "resolve_loss",
    "resolve_metrics",
]

_TOP_K = re.compile(r"top_(\d+)_accuracy")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
# Metrics that score one probability per sample (binary) or a class's id (classification):
# Keras would accept them for the other task and fail, or score nonsense, in the first epoch.
_BINARY_ONLY = ("auc", "precision", "recall", "binary_accuracy", "binary_crossentropy")
_CLASSIFICATION_ONLY = ("sparse_categorical_accuracy", "sparse_categorical_crossentropy")
_LABEL_METRICS = ("accuracy", "acc", *_BINARY_ONLY, *_CLASSIFICATION_ONLY)


def metric_name(identifier: str) -> str:
    """The name a metric's values are logged under (without ``val_``)."""
    return identifier.partition(":")[2] if is_object_name(identifier) else identifier


def default_metrics(task: str, metrics: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(TASK_INFO[task].metrics if metrics is None else metrics)


def check_metrics(task: str, metrics: Sequence[str] | None) -> None:
    """Reject metrics that cannot be compiled for ``task`` or would log clashing names.

    Raises ValueError naming the metric. Whether Keras knows an identifier is checked when the
    metrics are built (`resolve_metrics`), once the data are loaded.
    """
    seen: set[str] = set()
    for identifier in default_metrics(task, metrics):
        if not isinstance(identifier, str) or not (
            is_object_name(identifier) or _IDENTIFIER.fullmatch(identifier)
        ):
            raise ValueError(
                f"{identifier!r} is not a metric: expected a Keras metric identifier (auc, mae, "
                "top_5_accuracy, ...) or 'package.module:function'"
            )
        name = metric_name(identifier)
        if name == "loss" or name in seen:
            raise ValueError(f"metric {identifier!r} would log as {name!r}, which another value already does")
        seen.add(name)
        base = identifier.lower()
        if task == "regression" and (base in _LABEL_METRICS or _TOP_K.fullmatch(base)):
            raise ValueError(f"metric {identifier!r} scores class labels; task regression has none")
        if task != "binary" and base in _BINARY_ONLY:
            raise ValueError(f"metric {identifier!r} scores 0/1 labels (task binary), not task {task}")
        if task != "classification" and (base in _CLASSIFICATION_ONLY or _TOP_K.fullmatch(base)):
            raise ValueError(f"metric {identifier!r} scores class ids (task classification), not task {task}")


def logged_metrics(task: str, metrics: Sequence[str] | None) -> tuple[str, ...]:
    """Every per-epoch name a model compiled for ``task`` logs: the loss, each metric, and their
    validation values."""
    names = ("loss", *(metric_name(m) for m in default_metrics(task, metrics)))
    return (*names, *(f"val_{name}" for name in names))


def resolve_loss(task: str, loss: str | None) -> Any:
    """What ``compile(loss=...)`` gets: the task's default, a Keras identifier, or the user's
    function (a ``keras.losses.Loss`` subclass is instantiated).

    Raises ConfigError for an identifier Keras does not know or a function that cannot be imported.
    """
    import keras

    identifier = loss or TASK_INFO[task].loss
    if is_object_name(identifier):
        found = load_object(identifier, "loss", ConfigError)
        return found() if isinstance(found, type) and issubclass(found, keras.losses.Loss) else found
    try:
        keras.losses.get(identifier)
    except ValueError as exc:
        raise ConfigError(f"unknown Keras loss {identifier!r} ({exc})") from None
    return identifier


def resolve_metrics(task: str, metrics: Sequence[str] | None) -> list[Any]:
    """What ``compile(metrics=...)`` gets, each metric named as `metric_name` says.

    Raises ConfigError for an identifier Keras does not know or a function that cannot be imported.
    """
    import keras

    built: list[Any] = []
    for identifier in default_metrics(task, metrics):
        name = metric_name(identifier)
        top_k = _TOP_K.fullmatch(identifier)
        if is_object_name(identifier):
            found = load_object(identifier, "metric", ConfigError)
            if isinstance(found, type) and issubclass(found, keras.metrics.Metric):
                built.append(found(name=name))
            else:
                built.append(keras.metrics.MeanMetricWrapper(found, name=name))
        elif top_k:
            built.append(keras.metrics.SparseTopKCategoricalAccuracy(k=int(top_k.group(1)), name=name))
        elif identifier == "rmse":
            built.append(keras.metrics.RootMeanSquaredError(name=name))
        else:
            try:
                keras.metrics.get(identifier)
            except ValueError:
                raise ConfigError(
                    f"unknown Keras metric {identifier!r}; expected a keras.metrics identifier (auc, mae, "
                    "precision, ...), rmse, top_K_accuracy, or 'package.module:function'"
                ) from None
            built.append(identifier)  # Keras logs a string identifier under itself
    return built


def compile_args(task: str, loss: str | None, metrics: Sequence[str] | None) -> dict[str, Any]:
    """``model.compile``'s loss and metrics for ``task``: the one place a trial's scoring is made."""
    return {"loss": resolve_loss(task, loss), "metrics": resolve_metrics(task, metrics)}
