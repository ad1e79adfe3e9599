"""Spec validation: every bad input names its field; good specs round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sweeps.errors import SpecError
from sweeps.spec.schema import apply_overrides, builtin_names, load_spec, parse_spec


@pytest.fixture
def base() -> dict:
    return load_spec("quickstart").raw()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("space.optimizer", {"choices": ["adam", "adamw"]}, "space.optimizer: unknown optimizer 'adamw'"),
        ("space.optimizer", "lbfgs", "unknown optimizer 'lbfgs'"),
        ("space.optimizer", {"choices": []}, "space.optimizer.choices: must be a non-empty list"),
        ("space.learning_rate", {"low": 0.1, "high": 0.001}, "space.learning_rate: empty or inverted range"),
        ("space.dropout", {"low": 0.2, "high": 0.2}, "space.dropout: empty or inverted range"),
        (
            "space.learning_rate",
            {"low": 0.0, "high": 0.1, "log": True},
            "space.learning_rate.low: a log range needs low > 0",
        ),
        ("space.patience", -1, "space.patience: patience must be a whole number >= 0"),
        ("space.patience", {"low": -2, "high": 3}, "space.patience: patience must be a whole number >= 0"),
        ("space.dropout", {"low": 0.0, "high": 1.5}, "space.dropout: must be in [0, 1)"),
        ("space.learnin_rate", 0.1, "space.learnin_rate: unknown parameter (did you mean 'learning_rate'?)"),
        ("space.learning_rate", {"lo": 1, "high": 2}, "space.learning_rate: expected a value"),
        ("space.learning_rate", [0.1, 0.01], "space.learning_rate: a list needs a key"),
        ("dataset.name", "imagenet", "dataset.name: unknown dataset 'imagenet'"),
        ("model.name", "resnet", "model.name: unknown model 'resnet'"),
        ("model.unitz", 3, "unknown option 'unitz' in model 'mlp' (did you mean 'units'?)"),
        ("trainn", {}, "trainn: unknown key 'trainn' in top level (did you mean 'train'?)"),
        ("train.epoch", 3, "train.epoch: unknown key 'epoch' in train (did you mean 'epochs'?)"),
        ("train.epochs", 0, "train.epochs: Input should be greater than or equal to 1"),
        (
            "objective.metric",
            "val_acc",
            "objective.metric: 'val_acc' is not a metric the compiled model logs",
        ),
        ("engine.sampler", "annealing", "engine.sampler: Input should be"),
        ("task", "ranking", "task: Input should be 'classification', 'binary' or 'regression'"),
        (
            "train.monitor",
            "val_f1",
            "train.monitor: 'val_f1' is not a metric the compiled model logs for any task",
        ),
        (
            "train.loss",
            "not a loss",
            "train.loss: 'not a loss' is not a loss: expected a Keras loss identifier",
        ),
        (
            "train.metrics",
            ["auc", "top_5_accuracy"],
            "train.metrics: metric 'auc' scores 0/1 labels (task binary), not task classification",
        ),
        (
            "dataset.validaton_split",
            0.1,
            "dataset.validaton_split: unknown key 'validaton_split' in dataset (did you mean",
        ),
        ("dataset.color_mode", "grayscale", "dataset.color_mode: only for image folders (dir:PATH)"),
        ("dataset.name", "dir:", "dataset.name: unknown dataset 'dir:'"),
        ("budget.trials", 0, "budget.trials"),
        ("name", "has space", "name: 'has space' must be letters"),
        ("train.fuse", 0, "train.fuse: Input should be greater than or equal to 1"),
        ("train.fuse", 2.5, "train.fuse: Input should be a valid integer"),
        ("train.steps_per_execution", 0, "train.steps_per_execution: expected 'auto' or an integer >= 1"),
        ("train.steps_per_execution", "fast", "steps_per_execution: expected 'auto' or an integer"),
    ],
)
def test_bad_field_is_named(base: dict, path: str, value: object, expected: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(apply_overrides(base, {path: value}), source="my.yaml")
    message = str(info.value)
    assert message.startswith("spec my.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_fused_trials_need_the_optuna_engine(base: dict) -> None:
    spec = apply_overrides(base, {"train.fuse": 4, "engine": {"name": "kerastuner"}})
    with pytest.raises(SpecError, match="train.fuse: 4 trials at once needs engine optuna"):
        parse_spec(spec)
    assert parse_spec(apply_overrides(base, {"train.fuse": 4})).train.fuse == 4


def test_momentum_without_a_momentum_optimizer_is_rejected(base: dict) -> None:
    spec = apply_overrides(base, {"space.optimizer": {"choices": ["adam", "sgd"]}, "space.momentum": 0.5})
    with pytest.raises(SpecError, match="space.momentum: only used by momentum or nesterov"):
        parse_spec(spec)


def test_missing_sections(base: dict) -> None:
    del base["dataset"]
    with pytest.raises(SpecError, match="dataset: required field is missing"):
        parse_spec(base)


def test_defaults_fill_the_space() -> None:
    spec = parse_spec(
        {
            "name": "x",
            "dataset": {"name": "digits"},
            "model": {"name": "mlp"},
            "space": {"learning_rate": {"low": 1e-3, "high": 1e-1, "log": True}},
        }
    )
    assert spec.space.fixed() == {"optimizer": "adam", "dropout": 0.0, "patience": 2}
    assert spec.task is None and spec.objective.metric is None  # both wait for the data
    classifier = spec.for_task("classification")
    assert classifier.monitor == "val_accuracy"  # monitor defaults to the objective metric
    assert classifier.objective.direction == "maximize"
    loss = parse_spec({**spec.raw(), "objective": {"metric": "val_loss"}})
    assert loss.objective.direction == "minimize"


def test_user_builder_takes_any_space_key() -> None:
    spec = parse_spec(
        {
            "name": "x",
            "dataset": {"name": "npz:data.npz"},
            "model": {"name": "mypkg.models:build", "width": 3},
            "space": {"width": {"choices": [1, 2]}},
        }
    )
    assert spec.model.options() == {"width": 3}


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nspace: {optimizer: [adam\n")
    with pytest.raises(SpecError, match=r"spec .*bad.yaml: malformed YAML at line \d+"):
        load_spec(path)


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(
        SpecError, match="'quikstart' is neither a spec file nor a built-in spec .did you mean 'quickstart'"
    ):
        load_spec("quikstart")


@pytest.mark.parametrize("name", builtin_names())
def test_builtins_validate_and_round_trip(name: str) -> None:
    spec = load_spec(name)
    again = parse_spec(yaml.safe_load(spec.to_yaml()))
    assert again == spec


def test_builtins_are_the_seeds() -> None:
    assert set(builtin_names()) >= {
        "quickstart",
        "fashion_mnist_optimizers",
        "mnist_patience",
        "cifar10_alexnet",
    }
    patience = load_spec("mnist_patience")
    assert (patience.dataset.train_size, patience.dataset.val_size, patience.train.batch_size) == (
        700,
        300,
        10,
    )
    assert patience.model.options() == {"units": 2}
    assert patience.space.params["patience"].low == 0 and patience.space.params["patience"].high == 30


def test_overrides_and_fixed_config(base: dict) -> None:
    spec = load_spec(base, {"budget.trials": 3, "train.epochs": 2})
    assert (spec.budget.trials, spec.train.epochs) == (3, 2)
    one = spec.with_fixed({"optimizer": "adam", "learning_rate": 0.01, "dropout": 0.1, "patience": 2})
    assert one.space.searched == []


def test_the_objective_and_the_monitor_name_any_metric_the_model_logs(base: dict) -> None:
    regression = {**base, "task": "regression", "objective": {"metric": "val_mae"}}
    spec = parse_spec(regression)
    assert (spec.objective.metric, spec.objective.direction, spec.monitor_direction) == (
        "val_mae",
        "minimize",
        "minimize",
    )
    own = apply_overrides(
        base,
        {
            "train.metrics": ["accuracy", "pkg.scores:kappa"],
            "train.monitor": "val_kappa",
            "objective.metric": "val_loss",
        },
    )
    with pytest.raises(SpecError, match="train.monitor_direction: cannot tell whether 'val_kappa' is to be"):
        parse_spec(own)
    own["train"]["monitor_direction"] = "maximize"
    assert parse_spec(own).monitor_direction == "maximize"
    binary = parse_spec({**base, "task": "binary", "objective": {}})
    assert (binary.objective.metric, binary.objective.direction) == ("val_auc", "maximize")


def test_a_spec_is_checked_against_its_task_without_importing_keras() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from sweeps.spec.schema import load_spec\n"
        "for name in ('breast_cancer_binary', 'diabetes_regression'):\n"
        "    load_spec(name)\n"
        "assert len(load_spec('fashion_mnist_seed001').space.grid_points()) == 7\n"
        "heavy = {'keras', 'tensorflow', 'sklearn', 'optuna', 'mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], check=True)
