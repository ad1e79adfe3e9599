"""Parameter importance replayed from runs into an in-memory Optuna study (fANOVA)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sweeps.report.importance import param_importances
from sweeps.spec.space import Space

SPACE = Space.parse(
    {
        "optimizer": {"choices": ["sgd", "momentum", "adam"]},
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "momentum": {"low": 0.5, "high": 0.99},
        "dropout": {"low": 0.0, "high": 0.5},
        "patience": {"low": 1, "high": 5},
    },
    allowed=set(),
)


def trials(values: list[float], configs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({"config": configs, "value": values})


def test_the_parameter_that_decides_the_value_ranks_first() -> None:
    rng = np.random.default_rng(1)
    configs = [
        {
            "optimizer": str(rng.choice(["sgd", "adam"])),
            "learning_rate": float(10 ** rng.uniform(-4, -1)),
            "dropout": float(rng.uniform(0, 0.5)),
            "patience": int(rng.integers(1, 6)),
        }
        for _ in range(24)
    ]
    values = [1 - abs(np.log10(c["learning_rate"]) + 2.5) / 2 for c in configs]  # peaks at lr = 10^-2.5
    found = param_importances(SPACE, trials(values, configs), "maximize")
    assert list(found)[0] == "learning_rate" and found["learning_rate"] > 0.5
    assert abs(sum(found.values()) - 1) < 1e-9


def test_conditional_momentum_is_left_out() -> None:
    configs = [
        {"optimizer": "momentum", "learning_rate": 0.01, "momentum": 0.9, "dropout": 0.1, "patience": 2},
        {"optimizer": "adam", "learning_rate": 0.001, "dropout": 0.3, "patience": 3},
        {"optimizer": "sgd", "learning_rate": 0.05, "dropout": 0.2, "patience": 4},
    ]
    found = param_importances(SPACE, trials([0.9, 0.7, 0.5], configs), "maximize")
    assert (
        found
        and "momentum" not in found
        and set(found) <= {"optimizer", "learning_rate", "dropout", "patience"}
    )


def test_nothing_to_weigh_gives_nothing() -> None:
    configs = [
        {"optimizer": "sgd", "learning_rate": 0.01, "dropout": 0.1, "patience": 2},
        {"optimizer": "adam", "learning_rate": 0.02, "dropout": 0.2, "patience": 3},
    ]
    assert param_importances(SPACE, trials([0.5, 0.5], configs), "maximize") == {}  # all equally good
    assert param_importances(SPACE, trials([0.5], configs[:1]), "maximize") == {}  # one trial
    assert param_importances(SPACE, trials([], []), "maximize") == {}
