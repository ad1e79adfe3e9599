from __future__ import annotations

import math

import pytest

from experiments.monitoring import best_index, metric_mode

NAN = math.nan


@pytest.mark.parametrize(
    ("name", "mode"),
    [("val_loss", "min"), ("loss", "min"), ("val_accuracy", "max"), ("accuracy", "max")],
)
def test_metric_mode(name: str, mode: str):
    assert metric_mode(name) == mode


def test_metric_mode_refuses_to_guess():
    with pytest.raises(ValueError, match="cannot tell whether metric 'val_lr'"):
        metric_mode("val_lr")


@pytest.mark.parametrize(
    ("values", "mode", "index"),
    [
        ([], "min", None),
        ([3.0, 2.0, 2.0, 1.5, 1.7], "min", 3),  # ties do not improve: the first stays
        ([0.1, 0.5, 0.5, 0.4], "max", 1),
        ([1.0, NAN, 0.5], "min", 2),  # NaN never improves, and is no reference either
        ([NAN, 0.5, 0.1], "min", 0),  # a NaN first epoch is kept, as Keras keeps it
    ],
)
def test_best_index_follows_keras(values: list[float], mode: str, index: int | None):
    assert best_index(values, mode) == index
