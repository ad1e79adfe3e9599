"""What a model predicts and how it is scored: the task, and which targets are valid for it.

- ``classification``: integer class ids; softmax head, sparse categorical cross-entropy, accuracy.
- ``binary``: labels 0 and 1; one sigmoid unit, binary cross-entropy, accuracy and AUC.
- ``regression``: finite float targets of any trailing shape; a linear head of that shape, MSE,
  MAE and RMSE.

A task not given is inferred from the training targets: integers that are all 0 or 1 are
binary, other integers are class ids, floats are regression targets. No Keras here, so a spec is
checked against its task before TensorFlow is imported.

Example:
    >>> infer_task(np.array([0, 1, 1, 0]))
    'binary'
    >>> prepare_targets("regression", np.array([1.5, 2.0]), 2, "train").shape
    (2, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from experiments.errors import DatasetError
from experiments.validation import check_finite

__all__ = [
    "TASKS",
    "TASK_INFO",
    "TaskInfo",
    "count_classes",
    "describe_targets",
    "infer_task",
    "output_shape",
    "prepare_targets",
]

TASKS: tuple[str, ...] = ("classification", "binary", "regression")


@dataclass(frozen=True)
class TaskInfo:
    """A task's head and defaults: what a trial is compiled with when the spec says nothing."""

    name: str
    head: str  # the output layer's activation
    loss: str  # a Keras loss identifier
    metrics: tuple[str, ...]  # Keras metric identifiers (each logs under this name)
    objective: str  # the default objective metric


TASK_INFO: dict[str, TaskInfo] = {
    "classification": TaskInfo(
        "classification", "softmax", "sparse_categorical_crossentropy", ("accuracy",), "val_accuracy"
    ),
    "binary": TaskInfo("binary", "sigmoid", "binary_crossentropy", ("accuracy", "auc"), "val_auc"),
    "regression": TaskInfo("regression", "linear", "mse", ("mae", "rmse"), "val_loss"),
}


def infer_task(y: np.ndarray) -> str:
    """The task training targets ask for: bool or integer 0/1 labels are binary, other integers
    class ids, floats regression targets (integral floats too: give ``task`` to mean class ids)."""
    y = np.asarray(y)
    if y.dtype == bool:
        return "binary"
    if np.issubdtype(y.dtype, np.integer):
        column = y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)
        return "binary" if column and y.size and set(np.unique(y).tolist()) <= {0, 1} else "classification"
    if np.issubdtype(y.dtype, np.floating):
        return "regression"
    raise DatasetError(
        f"training targets must be numbers; got dtype {y.dtype} (map labels to integer class ids 0..C-1)"
    )


def prepare_targets(
    task: str, y: object, n_inputs: int | None, split: str, *, name: str | None = None
) -> np.ndarray:
    """Check ``y_<split>`` for ``task`` and give it as models take it: int32 class ids of shape
    (N,), float32 0/1 labels of shape (N, 1), float32 regression targets of at least two axes.

    Raises DatasetError naming the split, what was found and which task would take it.
    """
    y = np.asarray(y)
    name = name or f"y_{split}"
    if n_inputs is not None and n_inputs != len(y):
        raise DatasetError(f"x_{split} has {n_inputs} samples but {name} has {len(y)}")
    if task == "regression":
        if not np.issubdtype(y.dtype, np.number):
            raise DatasetError(f"{name} must hold numbers for task regression; got dtype {y.dtype}")
        y = check_finite(name, y).astype(np.float32)
        return y[:, np.newaxis] if y.ndim == 1 else y
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        what = "integer class ids" if task == "classification" else "labels 0 and 1"
        raise DatasetError(
            f"{name} must hold {what} of shape (N,) or (N, 1); got shape {y.shape} (one-hot labels? "
            f"pass their argmax; task {task}, other targets: task regression)"
        )
    ids = _class_ids(y, name, task)
    if task == "binary":
        found = sorted(set(np.unique(ids).tolist()))
        if not set(found) <= {0, 1}:
            shown = ", ".join(map(str, found[:5])) + (", ..." if len(found) > 5 else "")
            raise DatasetError(
                f"{name}: task binary needs labels 0 and 1; got {len(found)} classes ({shown}) "
                "(for more classes use task: classification)"
            )
        return ids.astype(np.float32)[:, np.newaxis]
    return ids


def _class_ids(y: np.ndarray, name: str, task: str) -> np.ndarray:
    """Integer ids >= 0, from ints, bools or floats that are whole numbers."""
    if y.dtype == bool:
        return y.astype(np.int32)
    if not np.issubdtype(y.dtype, np.integer):
        integral = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
        if not integral:
            example = ""
            if np.issubdtype(y.dtype, np.floating):
                index = int(np.argmax(~np.isfinite(y) | (np.mod(y, 1) != 0)))
                example = f" such as {y[index]:.6g} at index {index}"
            raise DatasetError(
                f"{name} must hold integer class ids; got dtype {y.dtype}{example} "
                f"(task {task}; for float targets use task: regression)"
            )
    if y.size and y.min() < 0:
        raise DatasetError(f"{name} must hold class ids >= 0; got {y.min()} (task {task})")
    return y.astype(np.int32)


def count_classes(task: str, *targets: np.ndarray | None) -> int:
    """Classes a classifier's head needs (1 + the largest id in any split); 2 for binary, 0 for
    regression."""
    if task == "binary":
        return 2
    if task == "regression":
        return 0
    return 1 + max(int(y.max()) for y in targets if y is not None and y.size)


def output_shape(task: str, num_classes: int, target_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of one prediction: a probability per class, one sigmoid unit, or the target's."""
    if task == "classification":
        return (num_classes,)
    if task == "binary":
        return (1,)
    return tuple(target_shape) or (1,)


def describe_targets(task: str, num_classes: int, target_shape: tuple[int, ...]) -> str:
    """What the targets looked like, for the line that says which task was inferred."""
    if task == "classification":
        return f"integer class ids 0..{num_classes - 1}"
    if task == "binary":
        return "labels 0 and 1"
    size = math.prod(target_shape) if target_shape else 1
    return f"float targets, {size} per sample"
