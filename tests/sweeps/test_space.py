"""The space proposes configs through a real Optuna study."""

from __future__ import annotations

import optuna
import pytest

from sweeps.spec.space import Choice, Range, Space, SpaceError, describe, parse_param


def _space(**raw: object) -> Space:
    return Space.parse(raw, allowed={"units"})


def test_ranges_are_typed() -> None:
    assert parse_param("patience", {"low": 1, "high": 5}) == Range(1, 5, integer=True)
    assert parse_param("units", {"low": 16, "high": 128, "step": 16}).integer
    assert not parse_param("dropout", {"low": 0, "high": 0.5}).integer
    assert parse_param("optimizer", {"choices": ["adam"]}) == Choice(("adam",))


def test_momentum_is_conditional_on_the_sgd_variants() -> None:
    space = _space(
        optimizer={"choices": ["sgd", "momentum", "nesterov", "adam"]},
        learning_rate={"low": 1e-4, "high": 1e-1, "log": True},
        momentum={"low": 0.5, "high": 0.99},
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = space.suggest(trial)
        study.tell(trial, 0.0)
        seen.add(config["optimizer"])
        assert ("momentum" in config) == (config["optimizer"] in ("momentum", "nesterov"))
        assert 1e-4 <= config["learning_rate"] <= 1e-1
        assert isinstance(config["patience"], int)
    assert seen == {"sgd", "momentum", "nesterov", "adam"}


def test_grid_needs_value_lists() -> None:
    space = _space(optimizer={"choices": ["sgd", "adam"]}, learning_rate={"choices": [0.01, 0.1]})
    assert space.grid_points() == [
        {"optimizer": o, "learning_rate": lr} for o in ("sgd", "adam") for lr in (0.01, 0.1)
    ]
    with pytest.raises(SpaceError, match="space.dropout: the grid sampler needs a list of values"):
        _space(dropout={"low": 0.0, "high": 0.5}).grid_points()


def test_describe() -> None:
    assert describe({"optimizer": "adam", "learning_rate": 0.0032, "dropout": 0.25, "patience": 3}) == (
        "adam lr=3.2e-03 do=0.25 p=3"
    )


def test_config_from_recorded_values_adds_fixed_and_drops_inapplicable() -> None:
    space = _space(optimizer={"choices": ["adam", "momentum"]}, momentum=0.8, learning_rate=0.01)
    assert space.config({"optimizer": "momentum"}) == {
        "optimizer": "momentum",
        "learning_rate": 0.01,
        "momentum": 0.8,
        "dropout": 0.0,
        "patience": 2,
    }
    assert "momentum" not in space.config({"optimizer": "adam"})
