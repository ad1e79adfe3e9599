"""Data that does not fit in memory: ``tf.data.Dataset`` or ``keras.utils.PyDataset`` streams.

A dataset function may return batched streams for training and validation instead of arrays.
They are handed to ``model.fit`` as they are (their own batching, shuffling and order), never
copied into memory whole, and checked on their first batches only: each an ``(x, y)`` pair of
numbers, no NaN or infinity, the same sample shapes in every batch checked, and targets valid
for the task. Anything past those batches is not checked; a bad value there shows up as a
trial's NaN loss.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.errors import DatasetError
from experiments.tasks import infer_task, output_shape, prepare_targets
from experiments.validation import check_finite

__all__ = [
    "CHECKED_BATCHES",
    "StreamSource",
    "StreamedDataset",
    "is_stream",
    "load_streams",
    "require_arrays",
]

CHECKED_BATCHES = 2  # training batches read to check a stream (validation: 1)


@dataclass(frozen=True, eq=False)
class StreamSource:
    """What a dataset function returned: streams, and the class count a stream cannot tell."""

    train: Any
    val: Any | None
    test: Any | None = None
    num_classes: int | None = None


@dataclass(frozen=True, eq=False)
class StreamedDataset:
    """Streams ready for ``fit``, with the shapes and task read from their first batches."""

    name: str
    train: Any
    val: Any
    test: Any | None
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    task: str
    num_classes: int

    @property
    def output_shape(self) -> tuple[int, ...]:
        return output_shape(self.task, self.num_classes, self.target_shape)


def is_stream(value: object) -> bool:
    """A ``tf.data.Dataset`` or a ``keras.utils.PyDataset`` (without importing either library)."""
    tf, keras = sys.modules.get("tensorflow"), sys.modules.get("keras")
    if tf is not None and isinstance(value, tf.data.Dataset):
        return True
    return keras is not None and isinstance(value, keras.utils.PyDataset)


def require_arrays(data: object, feature: str) -> None:
    """Raise DatasetError when ``feature`` needs arrays in memory and ``data`` streams."""
    if isinstance(data, StreamedDataset):
        raise DatasetError(
            f"{feature} needs the dataset in memory as arrays, but {data.name!r} streams its batches"
        )


def _batches(stream: Any, count: int, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``count`` batches as numpy ``(x, y)`` pairs."""
    if not is_stream(stream):
        raise DatasetError(
            f"{what} must be a tf.data.Dataset or keras.utils.PyDataset; got {type(stream).__name__}"
        )
    try:
        if hasattr(stream, "take"):  # tf.data: reads only these batches
            items = list(stream.take(count))
        else:
            items = [stream[i] for i in range(min(count, len(stream)))]
    except Exception as exc:
        raise DatasetError(f"{what}: reading its first batches failed: {type(exc).__name__}: {exc}") from exc
    if not items:
        raise DatasetError(f"{what} yields no batches")
    batches = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise DatasetError(f"{what}: batch {i} must be an (x, y) pair; got {type(item).__name__}")
        x, y = (np.asarray(part) for part in item)
        if x.ndim < 2 or y.ndim < 1 or len(x) != len(y):
            raise DatasetError(
                f"{what}: batch {i} must be batched, x of shape (batch, ...) and y of shape (batch, ...); "
                f"got x {x.shape} and y {y.shape} (call .batch() on a tf.data.Dataset)"
            )
        batches.append((check_finite(f"x of {what} batch {i}", x), y))
    return batches


def load_streams(name: str, source: StreamSource, task: str | None) -> StreamedDataset:
    """Check a dataset function's streams on their first batches and read their shapes.

    Raises DatasetError for a missing validation stream, a batch that is not an (x, y) pair of
    finite numbers, shapes that differ between batches, targets the task cannot take, or a
    classification stream that does not say its number of classes.
    """
    if source.val is None:
        raise DatasetError(
            f"dataset {name!r} returned a training stream without 'val': streams need their own "
            "validation stream"
        )
    train = _batches(source.train, CHECKED_BATCHES, "the training stream")
    checked = train + _batches(source.val, 1, "the validation stream")
    if source.test is not None:
        checked += _batches(source.test, 1, "the test stream")
    x_shape, y_shape = train[0][0].shape[1:], train[0][1].shape[1:]
    for x, y in checked:
        if x.shape[1:] != x_shape or y.shape[1:] != y_shape:
            raise DatasetError(
                f"dataset {name!r}: batches differ in sample shape: x {x_shape} and y {y_shape} in the first "
                f"training batch, x {x.shape[1:]} and y {y.shape[1:]} in another"
            )
    task = task or infer_task(np.concatenate([y for _, y in train]))
    for i, (_, y) in enumerate(checked):
        prepare_targets(task, y, None, "", name=f"y of checked batch {i}")
    num_classes = 2 if task == "binary" else 0
    if task == "classification":
        if source.num_classes is None:
            raise DatasetError(
                f"dataset {name!r} streams class ids: its mapping must give 'num_classes' (a stream "
                "is not read through to count them)"
            )
        num_classes = int(source.num_classes)
        largest = max(int(y.max()) for _, y in checked)
        if largest >= num_classes:
            raise DatasetError(
                f"dataset {name!r}: class id {largest} in the first batches, but num_classes={num_classes}"
            )
    return StreamedDataset(
        name=name,
        train=source.train,
        val=source.val,
        test=source.test,
        input_shape=tuple(int(d) for d in x_shape),
        target_shape=tuple(int(d) for d in y_shape),
        task=task,
        num_classes=num_classes,
    )
