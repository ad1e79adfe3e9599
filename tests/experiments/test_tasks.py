"""Tasks: inference from the targets, each task's label checks, heads, and the logged metric names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments.data import DatasetError, load_dataset
from experiments.metrics import check_metrics, logged_metrics, metric_name
from experiments.models import ModelError, build_model
from experiments.monitoring import metric_direction
from experiments.tasks import infer_task, prepare_targets
from experiments.training import TrainConfig, train


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (np.array([0, 1, 1, 0]), "binary"),
        (np.array([[0], [1]]), "binary"),
        (np.array([True, False]), "binary"),
        (np.array([0, 3, 9, 2]), "classification"),
        (np.array([1.5, 2.0]), "regression"),
        (np.array([0.0, 1.0]), "regression"),  # floats are targets unless the task says class ids
        (np.zeros((4, 3)), "regression"),
    ],
)
def test_the_task_is_inferred_from_the_targets(y: np.ndarray, task: str) -> None:
    assert infer_task(y) == task


def test_string_labels_cannot_be_inferred() -> None:
    with pytest.raises(DatasetError, match="training targets must be numbers; got dtype <U1"):
        infer_task(np.array(["a", "b"]))


def test_targets_come_as_each_task_takes_them() -> None:
    ids = prepare_targets("classification", np.array([[2], [0], [1]]), 3, "train")
    assert ids.dtype == np.int32 and ids.shape == (3,)
    labels = prepare_targets("binary", np.array([True, False]), 2, "train")
    assert labels.dtype == np.float32 and labels.shape == (2, 1)
    targets = prepare_targets("regression", np.array([1, 2, 3]), 3, "train")
    assert targets.dtype == np.float32 and targets.shape == (3, 1)
    assert prepare_targets("regression", np.zeros((3, 2, 2)), 3, "train").shape == (3, 2, 2)


@pytest.mark.parametrize(
    ("task", "y", "message"),
    [
        (
            "classification",
            np.array([0.5, 1.0, 2.0]),
            r"y_train must hold integer class ids; got dtype float64 such as 0.5 at index 0 "
            r"\(task classification; for float targets use task: regression\)",
        ),
        ("classification", np.array([1, -2, 0]), r"y_train must hold class ids >= 0; got -2"),
        (
            "binary",
            np.arange(10) % 5,
            r"y_train: task binary needs labels 0 and 1; got 5 classes \(0, 1, 2, 3, 4\) "
            r"\(for more classes use task: classification\)",
        ),
        (
            "binary",
            np.array([0.0, 0.5]),
            "y_train must hold integer class ids; got dtype float64 such as 0.5",
        ),
        (
            "binary",
            np.zeros((3, 2), dtype=int),
            r"labels 0 and 1 of shape \(N,\) or \(N, 1\); got shape \(3, 2\)",
        ),
        (
            "regression",
            np.array([1.0, np.nan, np.inf]),
            r"y_train holds 2 NaN or infinite values \(first at index \[1\], nan\)",
        ),
        (
            "regression",
            np.array(["1.0", "2"]),
            "y_train must hold numbers for task regression; got dtype <U3",
        ),
    ],
)
def test_each_task_rejects_targets_it_cannot_take(task: str, y: np.ndarray, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        prepare_targets(task, y, len(y), "train")


def test_load_dataset_checks_the_targets_for_the_task(tmp_path: Path) -> None:
    path = tmp_path / "five.npz"
    np.savez(path, x_train=np.zeros((20, 3)), y_train=np.arange(20) % 5)
    with pytest.raises(DatasetError, match="task binary needs labels 0 and 1; got 5 classes"):
        load_dataset(f"npz:{path}", task="binary")
    assert load_dataset(f"npz:{path}").task == "classification"
    regression = load_dataset(f"npz:{path}", task="regression")
    assert regression.num_classes == 0 and regression.output_shape == (1,)


def test_scikit_learn_tables_ship_offline_with_their_tasks() -> None:
    cancer, diabetes = load_dataset("breast_cancer"), load_dataset("diabetes")
    assert (cancer.task, cancer.input_shape, cancer.output_shape) == ("binary", (30,), (1,))
    assert set(np.unique(cancer.y_train)) == {0.0, 1.0}
    assert abs(float(cancer.x_train.mean())) < 0.2  # standardized features
    assert (diabetes.task, diabetes.input_shape) == ("regression", (10,))
    assert diabetes.y_train.min() >= 25 and diabetes.y_test is not None


@pytest.mark.parametrize(
    ("task", "output_shape", "activation"),
    [("classification", (10,), "softmax"), ("binary", (1,), "sigmoid"), ("regression", (2, 3), "linear")],
)
def test_built_in_models_end_in_the_head_their_task_needs(
    task: str, output_shape: tuple[int, ...], activation: str
) -> None:
    model = build_model("mlp", (8, 8, 1), 10, task=task, output_shape=output_shape, units=4)
    assert model.output_shape[1:] == output_shape
    assert model.get_layer("output").activation.__name__ == activation
    assert model.outputs[0].dtype == "float32"


def test_a_user_builder_is_given_the_task_and_its_output_must_fit() -> None:
    model = build_model("tests.experiments.builders:for_task", (4,), 1, task="regression", output_shape=(3,))
    assert model.output_shape == (None, 3)
    with pytest.raises(ModelError, match=r"output shape \(2,\); task binary needs \(1,\)"):
        build_model("tests.experiments.builders:two_units", (4,), 1, task="binary", output_shape=(1,))


def test_metric_names_follow_the_spelling() -> None:
    assert metric_name("pkg.metrics:agreement") == "agreement"
    assert logged_metrics("regression", None) == ("loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse")
    assert logged_metrics("binary", ["precision", "recall"])[-2:] == ("val_precision", "val_recall")
    assert metric_direction("val_top_5_accuracy") == "maximize"
    assert metric_direction("val_mean_absolute_error") == "minimize"
    assert metric_direction("val_rmse") == "minimize" and metric_direction("val_auc") == "maximize"


@pytest.mark.parametrize(
    ("task", "metrics", "message"),
    [
        ("regression", ["accuracy"], "scores class labels; task regression has none"),
        ("classification", ["auc"], "scores 0/1 labels .task binary., not task classification"),
        ("binary", ["top_5_accuracy"], "scores class ids .task classification., not task binary"),
        ("binary", ["auc", "auc"], "would log as 'auc', which another value already does"),
        ("binary", ["loss"], "would log as 'loss'"),
        ("binary", ["not a metric"], "is not a metric"),
    ],
)
def test_metrics_a_task_cannot_log_are_named(task: str, metrics: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_metrics(task, metrics)


def test_a_regression_trial_logs_its_metrics_and_reads_its_objective(tmp_path: Path) -> None:
    data = load_dataset("diabetes", train_size=120, val_size=60)
    config = TrainConfig(
        model="mlp",
        optimizer="adam",
        learning_rate=0.05,
        epochs=2,
        task="regression",
        objective="val_mae",
        monitor="val_mae",
        model_options={"units": 8},
    )
    result = train(config, data)
    assert set(result.history) == {"loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse"}
    assert result.value == min(result.history["val_mae"])
