"""User model builders for the tests, imported by name as ``tests.experiments.builders:fn``."""

from __future__ import annotations

import keras


def tiny(input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0, units: int = 8) -> keras.Model:
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(num_classes, activation="softmax", dtype="float32"),
        ],
        name="tiny",
    )


def not_a_model(input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> str:
    return "not a model"


NOT_CALLABLE = 42


def half_output(input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> keras.Model:
    """Takes the global policy everywhere: under mixed_float16 its softmax is float16."""
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def for_task(
    input_shape: tuple[int, ...], num_classes: int, dropout: float, task: str, output_shape: tuple[int, ...]
) -> keras.Model:
    """Reads the task and the output shape it is given, as the built-in models do."""
    activation = {"classification": "softmax", "binary": "sigmoid", "regression": None}[task]
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(output_shape[0], activation=activation, dtype="float32"),
        ]
    )


def two_units(input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> keras.Model:
    """A softmax over two classes, whatever it is asked for: a binary task needs one sigmoid unit."""
    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Dense(2, activation="softmax")])
