"""Sub-spaces per choice: parsing with exact error paths, and how each engine draws them (no training)."""

from __future__ import annotations

from typing import Any

import keras_tuner
import optuna
import pytest
import yaml

from sweeps.engines.kerastuner_space import conditions, config_from_values, declare
from sweeps.errors import SpecError
from sweeps.running.trial import used_config
from sweeps.spec.schema import load_spec, parse_spec
from sweeps.spec.space import Choice, Range, Space, SpaceError

ISSUE_SPACE = {  # the example of issue 11
    "optimizer": {
        "choices": {
            "sgd": {"learning_rate": {"choices": ["default", 0.1]}},
            "momentum": {"learning_rate": "default", "momentum": {"low": 0.5, "high": 0.99}},
            "adam": {"learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}},
            "adagrad": {},
        }
    },
    "dropout": {"low": 0.0, "high": 0.5},
}


def _space(raw: dict[str, Any]) -> Space:
    return Space.parse(raw, allowed={"units"})


def test_a_choice_carries_its_own_sub_space() -> None:
    space = _space(ISSUE_SPACE)
    optimizer = space.params["optimizer"]
    assert isinstance(optimizer, Choice) and optimizer.choices == ("sgd", "momentum", "adam", "adagrad")
    assert optimizer.branches["adam"]["learning_rate"] == Range(1e-4, 1e-2, log=True)
    assert optimizer.branches["adagrad"] == {}
    assert space.searched == ["optimizer", "learning_rate", "momentum", "dropout"]
    assert [slot.key for slot in space.slots()] == [
        "optimizer",
        "learning_rate@sgd",
        "learning_rate@momentum",
        "momentum@momentum",
        "learning_rate@adam",
        "dropout",
        "learning_rate",
        "patience",
    ]
    again = _space(yaml.safe_load(yaml.safe_dump(space.to_dict(), sort_keys=False)))
    assert again == space


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"adam": {"learning_rate": {"low": 0.0, "high": 1e-2, "log": True}}},
            "space.optimizer.choices.adam.learning_rate.low: a log range needs low > 0, got 0.0",
        ),
        (
            {"adam": {"learning_rate": {"low": 1e-2, "high": 1e-4}}},
            "space.optimizer.choices.adam.learning_rate: empty or inverted range",
        ),
        (
            {"adam": {"learnin_rate": 0.1}},
            "space.optimizer.choices.adam.learnin_rate: unknown parameter (did you mean 'learning_rate'?)",
        ),
        ({"adamw": {}}, "space.optimizer.choices.adamw: unknown optimizer 'adamw'"),
        ({"adam": 0.1}, "space.optimizer.choices.adam: a sub-space must be a mapping of parameter -> value"),
        (
            {"adam": {"dropout": "default"}},
            "space.optimizer.choices.adam.dropout: must be a number, got 'default'",
        ),
        (
            {"adam": {"learning_rate": "fast"}},
            "space.optimizer.choices.adam.learning_rate: must be a number or 'default'",
        ),
        (
            {"adam": {"momentum": 0.9}},
            "space.optimizer.choices.adam.momentum: only used by momentum or nesterov, not adam",
        ),
        (
            {"adam": {"dropout": {"choices": {0.1: {}}}}},
            "space.optimizer.choices.adam.dropout.choices: sub-spaces nest one level only",
        ),
        (
            {"adam": {"optimizer": "sgd"}},
            "space.optimizer.choices.adam.optimizer: a sub-space cannot set 'optimizer'",
        ),
    ],
)
def test_sub_space_errors_name_their_exact_path(change: dict[str, Any], expected: str) -> None:
    raw = {**ISSUE_SPACE, "optimizer": {"choices": {**ISSUE_SPACE["optimizer"]["choices"], **change}}}
    spec = {"name": "x", "dataset": {"name": "digits"}, "model": {"name": "mlp"}, "space": raw}
    with pytest.raises(SpecError) as info:
        parse_spec(spec, source="my.yaml")
    assert str(info.value).startswith(f"spec my.yaml: {expected}"), str(info.value)


def test_two_choices_may_not_set_the_same_parameter() -> None:
    raw = {
        "optimizer": {"choices": {"adam": {"dropout": 0.1}, "sgd": {}}},
        "units": {"choices": {16: {}, 64: {"dropout": 0.4}}},
    }
    with pytest.raises(
        SpaceError, match=r"space.units.choices.64.dropout: 'dropout' is already set by the sub"
    ):
        _space(raw)


def test_any_choice_may_carry_sub_spaces() -> None:
    space = _space({"units": {"choices": {16: {"dropout": 0.0}, 128: {"dropout": {"choices": [0.2, 0.5]}}}}})
    points = space.grid_points()
    assert points == [
        {"units": 16},
        {"units": 128, "dropout@128": 0.2},
        {"units": 128, "dropout@128": 0.5},
    ]
    assert [space.config(p) for p in points][2] == {
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "dropout": 0.5,
        "patience": 2,
        "units": 128,
    }


SEVEN = [  # seed 001: (optimizer, learning rate) as Keras defaults them
    ("sgd", 0.01),
    ("sgd", 0.1),
    ("momentum", 0.01),
    ("nesterov", 0.01),
    ("rmsprop", 0.001),
    ("adagrad", 0.001),
    ("adam", 0.001),
]


def test_fashion_mnist_seed001_is_the_seven_configs_of_seed_001() -> None:
    spec = load_spec("fashion_mnist_seed001")
    assert (spec.engine.sampler, spec.budget.trials, spec.train.epochs, spec.train.batch_size) == (
        "grid",
        7,
        5,
        32,
    )
    assert spec.model.options() == {"units": 100} and spec.dataset.name == "fashion_mnist"
    configs = [used_config(spec.space.config(point)) for point in spec.space.grid_points()]
    assert [(c["optimizer"], c["learning_rate"]) for c in configs] == SEVEN
    assert [c.get("learning_rate_default", False) for c in configs] == [
        True,
        False,
        True,
        True,
        True,
        True,
        True,
    ]
    assert all(c["dropout"] == 0.0 and c["patience"] == 5 and "momentum" not in c for c in configs[:2])
    searched = load_spec("fashion_mnist_optimizers").space.params["optimizer"]
    assert isinstance(searched, Choice) and set(searched.branches) == {o for o, _ in SEVEN}


def test_a_range_in_a_grid_is_named_when_the_spec_loads() -> None:
    space = {**ISSUE_SPACE, "dropout": 0.0}
    raw = {"name": "x", "dataset": {"name": "digits"}, "model": {"name": "mlp"}, "space": space}
    with pytest.raises(
        SpecError, match=r"space.optimizer.choices.momentum.momentum: the grid sampler needs a list"
    ):
        parse_spec({**raw, "engine": {"sampler": "grid"}})
    with pytest.raises(
        SpecError, match=r"space.optimizer.choices.momentum.momentum: the grid tuner needs a list"
    ):
        parse_spec({**raw, "engine": {"name": "kerastuner", "tuner": "grid"}})


def test_optuna_draws_each_branch_under_its_own_names_and_configs_keep_the_plain_ones() -> None:
    space = _space(ISSUE_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    seen = set()
    for i in range(16):
        trial = study.ask()
        config = space.suggest(trial)
        study.tell(trial, float(i % 3))
        seen.add(config["optimizer"])
        branch = config["optimizer"]
        assert set(config) >= {"optimizer", "learning_rate", "dropout", "patience"}
        assert not any("@" in key for key in config)
        assert ("momentum" in config) == (branch == "momentum")
        if branch == "adam":
            assert set(trial.params) == {"optimizer", "learning_rate@adam", "dropout"}
            assert 1e-4 <= config["learning_rate"] <= 1e-2
        elif branch == "sgd":
            assert config["learning_rate"] == trial.params["learning_rate@sgd"] in ("default", 0.1)
        elif branch == "momentum":
            assert config["learning_rate"] == "default" and set(trial.params) >= {"momentum@momentum"}
        else:
            assert config["learning_rate"] == 1e-3  # adagrad: the top level's
        assert space.config(trial.params) == config
    assert seen == {"sgd", "momentum", "adam", "adagrad"}


def _hps(hp: keras_tuner.HyperParameters) -> dict[str, Any]:
    return {p.name: p for p in hp.space}


def test_kerastuner_declares_each_branch_in_its_conditional_scope() -> None:
    space = _space({**ISSUE_SPACE, "learning_rate": {"choices": [1e-3, 1e-2]}})
    hps = _hps(declare(space))
    assert list(hps) == [
        "optimizer",
        "learning_rate@sgd",
        "momentum@momentum",
        "learning_rate@adam",
        "dropout",
        "learning_rate",
    ]
    assert hps["learning_rate@sgd"].values == ["default", "0.1"]  # one type per hp.Choice
    (condition,) = hps["learning_rate@adam"].conditions
    assert (condition.name, list(condition.values)) == ("optimizer", ["adam"])
    # The top-level rate is drawn only where no sub-space overrides it.
    (condition,) = hps["learning_rate"].conditions
    assert list(condition.values) == ["adagrad"]
    slot = next(s for s in space.slots() if s.key == "momentum@momentum")
    assert conditions(space, slot) == [("optimizer", ["momentum"])]
    values = {"optimizer": "sgd", "learning_rate@sgd": "0.1", "dropout": 0.25}
    assert config_from_values(space, values) == {
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "dropout": 0.25,
        "patience": 2,
    }


def test_kerastuner_refuses_a_parameter_that_depends_on_two_choices() -> None:
    space = _space(
        {
            "optimizer": {"choices": ["sgd", "momentum"]},
            "units": {"choices": {16: {"momentum": 0.5}, 32: {}}},
            "momentum": {"choices": [0.8, 0.9]},  # for the momentum optimizer, and units 32 only
        }
    )
    with pytest.raises(
        SpecError, match=r"space.momentum: the kerastuner engine conditions a parameter on one"
    ):
        declare(space)


def test_a_space_names_every_optimizer_its_configs_can_have() -> None:
    # What a fused pack traces its step for: the choices with or without sub-spaces, a fixed
    # value, and the default when the space leaves the optimizer out.
    assert _space(ISSUE_SPACE).optimizers == ("sgd", "momentum", "adam", "adagrad")
    assert _space({"optimizer": {"choices": ["adam", "sgd"]}}).optimizers == ("adam", "sgd")
    assert _space({"optimizer": "rmsprop"}).optimizers == ("rmsprop",)
    assert _space({"dropout": 0.1}).optimizers == ("adam",)
