"""The comparison a re-run sweep makes against the spec it was started with."""

from __future__ import annotations

import pytest

from sweeps.running.memory import archived_name, spec_changes
from sweeps.spec.schema import parse_spec

BASE = {  # a settled spec, as the parent run stores it (the task and its objective filled in)
    "name": "m",
    "description": "first",
    "task": "classification",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 3},
    "space": {
        "optimizer": {"choices": ["sgd", "adam"]},
        "learning_rate": {"low": 1.0e-4, "high": 1.0e-1, "log": True},
        "patience": {"low": 1, "high": 3},
    },
    "engine": {"name": "optuna", "sampler": "tpe", "seed": 0},
    "budget": {"trials": 5},
}


def changes(**edits: object) -> list[str]:
    after = {**BASE, **edits}
    return [str(c) for c in spec_changes(parse_spec(BASE).raw(), parse_spec(after).raw())]


def test_the_same_spec_has_no_changes() -> None:
    assert changes() == []


def test_budget_description_and_verbosity_may_change() -> None:
    assert (
        changes(
            budget={"trials": 50, "max_failures": 2}, description="more", train={"epochs": 3, "verbose": 2}
        )
        == []
    )


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {"space": {**BASE["space"], "optimizer": {"choices": ["sgd", "adam", "rmsprop"]}}},
            ["space.optimizer.choices: [sgd, adam] -> [sgd, adam, rmsprop]"],
        ),
        (
            {"space": {**BASE["space"], "learning_rate": 0.01}},
            ["space.learning_rate: {low: 0.0001, high: 0.1, log: true} -> 0.01"],
        ),
        (
            {"space": {**BASE["space"], "dropout": {"low": 0.0, "high": 0.5}}},
            ["space.dropout: 0.0 -> {low: 0.0, high: 0.5}"],
        ),
        ({"model": {"name": "mlp", "units": 32}}, ["model.units: 16 -> 32"]),
        ({"dataset": {"name": "digits", "train_size": 500}}, ["dataset.train_size: (not set) -> 500"]),
        ({"train": {"epochs": 4}}, ["train.epochs: 3 -> 4"]),
        (
            {"objective": {"metric": "val_loss"}},
            ["objective.metric: val_accuracy -> val_loss", "objective.direction: maximize -> minimize"],
        ),
        ({"engine": {"name": "optuna", "sampler": "random", "seed": 0}}, ["engine.sampler: tpe -> random"]),
        ({"task": "binary", "objective": {"metric": "val_accuracy"}}, ["task: classification -> binary"]),
    ],
)
def test_search_changes_are_listed_field_by_field(edits: dict, expected: list[str]) -> None:
    assert changes(**edits) == expected


def test_an_int_bound_written_as_a_float_is_the_same_search() -> None:
    before = parse_spec(BASE).raw()
    after = parse_spec(BASE).raw()
    after["space"]["learning_rate"]["high"] = 0.1
    before["space"]["patience"]["high"] = 3.0
    assert spec_changes(before, after) == []


def test_archived_names_cannot_be_a_spec_name_and_do_not_collide() -> None:
    first = archived_name("m", set())
    assert first.startswith("m@") and archived_name("m", {first}) == f"{first}-2"
    with pytest.raises(ValueError):
        parse_spec({**BASE, "name": first})
