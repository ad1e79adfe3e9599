"""Which failures repeat, and when they leave a space with nothing to try."""

from __future__ import annotations

import pytest

from sweeps.engines.repeats import exhausted, is_deterministic, space_size
from sweeps.spec.space import Space


def space(raw: dict) -> Space:
    return Space.parse(raw, None)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ({"optimizer": "sgd"}, 1),
        ({"optimizer": {"choices": ["sgd", "adam"]}, "dropout": {"choices": [0.0, 0.5]}}, 4),
        ({"optimizer": "adam", "patience": {"low": 0, "high": 4}}, 5),
        ({"optimizer": "adam", "dropout": {"low": 0.0, "high": 0.5, "step": 0.25}}, 3),
        ({"optimizer": "adam", "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}}, None),
        # momentum counts only for the optimizers that use it: sgd 1 + momentum 3
        ({"optimizer": {"choices": ["sgd", "momentum"]}, "momentum": {"choices": [0.5, 0.9, 0.99]}}, 4),
        # each choice with its own sub-space: sgd 2 learning rates, adam 1, adagrad the top level's 1
        (
            {
                "optimizer": {
                    "choices": {
                        "sgd": {"learning_rate": {"choices": ["default", 0.1]}},
                        "adam": {},
                        "adagrad": {},
                    }
                },
                "learning_rate": "default",
            },
            4,
        ),
    ],
)
def test_space_size(raw: dict, size: int | None) -> None:
    assert space_size(space(raw)) == size


def test_deterministic_reasons() -> None:
    assert all(map(is_deterministic, ["nan_loss", "model_error", "config_error"]))
    assert not any(map(is_deterministic, ["exception", "out_of_memory", "worker_lost", "interrupted"]))


def test_exhausted_when_every_config_failed_for_good() -> None:
    grid = space({"optimizer": {"choices": ["sgd", "adam"]}, "dropout": {"choices": [0.0, 0.5]}})
    dead = [
        {"optimizer": "sgd", "dropout": 0.0},
        {"optimizer": "adam", "dropout": 0.0},
        {"optimizer": "sgd", "dropout": 0.5},
    ]
    assert not exhausted(grid, dead)
    assert not exhausted(grid, [*dead, dead[0]])  # the same config twice is still one
    assert exhausted(grid, [*dead, {"optimizer": "adam", "dropout": 0.5}])


def test_a_fixed_space_is_exhausted_by_one_config() -> None:
    fixed = space({"optimizer": "sgd", "learning_rate": 1e30})
    assert exhausted(fixed, [{}])  # Optuna records no params for a space with nothing searched
    assert not exhausted(
        space({"optimizer": "adam", "dropout": {"low": 0.0, "high": 0.5}}), [{"dropout": 0.1}]
    )
