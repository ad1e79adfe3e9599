"""Datasets as train/validation/test arrays, split the same way for the same seed.

Example:
    >>> data = load_dataset("digits", train_size=500, seed=1)
    >>> data.x_train.shape, data.num_classes, data.task
    ((500, 8, 8, 1), 10, 'classification')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.errors import DatasetError
from experiments.images import resize_bilinear
from experiments.sources import RawData, load_raw
from experiments.streams import StreamedDataset, StreamSource, load_streams
from experiments.tasks import count_classes, infer_task, output_shape, prepare_targets
from experiments.validation import check_arrays, check_class_ids

__all__ = ["Data", "Dataset", "DatasetError", "StreamedDataset", "load_dataset"]

_SPLIT_NAMES = {"train_size": "training", "val_size": "validation", "test_size": "test"}


@dataclass(frozen=True, eq=False)  # compared by identity: == on arrays has no single truth
class Dataset:
    """Model-ready arrays: float32 inputs, and targets as the task takes them (int32 class ids,
    float32 0/1 labels of shape (N, 1), float32 regression targets of at least two axes)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int  # classification: the head's classes; binary: 2; regression: 0
    task: str = "classification"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, as a model's input layer takes it."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one prediction, as the model's head must give it."""
        return output_shape(self.task, self.num_classes, tuple(int(d) for d in self.y_train.shape[1:]))


Data = Dataset | StreamedDataset  # what `experiments.train` takes


def load_dataset(
    name: str,
    *,
    task: str | None = None,
    options: Mapping[str, Any] | None = None,
    color_mode: str | None = None,
    validation_split: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    image_size: int | None = None,
) -> Data:
    """Load ``name`` (a built-in dataset, ``npz:PATH``, ``dir:PATH`` or a dataset function
    ``package.module:function``, called with ``options``) and split it by ``seed``.

    ``task`` decides which targets are valid (inferred from the training targets when None).
    The validation split is drawn from the training arrays unless the source has its
    own (``x_val`` in an npz). ``*_size`` then keep a seeded random subset of each split,
    as seed 003 keeps 700/300 MNIST samples. ``image_size`` resizes images to a square.
    Streams a dataset function returns come back as a `StreamedDataset`, used as they are.

    Raises:
        DatasetError: unknown name, unreadable file, NaN or infinite values, targets the
            task cannot take, or a size larger than its split.

    Warns:
        DatasetWarning: class ids that are not the contiguous 0..C-1.
    """
    if not 0.0 < validation_split < 1.0:
        raise DatasetError(f"validation_split must be in (0, 1); got {validation_split!r}")
    raw = load_raw(name, options, image_size=image_size, color_mode=color_mode)
    if isinstance(raw, StreamSource):
        _streams_take_no_subsets(name, train_size, val_size, test_size, image_size)
        return load_streams(name, raw, task)
    check_arrays(name, {f"{k}_{s}": getattr(raw, f"{k}_{s}") for s in ("train", "val", "test") for k in "xy"})
    task = task or infer_task(raw.y_train)
    y_train = prepare_targets(task, raw.y_train, len(raw.x_train), "train")
    y_val = None if raw.y_val is None else prepare_targets(task, raw.y_val, len(raw.x_val), "val")
    y_test = None if raw.y_test is None else prepare_targets(task, raw.y_test, len(raw.x_test), "test")
    if not y_train.size:
        raise DatasetError(f"dataset {name!r} has no training samples")
    if task == "classification":
        check_class_ids({"y_train": y_train, "y_val": y_val, "y_test": y_test}, name)
    num_classes = count_classes(task, y_train, y_val, y_test)

    rng = np.random.default_rng(seed)
    if raw.x_val is None:
        train_idx, val_idx = _split(len(y_train), validation_split, rng, name)
        x_val_src, y_val = raw.x_train, y_train
    else:
        train_idx, val_idx = rng.permutation(len(y_train)), rng.permutation(len(y_val))
        x_val_src = raw.x_val
    train_idx = _subset(train_idx, train_size, "train_size", name)
    val_idx = _subset(val_idx, val_size, "val_size", name)

    x_test = None
    if raw.x_test is not None:
        test_idx = _subset(rng.permutation(len(y_test)), test_size, "test_size", name)
        x_test, y_test = _prepare(raw, raw.x_test[test_idx], image_size), y_test[test_idx]
    elif test_size is not None:
        raise DatasetError(f"test_size={test_size} given but dataset {name!r} has no test split")

    return Dataset(
        name=name,
        x_train=_prepare(raw, raw.x_train[train_idx], image_size),
        y_train=y_train[train_idx],
        x_val=_prepare(raw, x_val_src[val_idx], image_size),
        y_val=y_val[val_idx],
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        task=task,
    )


def _streams_take_no_subsets(name: str, *sizes: int | None) -> None:
    """Subsets and resizing need arrays; a stream is used as it is."""
    fields = ("train_size", "val_size", "test_size", "image_size")
    given = [field for field, size in zip(fields, sizes, strict=True) if size is not None]
    if given:
        raise DatasetError(
            f"{', '.join(given)} need the dataset in memory as arrays, but {name!r} streams its batches "
            "(size or resize the streams in the dataset function)"
        )


def _split(
    n: int, validation_split: float, rng: np.random.Generator, name: str
) -> tuple[np.ndarray, np.ndarray]:
    n_val = round(n * validation_split)
    if n_val < 1 or n_val >= n:
        raise DatasetError(
            f"validation_split={validation_split} of the {n} training samples of {name!r} "
            "leaves an empty train or validation split"
        )
    perm = rng.permutation(n)
    return perm[n_val:], perm[:n_val]


def _subset(idx: np.ndarray, size: int | None, field: str, name: str) -> np.ndarray:
    if size is None:
        return idx
    if not 1 <= size <= len(idx):
        raise DatasetError(
            f"{field}={size} but the {_SPLIT_NAMES[field]} split of {name!r} has "
            f"{len(idx)} samples; expected 1..{len(idx)}"
        )
    return idx[:size]


def _prepare(raw: RawData, x: np.ndarray, image_size: int | None) -> np.ndarray:
    x = raw.prepare(x)
    if image_size is None:
        return x
    if x.ndim != 4:
        raise DatasetError(f"image_size={image_size} needs images of shape (N, H, W, C); got {x.shape}")
    return resize_bilinear(x, image_size)
