"""The built-in networks of the seed tutorials, as uncompiled Keras models.

Each ends in the head its task needs (`head`): a softmax over the classes, one sigmoid unit, or
a linear layer of the target's shape. Every output layer computes in float32 so that the
softmax and the loss stay stable under a ``mixed_float16`` policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from experiments.tasks import TASK_INFO

__all__ = ["ALEXNET_MIN_INPUT_SIZE", "alexnet", "cnn", "head", "mlp"]

# The smallest square input AlexNet's valid 11x11/4 convolution and three valid 3/2
# poolings reduce to at least one pixel: 67 -> 15 -> 7 -> (same) 3 -> 1.
ALEXNET_MIN_INPUT_SIZE = 67


def mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    dropout: float = 0.0,
    units: int = 100,
    task: str = "classification",
    output_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """Flatten - Dense(units, relu) - Dropout - softmax: seeds 001/004's ``model_fn``."""
    layers = [
        keras.Input(shape=input_shape),
        keras.layers.Flatten(),
        *_dense(units, dropout, "hidden"),
    ]
    return _finish("mlp", layers, task, output_shape or (num_classes,))


def cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    dropout: float = 0.0,
    filters: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    units: int = 100,
    task: str = "classification",
    output_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """Conv2D(same) + MaxPooling2D(2) per entry of ``filters``, then a Dense head (seed 002)."""
    layers: list = [keras.Input(shape=input_shape)]
    for i, f in enumerate(filters, start=1):
        layers.append(keras.layers.Conv2D(f, kernel_size, activation="relu", padding="same", name=f"conv{i}"))
        layers.append(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
    layers += [keras.layers.Flatten(), *_dense(units, dropout, "hidden")]
    return _finish("cnn", layers, task, output_shape or (num_classes,))


def alexnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    dropout: float = 0.0,
    input_size: int = 227,
    width: float = 1.0,
    task: str = "classification",
    output_shape: tuple[int, ...] | None = None,
) -> keras.Model:
    """AlexNet as seed 000 builds it for CIFAR-10: BatchNormalization instead of LRN.

    A Resizing layer brings any image (CIFAR-10's 32x32) to ``input_size``; ``width``
    scales every filter count and dense size, so that tests can train a tiny one.
    """

    def scaled(n: int) -> int:
        return max(1, round(n * width))

    def pool(i: int) -> keras.layers.Layer:
        return keras.layers.MaxPooling2D(pool_size=3, strides=2, name=f"pool{i}")

    def conv(i: int, n: int, size: int, **kwargs: object) -> keras.layers.Layer:
        return keras.layers.Conv2D(scaled(n), size, activation="relu", name=f"conv{i}", **kwargs)

    layers: list = [
        keras.Input(shape=input_shape),
        keras.layers.Resizing(input_size, input_size, name="resize"),
        conv(1, 96, 11, strides=4),
        keras.layers.BatchNormalization(name="norm1"),
        pool(1),
        conv(2, 256, 5, padding="same"),
        keras.layers.BatchNormalization(name="norm2"),
        pool(2),
        conv(3, 384, 3, padding="same"),
        conv(4, 384, 3, padding="same"),
        conv(5, 256, 3, padding="same"),
        pool(3),
        keras.layers.Flatten(),
        *_dense(scaled(4096), dropout, "fc1"),
        *_dense(scaled(4096), dropout, "fc2"),
    ]
    return _finish("alexnet", layers, task, output_shape or (num_classes,))


def _dense(units: int, dropout: float, name: str) -> list[keras.layers.Layer]:
    """Dense(relu), followed by Dropout only when it drops something."""
    block = [keras.layers.Dense(units, activation="relu", name=name)]
    if dropout > 0:
        block.append(keras.layers.Dropout(dropout, name=f"{name}_dropout"))
    return block


def head(task: str, output_shape: tuple[int, ...]) -> list[keras.layers.Layer]:
    """The output layers ``task`` needs, in float32: Dense(units, softmax | sigmoid | linear),
    reshaped when a regression target has more than one axis."""
    units = math.prod(output_shape)
    layers = [keras.layers.Dense(units, activation=TASK_INFO[task].head, dtype="float32", name="output")]
    if tuple(output_shape) != (units,):
        layers.append(keras.layers.Reshape(output_shape, dtype="float32", name="output_shape"))
    return layers


def _finish(name: str, layers: list, task: str, output_shape: tuple[int, ...]) -> keras.Model:
    """Append the task's float32 head."""
    return keras.Sequential([*layers, *head(task, output_shape)], name=name)
