"""``train(config, data, callbacks)``: one trial, plain data in and plain data out.

Compiles and fits a model with EarlyStopping (restoring the best weights), an optional
best-only checkpoint and TerminateOnNaN, and reports which epoch was best and why
training ended. The loss and metrics come from the task (`experiments.metrics`); tracking
and pruning come in as the caller's callbacks.

Only ``keras.*`` APIs are used, so the same job runs on TensorFlow, JAX or PyTorch
(``KERAS_BACKEND``). On TensorFlow the data goes through a tf.data pipeline (shuffle,
batch, prefetch; validation batches cached), which the backend check keeps from being
imported elsewhere; JAX and PyTorch get the arrays. Streams (`experiments.streams`) go to
``fit`` as they are.

Example:
    >>> from experiments import load_dataset
    >>> data = load_dataset("digits", train_size=500)
    >>> result = train(TrainConfig(model="mlp", optimizer="adam", learning_rate=1e-3), data)
    >>> result.best_epoch, result.value  # doctest: +SKIP
    (10, 0.95)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import keras

from experiments.backends import new_session, release_memory
from experiments.data import Data, StreamedDataset
from experiments.dispatch import is_steps_setting, resolve_steps_per_execution
from experiments.errors import ConfigError, ModelError
from experiments.keras_fixes import cache_saving_skipsets
from experiments.metrics import check_metrics, compile_args, logged_metrics
from experiments.models import build_model
from experiments.monitoring import Mode, best_index, metric_mode
from experiments.optimizers import make_optimizer
from experiments.registry import MOMENTUM_OPTIMIZERS, OPTIMIZERS
from experiments.tasks import TASK_INFO, TASKS

__all__ = ["StopReason", "TrainConfig", "TrialResult", "compile_model", "result_from_history", "train"]

StopReason = Literal["completed", "early_stopping", "nan_loss", "stopped"]

cache_saving_skipsets()  # every trial's best-only checkpoint is a .keras save


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides one trial's training, as plain values.

    ``monitor`` drives EarlyStopping and the checkpoint (``monitor_mode``: "min"/"max", read
    from the name when None); ``objective`` is the metric read at the epoch they keep, the
    trial's value (default: the task's). ``task``, ``loss`` and ``metrics`` decide the head and
    the compile step (None: the task's defaults). ``mixed_precision`` builds the model
    under the ``mixed_float16`` policy (the output layer must compute in float32);
    ``jit_compile`` is passed to ``compile``: XLA on TensorFlow and JAX, ``torch.compile``
    on PyTorch (whose compile time, tens of seconds on a CPU, each trial pays again).
    ``steps_per_execution`` ("auto" or N) is how many steps Keras runs per call (see
    `experiments.dispatch`).
    """

    model: str
    optimizer: str
    learning_rate: float
    dropout: float = 0.0
    patience: int = 2
    momentum: float | None = None
    epochs: int = 10
    batch_size: int = 32
    monitor: str = "val_loss"
    objective: str | None = None
    task: str = "classification"
    loss: str | None = None
    metrics: tuple[str, ...] | None = None
    monitor_mode: Mode | None = None
    seed: int = 0
    model_options: Mapping[str, Any] = field(default_factory=dict)
    checkpoint_path: str | None = None
    initial_epoch: int = 0
    initial_weights: str | None = None
    mixed_precision: bool = False
    jit_compile: bool | str = "auto"
    steps_per_execution: int | str = "auto"
    verbose: int = 0

    def __post_init__(self) -> None:
        if self.task in TASKS and self.objective is None:
            object.__setattr__(self, "objective", TASK_INFO[self.task].objective)
        _check_config(self)

    @property
    def mode(self) -> Mode:
        """The monitored metric's direction, as EarlyStopping and the checkpoint compare it."""
        return self.monitor_mode or metric_mode(self.monitor)


@dataclass
class TrialResult:
    """What a trial produced; epochs are 1-based, as Keras prints them."""

    history: dict[str, list[float]]
    epochs: list[int]
    best_epoch: int
    stopped_epoch: int
    best_value: float
    best_monitor: float
    epochs_run: int
    train_seconds: float
    checkpoint_path: str | None
    stop_reason: StopReason

    @property
    def value(self) -> float:
        """The objective at the best epoch: what a sweep maximizes or minimizes."""
        return self.best_value


def train(config: TrainConfig, data: Data, callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrialResult:
    """Train ``config`` on ``data``; the caller's callbacks run after the built-in ones.

    The model ends with the weights of the best epoch (Keras 3's EarlyStopping restores
    them whether or not it stopped training), the same weights the checkpoint holds.
    A NaN/inf loss ends training at once with ``stop_reason="nan_loss"``; when no epoch
    has a finite monitored value, ``best_epoch`` is 0, the values are NaN and no
    checkpoint is kept.

    Raises:
        ConfigError, ModelError: a config or model that cannot train as asked (a task that is
            not the data's, a model that does not log the monitored or objective metric).
        Exception: whatever ``fit`` raised, after the trial's memory was released;
            `experiments.backends.failure_reason` tells an out-of-memory error apart.
    """
    if config.task != data.task:
        raise ConfigError(f"TrainConfig.task={config.task!r} but the data are for task {data.task!r}")
    model = _build(config, data)
    mode = config.mode
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=config.monitor, patience=config.patience, mode=mode, restore_best_weights=True
    )
    builtin: list[keras.callbacks.Callback] = [early_stopping]
    if config.checkpoint_path is not None:
        builtin.append(
            keras.callbacks.ModelCheckpoint(
                config.checkpoint_path, monitor=config.monitor, mode=mode, save_best_only=True
            )
        )
    builtin.append(keras.callbacks.TerminateOnNaN())

    start = time.perf_counter()
    try:
        fit = model.fit(
            **_fit_data(config, data),
            epochs=config.epochs,
            initial_epoch=config.initial_epoch,
            callbacks=[*builtin, *callbacks],
            verbose=config.verbose,
        )
    except Exception:
        # Out of memory (or any failure) must not starve the next trial in this process.
        del model, builtin, early_stopping
        release_memory()
        raise
    train_seconds = time.perf_counter() - start

    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    for name in (config.monitor, config.objective):
        if history.get("loss") and name not in history:
            raise ConfigError(
                f"the model logged {', '.join(sorted(history))}, not {name!r} (a metric of your own "
                "logs under its function's name)"
            )
    # Keras records stopped_epoch 0-based and never fires at epoch 0, so 0 means "never".
    fired = early_stopping.stopped_epoch > 0
    return result_from_history(
        config,
        history,
        stopped_epoch=early_stopping.stopped_epoch + 1 if fired else 0,
        stop_requested=bool(model.stop_training),
        train_seconds=train_seconds,
    )


def _fit_data(config: TrainConfig, data: Data) -> dict[str, Any]:
    """``fit``'s data arguments: a tf.data pipeline on TensorFlow, the arrays elsewhere.

    On TensorFlow the training arrays are shuffled (seeded, reshuffled every epoch),
    batched and prefetched by tf.data, and the validation batches are cached; measured
    on the CPU this is faster than Keras's own array pipeline for small models (see
    bench/README.md). JAX and PyTorch take the arrays as they are, and streams go as they
    are to every backend (their own batches: ``batch_size`` does not apply).
    """
    if isinstance(data, StreamedDataset):
        return {"x": data.train, "validation_data": data.val}
    if keras.backend.backend() != "tensorflow":
        return {
            "x": data.x_train,
            "y": data.y_train,
            "batch_size": config.batch_size,
            "validation_data": (data.x_val, data.y_val),
        }
    import tensorflow as tf  # only where TensorFlow is the backend

    train_set = (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(len(data.y_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_set = (
        tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val))
        .batch(config.batch_size)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return {"x": train_set, "validation_data": val_set, "shuffle": False}


def _build(config: TrainConfig, data: Data) -> keras.Model:
    """A compiled model, seeded; the global dtype policy is left as it was found."""
    # clear_session also forgets the seed set_random_seed stores, so it goes first.
    new_session()
    with precision_policy(config.mixed_precision):
        model = build_trial_model(config, data)
        compile_model(model, config, steps_per_execution=_steps_per_execution(config, data))
    return model


@contextmanager
def precision_policy(mixed_precision: bool) -> Iterator[None]:
    """The dtype policy a trial is built and compiled under (Keras wraps the optimizer for
    loss scaling at compile time); the global policy is restored after."""
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def build_trial_model(config: TrainConfig, data: Data) -> keras.Model:
    """The trial's model, uncompiled, seeded so that its initial weights are the same wherever
    it is built (alone, or as a branch of a fused pack), with its initial weights loaded.

    Raises ConfigError for an ``initial_weights`` file that does not exist.
    """
    if config.initial_weights is not None and not os.path.exists(config.initial_weights):
        raise ConfigError(
            f"initial_weights file {config.initial_weights!r} does not exist; expected "
            "a .keras or .weights.h5 file written by an earlier trial"
        )
    keras.utils.set_random_seed(config.seed)
    model = build_model(
        config.model,
        data.input_shape,
        data.num_classes,
        dropout=config.dropout,
        task=data.task,
        output_shape=data.output_shape,
        **dict(config.model_options),
    )
    if config.mixed_precision:
        _check_float32_output(config.model, model)
    if config.initial_weights is not None:
        model.load_weights(config.initial_weights)
    return model


def compile_model(
    model: keras.Model,
    config: TrainConfig,
    *,
    steps_per_execution: int = 1,
    optimizer: keras.optimizers.Optimizer | None = None,
) -> None:
    """Compile one trial's model: its optimizer (a fresh one unless given), and the task's (or
    the spec's) loss and metrics (fused checkpoints use it too)."""
    model.compile(
        optimizer=optimizer or make_optimizer(config.optimizer, config.learning_rate, config.momentum),
        **compile_args(config.task, config.loss, config.metrics),
        jit_compile=config.jit_compile,
        steps_per_execution=steps_per_execution,
    )


def _steps_per_execution(config: TrainConfig, data: Data) -> int:
    """A stream's length is not known ahead: it gets the "auto" bound alone."""
    n_samples = None if isinstance(data, StreamedDataset) else len(data.y_train)
    return resolve_steps_per_execution(
        config.steps_per_execution, n_samples=n_samples, batch_size=config.batch_size
    )


def _check_float32_output(name: str, model: keras.Model) -> None:
    """Under mixed_float16 the softmax and the loss must stay in float32, or they overflow."""
    dtypes = [str(getattr(out, "dtype", "float32")) for out in getattr(model, "outputs", None) or []]
    if any(dtype != "float32" for dtype in dtypes):
        raise ModelError(
            f"model {name!r} outputs {', '.join(dtypes)} under train.mixed_precision; expected a "
            "float32 output (give its last layer dtype='float32', as the built-in models do)"
        )


def result_from_history(
    config: TrainConfig,
    history: dict[str, list[float]],
    *,
    stopped_epoch: int,
    stop_requested: bool,
    train_seconds: float,
) -> TrialResult:
    """A trial's result from its per-epoch history, by the rules Keras's callbacks apply.

    ``stopped_epoch`` is EarlyStopping's 1-based epoch (0: it never fired); ``stop_requested``
    says a callback (a pruner) asked training to stop. A checkpoint that would hold a diverged
    model as "best" (no finite monitored value) is removed.
    """
    losses = history.get("loss", [])
    monitored = history.get(config.monitor, [])
    index = best_index(monitored, config.mode)
    checkpoint_path = config.checkpoint_path
    if index is None or not math.isfinite(monitored[index]):
        best_epoch, best_value, best_monitor = 0, math.nan, math.nan
        if checkpoint_path is not None and os.path.exists(checkpoint_path):
            os.remove(checkpoint_path)  # it would hold a diverged model as "best"
    else:
        best_epoch = config.initial_epoch + index + 1
        best_value, best_monitor = history[str(config.objective)][index], monitored[index]
    if checkpoint_path is not None and not os.path.exists(checkpoint_path):
        checkpoint_path = None

    if losses and not math.isfinite(losses[-1]):
        stop_reason: StopReason = "nan_loss"
    elif stopped_epoch > 0:
        stop_reason = "early_stopping"
    elif stop_requested:
        stop_reason = "stopped"
    else:
        stop_reason = "completed"

    return TrialResult(
        history=history,
        epochs=list(range(config.initial_epoch + 1, config.initial_epoch + len(losses) + 1)),
        best_epoch=best_epoch,
        stopped_epoch=stopped_epoch,
        best_value=best_value,
        best_monitor=best_monitor,
        epochs_run=len(losses),
        train_seconds=train_seconds,
        checkpoint_path=checkpoint_path,
        stop_reason=stop_reason,
    )


def _check_config(config: TrainConfig) -> None:
    """Reject values Keras would accept silently or fail on late, naming the field."""

    def fail(field_name: str, expected: str) -> None:
        value = getattr(config, field_name)
        raise ConfigError(f"TrainConfig.{field_name}={value!r}: expected {expected}")

    if config.optimizer not in OPTIMIZERS:
        fail("optimizer", f"one of {', '.join(OPTIMIZERS)}")
    if not config.learning_rate > 0:
        fail("learning_rate", "a number > 0")
    if config.momentum is not None:
        if config.optimizer not in MOMENTUM_OPTIMIZERS:
            fail(
                "momentum",
                f"None for optimizer {config.optimizer!r} (momentum applies to "
                f"{', '.join(MOMENTUM_OPTIMIZERS)})",
            )
        if not 0 <= config.momentum <= 1:
            fail("momentum", "a number in [0, 1]")
    if not 0 <= config.dropout < 1:
        fail("dropout", "a number in [0, 1)")
    if config.patience < 0:
        fail("patience", "an integer >= 0")
    if config.batch_size < 1:
        fail("batch_size", "an integer >= 1")
    if config.epochs < 1:
        fail("epochs", "an integer >= 1")
    if not 0 <= config.initial_epoch < config.epochs:
        fail("initial_epoch", f"an integer in [0, epochs={config.epochs})")
    if config.task not in TASKS:
        fail("task", f"one of {', '.join(TASKS)}")
    try:
        check_metrics(config.task, config.metrics)
    except ValueError as exc:
        fail("metrics", f"metrics that task {config.task} can log ({exc})")
    logged = logged_metrics(config.task, config.metrics)
    for name in ("monitor", "objective"):
        if getattr(config, name) not in logged:
            fail(name, f"one of {', '.join(logged)} (what the model compiled for task {config.task} logs)")
    if config.monitor_mode is None:
        try:
            metric_mode(config.monitor)
        except ValueError as exc:
            fail("monitor_mode", f"'min' or 'max' ({exc})")
    elif config.monitor_mode not in ("min", "max"):
        fail("monitor_mode", "'min', 'max' or None")
    if config.checkpoint_path is not None and not config.checkpoint_path.endswith(".keras"):
        fail("checkpoint_path", "a path ending in .keras (the whole model is saved)")
    if config.jit_compile not in (True, False, "auto"):
        fail("jit_compile", "True, False or 'auto'")
    if not is_steps_setting(config.steps_per_execution):
        fail("steps_per_execution", "'auto' or an integer >= 1")
