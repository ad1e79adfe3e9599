from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from experiments.data import Dataset
from experiments.errors import ConfigError, ModelError
from experiments.training import TrainConfig, TrialResult, train


def _config(**overrides) -> TrainConfig:
    base = {"model": "mlp", "optimizer": "adam", "learning_rate": 1e-2, "epochs": 3}
    base.update(overrides)
    base.setdefault("model_options", {"units": 32})
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def noisy_val(digits: Dataset) -> Dataset:
    """Shuffled validation labels: val_loss rises as the model learns, so epoch 1 is best."""
    rng = np.random.default_rng(1)
    return dataclasses.replace(digits, y_val=rng.permutation(digits.y_val))


class Capture(keras.callbacks.Callback):
    """Keeps the trained model, to look at the weights train() leaves in it."""

    def on_train_end(self, logs=None):
        self.trained = self.model


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """What a pruner does: ask Keras to stop."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


class PoisonOutputBefore(keras.callbacks.Callback):
    """Sets the output layer's weights to NaN as an epoch begins: its first loss is NaN.

    Deterministic where a huge learning rate diverges only for some widths and seeds.
    """

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            for weight in self.model.layers[-1].weights:
                weight.assign(keras.ops.full(weight.shape, math.nan))


def _evaluate(model: keras.Model, data: Dataset) -> dict[str, float]:
    return model.evaluate(data.x_val, data.y_val, verbose=0, return_dict=True)


def test_result_is_plain_data_with_one_based_epochs(digits: Dataset):
    result = train(_config(), digits)
    assert isinstance(result, TrialResult)
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(type(v) is float for values in result.history.values() for v in values)
    assert result.epochs == [1, 2, 3] and result.epochs_run == 3
    assert result.stop_reason == "completed" and result.stopped_epoch == 0
    best = result.history["val_loss"].index(min(result.history["val_loss"]))
    assert result.best_epoch == best + 1
    assert result.value == result.best_value == result.history["val_accuracy"][best]
    assert result.best_monitor == result.history["val_loss"][best]
    assert result.train_seconds > 0 and result.checkpoint_path is None


def test_same_config_same_history(digits: Dataset):
    config = _config(optimizer="nesterov", learning_rate=0.05, dropout=0.2, seed=7)
    assert train(config, digits).history == train(config, digits).history


def test_checkpoint_and_model_hold_the_best_epoch_without_early_stopping(noisy_val: Dataset, tmp_path: Path):
    """Keras 3's EarlyStopping restores the best weights at the end even when it never fired."""
    path = tmp_path / "ckpt" / "best.keras"
    capture = Capture()
    result = train(_config(epochs=4, patience=10, checkpoint_path=str(path)), noisy_val, [capture])
    assert result.stop_reason == "completed" and result.stopped_epoch == 0
    assert result.best_epoch < result.epochs_run  # the last epoch is not the best
    assert result.checkpoint_path == str(path)

    checkpoint = _evaluate(keras.saving.load_model(path), noisy_val)
    assert checkpoint["accuracy"] == pytest.approx(result.best_value, abs=1e-6)
    assert checkpoint["loss"] == pytest.approx(result.best_monitor, rel=1e-5)
    in_memory = _evaluate(capture.trained, noisy_val)
    assert in_memory["loss"] == pytest.approx(result.best_monitor, rel=1e-5)


@pytest.mark.parametrize("patience", [0, 2])
def test_early_stopping_epochs(noisy_val: Dataset, patience: int):
    """Keras stops ``max(patience, 1)`` epochs after the best; stopped_epoch is 1-based."""
    result = train(_config(epochs=10, patience=patience), noisy_val)
    assert result.stop_reason == "early_stopping"
    assert result.stopped_epoch == result.best_epoch + max(patience, 1) == result.epochs_run
    assert result.best_monitor == min(result.history["val_loss"])


def test_accuracy_monitor_is_maximized(digits: Dataset, tmp_path: Path):
    path = tmp_path / "best.keras"
    config = _config(monitor="val_accuracy", objective="val_loss", checkpoint_path=str(path))
    result = train(config, digits)
    accuracies = result.history["val_accuracy"]
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    assert result.best_value == result.history["val_loss"][result.best_epoch - 1]
    checkpoint = _evaluate(keras.saving.load_model(path), digits)
    assert checkpoint["loss"] == pytest.approx(result.best_value, rel=1e-5)


def test_nan_loss_in_the_first_epoch(digits: Dataset, tmp_path: Path):
    path = tmp_path / "best.keras"
    result = train(_config(checkpoint_path=str(path)), digits, [PoisonOutputBefore(0)])
    assert result.stop_reason == "nan_loss"
    assert result.epochs_run == 1 and math.isnan(result.history["loss"][0])
    assert result.best_epoch == 0 and math.isnan(result.value) and math.isnan(result.best_monitor)
    assert result.checkpoint_path is None and not path.exists()


def test_nan_loss_later_keeps_the_best_finite_epoch(digits: Dataset, tmp_path: Path):
    path = tmp_path / "best.keras"
    result = train(_config(epochs=5, checkpoint_path=str(path)), digits, [PoisonOutputBefore(2)])
    assert result.stop_reason == "nan_loss" and result.epochs_run == 3
    assert result.best_epoch in (1, 2) and math.isfinite(result.value)
    checkpoint = _evaluate(keras.saving.load_model(path), digits)
    assert checkpoint["accuracy"] == pytest.approx(result.best_value, abs=1e-6)


def test_a_callback_that_stops_training_gives_stopped(digits: Dataset):
    result = train(_config(epochs=5), digits, [StopAfterFirstEpoch()])
    assert result.stop_reason == "stopped"
    assert result.epochs_run == 1 and result.stopped_epoch == 0 and result.best_epoch == 1


def test_continuing_from_weights_numbers_epochs_on(digits: Dataset, tmp_path: Path):
    first_path = tmp_path / "round1.keras"
    first = train(_config(epochs=2, checkpoint_path=str(first_path)), digits)
    config = _config(epochs=4, initial_epoch=2, initial_weights=str(first_path))
    second = train(config, digits)
    assert second.epochs == [3, 4] and second.epochs_run == 2
    assert second.best_epoch in (3, 4)
    # Started from trained weights, its first epoch beats the fresh run's first epoch.
    assert second.history["loss"][0] < first.history["loss"][0]


def test_initial_weights_file_must_exist(digits: Dataset, tmp_path: Path):
    missing = tmp_path / "absent.keras"
    with pytest.raises(ConfigError, match=f"initial_weights file '{missing}' does not exist"):
        train(_config(initial_weights=str(missing)), digits)


def test_mixed_precision_trains_and_leaves_the_policy_as_found(digits: Dataset):
    capture = Capture()
    result = train(_config(epochs=1, mixed_precision=True), digits, [capture])
    assert math.isfinite(result.value)
    assert capture.trained.layers[0].dtype_policy.name == "mixed_float16"
    assert capture.trained.layers[-1].dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_tensorflow_gets_a_tf_data_pipeline_and_other_backends_the_arrays(
    digits: Dataset, monkeypatch: pytest.MonkeyPatch
):
    from experiments.training import _fit_data

    config = _config(batch_size=64)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fit = _fit_data(config, digits)
        assert isinstance(fit["x"], tf.data.Dataset) and fit["shuffle"] is False
        x, y = next(iter(fit["x"]))
        assert x.shape == (64, *digits.input_shape) and y.shape == (64,)
        assert int(fit["validation_data"].cardinality()) == -(-len(digits.y_val) // 64)
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    fit = _fit_data(config, digits)
    assert fit["x"] is digits.x_train and fit["batch_size"] == 64
    assert fit["validation_data"][0] is digits.x_val and fit["validation_data"][1] is digits.y_val


def test_jit_compile_trains(digits: Dataset):
    result = train(_config(epochs=1, jit_compile=True), digits)
    assert math.isfinite(result.value)


def test_mixed_precision_needs_a_float32_output(digits: Dataset):
    config = _config(model="tests.experiments.builders:half_output", model_options={}, mixed_precision=True)
    with pytest.raises(ModelError, match="outputs float16 under train.mixed_precision; expected a float32"):
        train(config, digits)
    assert keras.config.dtype_policy().name == "float32"


class RunOutOfMemory(keras.callbacks.Callback):
    """Fails the second call into the backend (with steps_per_execution, one call runs many steps)."""

    calls = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.calls += 1
        if self.calls == 2:
            raise MemoryError("out of memory in batch 2")


def test_a_failing_fit_raises_and_the_next_trial_trains(digits: Dataset):
    with pytest.raises(MemoryError, match="batch 2"):
        train(_config(epochs=2, mixed_precision=True), digits, [RunOutOfMemory()])
    assert keras.config.dtype_policy().name == "float32"
    assert math.isfinite(train(_config(epochs=1), digits).value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer": "adamw"}, "optimizer='adamw': expected one of sgd, momentum"),
        ({"learning_rate": 0.0}, "learning_rate=0.0: expected a number > 0"),
        ({"momentum": 0.9}, "momentum=0.9: expected None for optimizer 'adam'"),
        (
            {"optimizer": "momentum", "momentum": 1.5},
            r"momentum=1.5: expected a number in \[0, 1\]",
        ),
        ({"dropout": 1.0}, r"dropout=1.0: expected a number in \[0, 1\)"),
        ({"patience": -1}, "patience=-1"),
        ({"epochs": 0}, "epochs=0: expected an integer >= 1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"initial_epoch": 3}, r"initial_epoch=3: expected an integer in \[0, epochs=3\)"),
        ({"monitor": "val_acc"}, "monitor='val_acc': expected one of loss, accuracy"),
        ({"objective": "f1"}, "objective='f1'"),
        ({"checkpoint_path": "best.h5"}, "checkpoint_path='best.h5': expected a path ending in"),
        ({"jit_compile": "xla"}, "jit_compile='xla'"),
    ],
)
def test_config_errors_name_the_field(overrides: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        _config(**overrides)
