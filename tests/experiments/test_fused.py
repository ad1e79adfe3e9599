"""`train_pack`: K configs trained as one model give each config's solo result.

Real Keras training on the small digits split; every fused result is checked against the same
config trained alone by `experiments.train`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from experiments.data import Dataset
from experiments.errors import ConfigError, ModelError
from experiments.fused import pack as pack_module
from experiments.fused import train_pack
from experiments.fused.model import PackPlan
from experiments.fused.plan import GroupPlan
from experiments.training import TrainConfig, TrialResult, train

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam")
# Learning rates at which each optimizer trains steadily (Keras's defaults, SGD's a little up).
RATES = {"sgd": 0.05, "momentum": 0.01, "nesterov": 0.01, "rmsprop": 0.001, "adagrad": 0.01, "adam": 0.001}


def _config(**overrides) -> TrainConfig:
    base = {
        "model": "mlp",
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "epochs": 3,
        "model_options": {"units": 32},
    }
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def noisy_val(digits: Dataset) -> Dataset:
    """Shuffled validation labels: val_loss rises as the model learns, so patience decides."""
    rng = np.random.default_rng(1)
    return dataclasses.replace(digits, y_val=rng.permutation(digits.y_val))


# On TensorFlow a pack of MLPs without dropout steps under XLA (its "auto"; a solo trial on a CPU
# does not), so a branch agrees with its solo trial to rounding: the validation loss within about
# 1e-5 relative, the accuracies equal on these configs. On PyTorch the batched matmuls
# and Keras's fused `torch._foreach_*` updates round differently, so a branch agrees to
# rounding, which a model guessing near chance (the shuffled labels below) turns into a few
# of the 100 validation images; the six-optimizer check holds 0.005 on both.
TOLERANCE, LOSS_RTOL = (0.005, 1e-3) if keras.backend.backend() == "tensorflow" else (0.03, 1e-2)


def _close(solo: TrialResult, fused: TrialResult, accuracy: float = TOLERANCE) -> None:
    assert fused.epochs == solo.epochs
    assert (fused.best_epoch, fused.stopped_epoch, fused.stop_reason) == (
        solo.best_epoch,
        solo.stopped_epoch,
        solo.stop_reason,
    )
    for key in ("val_accuracy", "accuracy"):
        assert np.max(np.abs(np.subtract(fused.history[key], solo.history[key]))) <= accuracy, key
    np.testing.assert_allclose(fused.history["val_loss"], solo.history["val_loss"], rtol=LOSS_RTOL, atol=1e-3)


def test_six_optimizers_fused_equal_solo(digits: Dataset, tmp_path: Path) -> None:
    """The issue's equality check: six optimizers, dropout 0, one seed: per-epoch validation
    accuracy within 0.005 of the solo run's (on TensorFlow it is equal here)."""
    configs = [_config(optimizer=o, learning_rate=RATES[o]) for o in OPTIMIZERS]
    fused = train_pack(configs, digits)
    for config, result in zip(configs, fused, strict=True):
        assert isinstance(result, TrialResult)
        _close(train(config, digits), result, accuracy=0.005)
        assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_each_branch_stops_early_at_its_own_epoch_and_keeps_its_best(
    noisy_val: Dataset, tmp_path: Path
) -> None:
    configs = [
        _config(optimizer="sgd", learning_rate=0.05, patience=0, epochs=8),
        _config(optimizer="adam", patience=2, epochs=8, checkpoint_path=str(tmp_path / "b1.keras")),
        _config(optimizer="rmsprop", patience=8, epochs=8),
    ]
    ended: list[tuple[int, float]] = []
    fused = train_pack(configs, noisy_val, on_branch_end=lambda i, r: ended.append((i, time.perf_counter())))
    solos = [train(c, noisy_val) for c in configs]
    for solo, result in zip(solos, fused, strict=True):
        _close(solo, result)
    assert [r.stop_reason for r in fused] == ["early_stopping", "early_stopping", "completed"]
    assert fused[0].epochs_run < fused[1].epochs_run < fused[2].epochs_run == 8
    assert [i for i, _ in ended] == [0, 1, 2]  # each branch is handed back as it ends
    # The checkpoint is branch 1 alone, at its best epoch: a solo model keras loads.
    model = keras.models.load_model(tmp_path / "b1.keras")
    assert [layer.name for layer in model.layers][-2:] == ["hidden", "output"]
    scores = model.evaluate(noisy_val.x_val, noisy_val.y_val, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(fused[1].best_value, abs=1e-6)
    assert scores["loss"] == pytest.approx(fused[1].best_monitor, rel=1e-5)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == fused[1].best_epoch * 10


def test_the_checkpoint_equals_the_solo_trials_checkpoint(digits: Dataset, tmp_path: Path) -> None:
    """Weights and optimizer state of the best epoch, as the solo trial's ModelCheckpoint wrote them."""
    solo_config = _config(
        optimizer="momentum", learning_rate=0.01, checkpoint_path=str(tmp_path / "solo.keras")
    )
    fused_config = dataclasses.replace(solo_config, checkpoint_path=str(tmp_path / "fused.keras"))
    train(solo_config, digits)
    other = _config(optimizer="adagrad", learning_rate=0.01)
    train_pack([fused_config, other], digits)
    solo, fused = (
        keras.models.load_model(solo_config.checkpoint_path),
        keras.models.load_model(fused_config.checkpoint_path),
    )
    for a, b in zip(solo.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert fused.optimizer.get_config()["momentum"] == pytest.approx(0.9)
    solo_slots = [keras.ops.convert_to_numpy(v) for v in solo.optimizer.variables]
    fused_slots = [keras.ops.convert_to_numpy(v) for v in fused.optimizer.variables]
    for a, b in zip(solo_slots, fused_slots, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_branches_of_one_rule_each_save_their_own_optimizer(digits: Dataset, tmp_path: Path) -> None:
    """Checkpoints of branches that share an update rule (saved through one optimizer per rule)
    each hold their own learning rate, momentum and slots, as their solo trials' do."""
    configs = [
        _config(optimizer="momentum", learning_rate=0.01),
        _config(optimizer="momentum", learning_rate=0.05, momentum=0.5),
        _config(optimizer="adam", learning_rate=1e-3),
        _config(optimizer="adam", learning_rate=3e-3),
    ]
    fused = [
        dataclasses.replace(c, checkpoint_path=str(tmp_path / f"fused{i}.keras"))
        for i, c in enumerate(configs)
    ]
    solo = [
        dataclasses.replace(c, checkpoint_path=str(tmp_path / f"solo{i}.keras"))
        for i, c in enumerate(configs)
    ]
    train_pack(fused, digits)
    for f, s in zip(fused, solo, strict=True):
        train(s, digits)
        a, b = keras.models.load_model(s.checkpoint_path), keras.models.load_model(f.checkpoint_path)
        assert b.optimizer.get_config()["learning_rate"] == pytest.approx(f.learning_rate)
        if f.optimizer == "momentum":
            assert b.optimizer.get_config()["momentum"] == pytest.approx(f.momentum or 0.9)
        assert len(a.optimizer.variables) == len(b.optimizer.variables)
        for x, y in zip(a.optimizer.variables, b.optimizer.variables, strict=True):
            np.testing.assert_allclose(
                keras.ops.convert_to_numpy(x), keras.ops.convert_to_numpy(y), atol=1e-6
            )


class PoisonBranch(keras.callbacks.Callback):
    """Its branch's weights become NaN as an epoch begins (the view is the branch's model)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            self.model.set_weights([w * math.nan for w in self.model.get_weights()])


class StopAt(keras.callbacks.Callback):
    """What a pruner does: ask its branch to stop, at the end of an epoch."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            self.model.stop_training = True


def test_a_nan_branch_and_a_stopped_branch_leave_the_others_as_solo(digits: Dataset, tmp_path: Path) -> None:
    configs = [
        _config(optimizer="sgd", learning_rate=0.05, epochs=4, patience=4),
        _config(optimizer="adam", epochs=4, patience=4, checkpoint_path=str(tmp_path / "nan.keras")),
        _config(optimizer="rmsprop", epochs=4, patience=4),
        _config(optimizer="nesterov", learning_rate=0.01, epochs=4, patience=4),
    ]
    fused = train_pack(configs, digits, [[], [PoisonBranch(2)], [StopAt(1)], []])
    healthy, nan, stopped = fused[0], fused[1], fused[2]
    assert nan.stop_reason == "nan_loss" and nan.epochs_run == 3 and math.isnan(nan.history["loss"][-1])
    assert math.isnan(nan.history["val_loss"][-1])  # a diverged branch is not validated
    assert nan.best_epoch in (1, 2) and nan.checkpoint_path is not None  # its best finite epoch
    assert stopped.stop_reason == "stopped" and stopped.epochs_run == 2 and stopped.stopped_epoch == 0
    for i in (0, 3):
        _close(train(configs[i], digits), fused[i])
    _close(train(configs[2], digits, [StopAt(1)]), stopped)
    model = keras.models.load_model(nan.checkpoint_path)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert healthy.epochs_run == 4


def test_different_widths_and_a_users_builder_fuse_exactly(digits: Dataset) -> None:
    """Narrower MLPs are zero-padded into the widest (exact); a user's builder is a separate branch."""
    configs = [
        _config(optimizer="adam", model_options={"units": 32}),
        _config(optimizer="sgd", learning_rate=0.05, model_options={"units": 28}),
        _config(optimizer="rmsprop", model_options={"units": 30}),
        _config(
            model="tests.experiments.builders:tiny",
            optimizer="momentum",
            learning_rate=0.01,
            model_options={},
        ),
    ]
    fused = train_pack(configs, digits)
    for config, result in zip(configs, fused, strict=True):
        _close(train(config, digits), result)


def test_a_rebuilt_pack_carries_weights_slots_and_steps(
    noisy_val: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilding without ended branches changes nothing for those that go on (Adam's bias
    correction, momentum, the data order)."""
    builds: list[int] = []
    original = pack_module._PackTrainer._build

    def counted(self):
        builds.append(len(self.live))
        return original(self)

    monkeypatch.setattr(pack_module._PackTrainer, "_build", counted)
    monkeypatch.setattr(pack_module, "REBUILD_MARGIN", -1.0)  # rebuild whenever a branch ends
    configs = [
        _config(optimizer="sgd", learning_rate=0.05, patience=0, epochs=6),
        _config(optimizer="momentum", learning_rate=0.01, patience=1, epochs=6),
        _config(optimizer="adam", patience=6, epochs=6),
    ]
    fused = train_pack(configs, noisy_val)
    assert builds[0] == 3 and len(builds) >= 2 and builds[-1] == 1
    for config, result in zip(configs, fused, strict=True):
        _close(train(config, noisy_val), result)


def test_the_next_pack_of_the_same_layout_reuses_the_compiled_step(digits: Dataset) -> None:
    first = [_config(optimizer=o, learning_rate=RATES[o], epochs=2) for o in ("sgd", "adam")]
    second = [_config(optimizer=o, learning_rate=RATES[o], epochs=2) for o in ("adam", "sgd")]
    train_pack(first, digits)
    (compiled,) = pack_module._compiled.values()
    fused = train_pack(second, digits)
    assert list(pack_module._compiled.values()) == [compiled]
    for config, result in zip(second, fused, strict=True):
        _close(train(config, digits), result)


def test_a_reused_pack_draws_its_dropout_noise_as_a_new_one(digits: Dataset) -> None:
    """The same pack twice in one process, the second in the first's compiled step: the same
    results, as a solo trial run twice gives (the noise restarts from the seed)."""
    configs = [_config(optimizer=o, learning_rate=RATES[o], dropout=0.3, epochs=2) for o in ("sgd", "adam")]
    first = train_pack(configs, digits)
    compiled = list(pack_module._compiled.values())
    again = train_pack(configs, digits)
    assert list(pack_module._compiled.values()) == compiled
    for a, b in zip(first, again, strict=True):
        assert a.history == b.history


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="XLA by default only on TensorFlow")
def test_a_pack_of_mlps_steps_under_xla_unless_told_otherwise(digits: Dataset) -> None:
    """A jit_compile of "auto" is XLA for stacked MLPs (Keras's "auto" is off on a CPU); an
    explicit choice holds, and dropout, a convolution or a separate branch keep Keras's "auto"."""
    configs = [_config(optimizer=o, learning_rate=RATES[o], epochs=1) for o in ("sgd", "adam")]
    train_pack(configs, digits)
    (compiled,) = pack_module._compiled.values()
    assert compiled.model.jit_compile is True
    train_pack([dataclasses.replace(c, jit_compile=False) for c in configs], digits)
    (compiled,) = pack_module._compiled.values()
    assert compiled.model.jit_compile is False

    def plan(*families: str, separate: tuple[int, ...] = ()) -> PackPlan:
        groups = [GroupPlan(f, (i,), (), ()) for i, f in enumerate(families)]
        return PackPlan(groups, list(separate))

    choose = pack_module._pack_jit_compile
    assert choose("auto", plan("mlp"), dropout=False) is True
    assert choose("auto", plan("mlp"), dropout=True) == "auto"
    assert choose("auto", plan("mlp", "cnn"), dropout=False) == "auto"
    assert choose("auto", plan("mlp", separate=(1,)), dropout=False) == "auto"
    assert choose(False, plan("mlp"), dropout=False) is False


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="only TensorFlow keeps a traced step")
def test_a_pack_told_the_sweeps_optimizers_takes_any_of_them_without_a_new_trace(digits: Dataset) -> None:
    first = [_config(optimizer=o, learning_rate=RATES[o], epochs=2) for o in ("sgd", "momentum")]
    second = [_config(optimizer=o, learning_rate=RATES[o], epochs=2) for o in ("adam", "rmsprop")]
    train_pack(first, digits, rules=OPTIMIZERS)
    (compiled,) = pack_module._compiled.values()
    traced = compiled.model.train_function
    fused = train_pack(second, digits, rules=OPTIMIZERS)
    assert list(pack_module._compiled.values()) == [compiled] and compiled.model.train_function is traced
    for config, result in zip(second, fused, strict=True):
        _close(train(config, digits), result)


def test_train_seconds_share_the_packs_time(digits: Dataset) -> None:
    configs = [_config(optimizer=o, learning_rate=RATES[o], epochs=2) for o in ("sgd", "adam", "adagrad")]
    start = time.perf_counter()
    fused = train_pack(configs, digits)
    elapsed = time.perf_counter() - start
    total = sum(r.train_seconds for r in fused)
    assert 0.8 * elapsed <= total <= elapsed


def test_a_branch_that_cannot_be_built_fails_alone(digits: Dataset) -> None:
    configs = [_config(), _config(model_options={"units": 32, "filters": [8]})]
    fused = train_pack(configs, digits)
    assert isinstance(fused[0], TrialResult) and math.isfinite(fused[0].value)
    assert isinstance(fused[1], ModelError) and "no option 'filters'" in str(fused[1])


def test_a_pack_shares_its_data_pipeline(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="a pack's trials must share batch_size"):
        train_pack([_config(batch_size=32), _config(batch_size=64)], digits)


@pytest.mark.slow
def test_cnn_branches_fused_equal_solo(digits: Dataset) -> None:
    options = {"filters": [8, 16], "units": 16}
    configs = [
        _config(model="cnn", optimizer=o, learning_rate=RATES[o], model_options=options) for o in OPTIMIZERS
    ]
    configs[1] = dataclasses.replace(configs[1], model_options={"filters": [6, 16], "units": 16})  # padded
    fused = train_pack(configs, digits)
    for config, result in zip(configs, fused, strict=True):
        _close(train(config, digits), result)


def test_a_pack_refuses_what_its_head_cannot_score(digits: Dataset) -> None:
    """Never trained with the wrong loss: another loss or metrics is refused before any build."""
    with pytest.raises(ConfigError, match="got train.loss 'categorical_hinge'"):
        train_pack([_config(), _config(loss="categorical_hinge")], digits)
    with pytest.raises(ConfigError, match=r"got train.metrics \['accuracy', 'top_3_accuracy'\]"):
        train_pack([_config(metrics=("accuracy", "top_3_accuracy")), _config()], digits)
