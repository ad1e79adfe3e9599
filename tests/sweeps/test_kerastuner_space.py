"""The space as KerasTuner hyperparameters, and the engine section of the spec; no training."""

from __future__ import annotations

from typing import Any

import keras_tuner
import pytest

from sweeps.engines.kerastuner_space import check_grid, config_from_values, declare
from sweeps.errors import SpecError
from sweeps.spec.schema import load_spec
from sweeps.spec.space import Space


def _space(**raw: Any) -> Space:
    return Space.parse(raw, allowed={"units"})


def _hps(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    return {p.name: p for p in hp.space}


def test_ranges_and_choices_keep_their_kind_and_sampling() -> None:
    space = _space(
        optimizer={"choices": ["adam", "rmsprop"]},
        learning_rate={"low": 1e-4, "high": 1e-1, "log": True},
        dropout={"low": 0.0, "high": 0.5},
        patience={"low": 1, "high": 5},
        units={"low": 16, "high": 128, "step": 16},
        batch_size={"low": 16, "high": 256, "log": True},
    )
    hps = _hps(declare(space))
    assert list(hps) == ["optimizer", "learning_rate", "dropout", "patience", "units", "batch_size"]
    assert isinstance(hps["optimizer"], keras_tuner.engine.hyperparameters.Choice)
    assert hps["optimizer"].values == ["adam", "rmsprop"]
    lr = hps["learning_rate"]
    assert isinstance(lr, keras_tuner.engine.hyperparameters.Float)
    assert (lr.min_value, lr.max_value, lr.sampling, lr.step) == (1e-4, 1e-1, "log", None)
    assert hps["dropout"].sampling == "linear"
    patience = hps["patience"]
    assert isinstance(patience, keras_tuner.engine.hyperparameters.Int)
    assert (patience.min_value, patience.max_value, patience.step) == (1, 5, 1)
    assert list(hps["units"].values) == [16, 32, 48, 64, 80, 96, 112, 128]
    batch = hps["batch_size"]
    assert isinstance(batch, keras_tuner.engine.hyperparameters.Int)
    assert (batch.sampling, batch.step) == ("log", None)
    # Log sampling is uniform in log space: the median draw is the geometric mean.
    assert lr.prob_to_value(0.5) == pytest.approx(10**-2.5)


def test_fixed_values_are_not_hyperparameters_but_join_the_config() -> None:
    space = _space(optimizer="adam", learning_rate=0.01, dropout={"choices": [0.0, 0.25]})
    assert list(_hps(declare(space))) == ["dropout"]
    config = config_from_values(space, {"dropout": 0.25, "tuner/epochs": 3, "tuner/round": 0})
    assert config == {"optimizer": "adam", "learning_rate": 0.01, "dropout": 0.25, "patience": 2}


def test_a_stepped_float_range_reaches_its_top_with_clean_values() -> None:
    # KerasTuner alone counts (0.5 - 0.0) // 0.1 + 1 = 5 values and never draws 0.5.
    space = _space(dropout={"low": 0.0, "high": 0.5, "step": 0.1})
    dropout = _hps(declare(space))["dropout"]
    drawn = {config_from_values(space, {"dropout": v})["dropout"] for v in dropout.values}
    assert drawn == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}
    # A high that is not a whole number of steps away is lowered to the last step, as Optuna does.
    uneven = _hps(declare(_space(dropout={"low": 0.0, "high": 0.45, "step": 0.1})))["dropout"]
    assert max(uneven.values) == pytest.approx(0.4)


def test_momentum_is_conditional_on_the_momentum_variants() -> None:
    space = _space(
        optimizer={"choices": ["sgd", "momentum", "adam", "nesterov"]},
        momentum={"low": 0.5, "high": 0.99},
    )
    hp = declare(space)
    momentum = _hps(hp)["momentum"]
    (condition,) = momentum.conditions
    assert condition.name == "optimizer" and list(condition.values) == ["momentum", "nesterov"]
    oracle = keras_tuner.oracles.RandomSearchOracle(hyperparameters=hp, seed=1)
    seen = set()
    for _ in range(40):
        values = oracle._random_values()
        oracle._tried_so_far.clear()
        seen.add(values["optimizer"])
        assert ("momentum" in values) == (values["optimizer"] in ("momentum", "nesterov"))
        config = config_from_values(space, values)
        assert ("momentum" in config) == (config["optimizer"] in ("momentum", "nesterov"))
        if "momentum" in config:
            assert 0.5 <= config["momentum"] <= 0.99
    assert seen == {"sgd", "momentum", "adam", "nesterov"}


def test_momentum_with_a_fixed_momentum_optimizer_is_plain() -> None:
    space = _space(optimizer="nesterov", momentum={"choices": [0.8, 0.9]})
    assert _hps(declare(space))["momentum"].conditions == []
    assert config_from_values(space, {"momentum": 0.9})["momentum"] == 0.9


def test_fixed_momentum_applies_only_to_the_variants() -> None:
    space = _space(optimizer={"choices": ["adam", "momentum"]}, momentum=0.9)
    assert "momentum" not in _hps(declare(space))
    assert "momentum" not in config_from_values(space, {"optimizer": "adam"})
    assert config_from_values(space, {"optimizer": "momentum"})["momentum"] == 0.9


def test_choice_types() -> None:
    mixed = _space(learning_rate={"choices": [1, 0.1, 0.01]})
    assert _hps(declare(mixed))["learning_rate"].values == [1.0, 0.1, 0.01]
    assert _hps(declare(_space(units={"choices": [16, 32]})))["units"].values == [16, 32]
    expected = r"space.units.choices: KerasTuner's hp.Choice takes values of one type"
    with pytest.raises(SpecError, match=expected):
        declare(_space(units={"choices": [16, "wide"]}))


def test_grid_needs_value_lists() -> None:
    check_grid(_space(optimizer={"choices": ["sgd", "momentum"]}, momentum={"choices": [0.5, 0.9]}))
    with pytest.raises(SpecError, match=r"space.dropout: the grid tuner needs a list of values"):
        check_grid(_space(dropout={"low": 0.0, "high": 0.5, "step": 0.1}))


def _engine(**engine: Any):
    # The built-in quickstart fuses trials, which only the optuna engine does.
    return load_spec("quickstart", {"engine": engine, "train.fuse": 1}).engine


def test_engine_section() -> None:
    kt = _engine(name="kerastuner")
    assert (kt.tuner, kt.sampler, kt.pruner) == ("random", None, None)
    assert _engine(name="kerastuner", tuner="hyperband", seed=3).tuner == "hyperband"
    optuna = _engine(name="optuna")
    assert (optuna.sampler, optuna.tuner) == ("tpe", None)
    assert _engine().name == "optuna"


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        ({"name": "kerastuner", "sampler": "tpe"}, "engine.sampler: only for engine optuna, not kerastuner"),
        ({"name": "kerastuner", "pruner": "median"}, "engine.pruner: only for engine optuna, not kerastuner"),
        ({"name": "optuna", "tuner": "hyperband"}, "engine.tuner: only for engine kerastuner, not optuna"),
        ({"tuner": "grid"}, "engine.tuner: only for engine kerastuner, not optuna (which is set with engine"),
        ({"name": "kerastuner", "tuner": "hyperopt"}, "engine.tuner: Input should be 'random', 'bayesian'"),
        ({"name": "kerastuner", "tunr": "grid"}, "unknown key 'tunr' in engine (did you mean 'tuner'?)"),
    ],
)
def test_engine_options_belong_to_their_engine(engine: dict[str, Any], expected: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec("quickstart", {"engine": engine})
    assert expected in str(info.value)


def test_kerastuner_spec_round_trips() -> None:
    spec = load_spec(
        "quickstart", {"engine": {"name": "kerastuner", "tuner": "bayesian", "seed": 2}, "train.fuse": 1}
    )
    assert spec.raw()["engine"] == {"name": "kerastuner", "tuner": "bayesian", "seed": 2}
    assert load_spec(spec.raw()) == spec
