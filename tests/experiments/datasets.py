"""Dataset functions for the tests, named as ``tests.experiments.datasets:fn`` in specs."""

from __future__ import annotations

from typing import Any

import numpy as np


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.images[:n] / 16.0).astype("float32"), bunch.target[:n]


def as_keras(n: int = 300) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Laid out as keras.datasets return them."""
    x, y = _digits(n + 50)
    return (x[:n], y[:n]), (x[n:], y[n:])


def as_mapping(n: int = 300, poison: bool = False) -> dict[str, np.ndarray]:
    """A mapping with its own validation split; `poison` puts a NaN in x_val."""
    x, y = _digits(n)
    cut = n * 3 // 4
    x_val = x[cut:].copy()
    if poison:
        x_val[4, 2, 3] = np.nan
    return {"x_train": x[:cut], "y_train": y[:cut], "x_val": x_val, "y_val": y[cut:]}


def streamed(n: int = 320, batch_size: int = 32, nan_in_val: bool = False, **extra: Any) -> dict[str, Any]:
    """tf.data streams for training and validation, batched, with the class count they cannot tell;
    `nan_in_val` puts a NaN in the second sample of the validation stream."""
    import tensorflow as tf

    x, y = _digits(n)
    cut = n * 3 // 4
    if nan_in_val:
        x = x.copy()
        x[cut + 1, 0, 0] = np.nan
    train = tf.data.Dataset.from_tensor_slices((x[:cut], y[:cut])).shuffle(cut, seed=0).batch(batch_size)
    val = tf.data.Dataset.from_tensor_slices((x[cut:], y[cut:])).batch(batch_size)
    return {"train": train, "val": val, "num_classes": 10, **extra}


def broken() -> None:
    raise RuntimeError("the database is down")


def wrong_shape() -> list[int]:
    return [1, 2, 3]


def py_streamed(n: int = 200, batch_size: int = 50) -> dict[str, Any]:
    """keras.utils.PyDataset streams of 0/1 labels (a binary task)."""
    import keras

    x, y = _digits(n)
    labels = (y % 2).astype("int64")

    class Batches(keras.utils.PyDataset):
        def __init__(self, start: int, stop: int) -> None:
            super().__init__()
            self.start, self.stop = start, stop

        def __len__(self) -> int:
            return (self.stop - self.start) // batch_size

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            low = self.start + index * batch_size
            return x[low : low + batch_size], labels[low : low + batch_size]

    return {"train": Batches(0, n // 2), "val": Batches(n // 2, n)}
