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
