"""Datasets as train/validation/test arrays, split the same way for the same seed.

Example:
    >>> data = load_dataset("digits", train_size=500, seed=1)
    >>> data.x_train.shape, data.num_classes
    ((500, 8, 8, 1), 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from experiments.errors import DatasetError
from experiments.images import resize_bilinear
from experiments.sources import RawData, load_raw
from experiments.validation import check_arrays, check_class_ids

__all__ = ["Dataset", "DatasetError", "load_dataset"]

_SPLIT_NAMES = {"train_size": "training", "val_size": "validation", "test_size": "test"}


@dataclass(frozen=True, eq=False)  # compared by identity: == on arrays has no single truth
class Dataset:
    """Model-ready arrays: float32 inputs, integer class ids (sparse labels)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, as a model's input layer takes it."""
        return tuple(int(d) for d in self.x_train.shape[1:])


def load_dataset(
    name: str,
    *,
    validation_split: float = 0.2,
    seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    image_size: int | None = None,
) -> Dataset:
    """Load ``name`` (a built-in dataset or ``npz:PATH``) and split it by ``seed``.

    The validation split is drawn from the training arrays unless the source has its
    own (``x_val`` in an npz). ``*_size`` then keep a seeded random subset of each split,
    as seed 003 keeps 700/300 MNIST samples. ``image_size`` resizes images to a square.

    Raises:
        DatasetError: unknown name, unreadable file, NaN or infinite values, malformed
            labels, or a size larger than its split.

    Warns:
        DatasetWarning: class ids that are not the contiguous 0..C-1.
    """
    if not 0.0 < validation_split < 1.0:
        raise DatasetError(f"validation_split must be in (0, 1); got {validation_split!r}")
    raw = load_raw(name)
    check_arrays(name, {f"{k}_{s}": getattr(raw, f"{k}_{s}") for s in ("train", "val", "test") for k in "xy"})
    y_train = _labels(raw.y_train, raw.x_train, "train")
    y_val = None if raw.y_val is None else _labels(raw.y_val, raw.x_val, "val")
    y_test = None if raw.y_test is None else _labels(raw.y_test, raw.x_test, "test")
    if not y_train.size:
        raise DatasetError(f"dataset {name!r} has no training samples")
    check_class_ids({"y_train": y_train, "y_val": y_val, "y_test": y_test}, name)
    num_classes = 1 + max(int(y.max()) for y in (y_train, y_val, y_test) if y is not None and y.size)

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
    )


def _labels(y: np.ndarray, x: np.ndarray | None, split: str) -> np.ndarray:
    """Integer class ids of shape (N,); (N, 1) columns (CIFAR-10) are flattened."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(
            f"y_{split} must hold integer class ids of shape (N,) or (N, 1); got shape "
            f"{y.shape} (one-hot labels? pass their argmax)"
        )
    if x is not None and len(x) != len(y):
        raise DatasetError(f"x_{split} has {len(x)} samples but y_{split} has {len(y)}")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise DatasetError(f"y_{split} must hold integer class ids; got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise DatasetError(f"y_{split} must hold class ids >= 0; got {y.min()}")
    return y.astype(np.int32)


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
