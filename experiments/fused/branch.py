"""One branch of a pack, followed epoch by epoch as a solo trial's callbacks follow it.

`Branch` applies Keras's EarlyStopping rule to its own logs (its patience, restore-best: the
weights of its best epoch are kept in memory), records its history under the plain metric
names, and runs the trial's own callbacks with a `BranchView` as their model. What a solo
trial's ModelCheckpoint writes at each improving epoch is written once, from the kept best
weights, when the branch ends: the same file, without saving a model per improving epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras

from experiments.fused.model import BranchState
from experiments.monitoring import metric_mode
from experiments.training import TrainConfig

__all__ = ["Branch", "BranchView"]


class BranchView:
    """The `model` a branch's callbacks see: `stop_training` (a pruner sets it), and the
    branch's own weights as a solo model's `get_weights`/`set_weights` lists."""

    def __init__(self, read: Callable[[], list[Any]], write: Callable[[list[Any]], None]) -> None:
        self.stop_training = False
        self._read = read
        self._write = write

    def get_weights(self) -> list[Any]:
        return self._read()

    def set_weights(self, weights: list[Any]) -> None:
        self._write(list(weights))


def _overrides(callback: keras.callbacks.Callback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(keras.callbacks.Callback, hook)


@dataclass
class Branch:
    """A branch's progress: history, early stopping, best snapshot, time, and how it ended."""

    index: int
    config: TrainConfig
    callbacks: Sequence[keras.callbacks.Callback]
    view: BranchView
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    wait: int = 0
    best: float | None = None
    best_epoch: int = 0
    stopped_epoch: int = 0  # 1-based epoch EarlyStopping stopped at; 0: never
    best_state: BranchState | None = None
    best_iterations: int = 0
    diverged: bool = False  # a NaN/inf loss was seen this epoch
    done: bool = False
    last_logs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = metric_mode(self.config.monitor)
        for callback in self.callbacks:
            callback.set_model(self.view)
        self.batch_callbacks = [
            c
            for c in self.callbacks
            if _overrides(c, "on_train_batch_begin") or _overrides(c, "on_train_batch_end")
        ]

    def call(self, hook: str, *args: Any) -> None:
        for callback in self.batch_callbacks if "batch" in hook else self.callbacks:
            getattr(callback, hook)(*args)

    def record(self, epoch: int, logs: dict[str, float]) -> bool:
        """Record the epoch and apply EarlyStopping; True when this epoch's weights are the
        branch's new best (the caller snapshots them before any callback runs)."""
        if not math.isfinite(logs.get("loss", 0.0)):
            self.diverged = True
        if self.diverged:  # a diverged model is not validated: its validation values are NaN
            logs = {k: (math.nan if k.startswith("val_") else v) for k, v in logs.items()}
        self.last_logs = logs
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        return self._early_stopping(epoch, logs)

    def after_epoch(self, epoch: int) -> None:
        """The trial's callbacks, then whether the branch ends here (NaN, stopped, last epoch)."""
        self.call("on_epoch_end", epoch, self.last_logs)
        if self.diverged or self.stopped_epoch or self.view.stop_training or epoch + 1 >= self.config.epochs:
            self.done = True

    def _early_stopping(self, epoch: int, logs: dict[str, float]) -> bool:
        """keras.callbacks.EarlyStopping.on_epoch_end, with min_delta 0 and no baseline."""
        current = logs.get(self.config.monitor)
        if current is None:
            return False
        self.wait += 1
        # The first value always counts (a NaN too, which then nothing improves on).
        if self.best is None or (current < self.best if self.mode == "min" else current > self.best):
            self.best, self.best_epoch, self.wait = current, epoch, 0
            return True
        if self.wait >= self.config.patience and epoch > 0:
            self.stopped_epoch = epoch + 1
        return False
