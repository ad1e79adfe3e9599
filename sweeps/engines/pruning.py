"""Pruning as a Keras callback: report the objective each epoch, stop the fit when told.

Unlike optuna-integration's callback, this one does not raise inside `model.fit`: it
stops training cleanly so the trial's epochs so far are recorded like any other trial's,
and the engine marks the trial pruned afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import optuna


class PruningCallback(keras.callbacks.Callback):
    """`trial.report(objective, epoch)` after every epoch; `stop_training` when pruned."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self._trial = trial
        self._metric = metric
        self.pruned_epoch: int | None = None

    @property
    def pruned(self) -> bool:
        return self.pruned_epoch is not None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self._metric)
        if value is None or not math.isfinite(float(value)):
            return  # NaN is the trial's failure, handled by TerminateOnNaN, not a pruning signal
        self._trial.report(float(value), step=epoch + 1)
        if self._trial.should_prune():
            self.pruned_epoch = epoch + 1
            self.model.stop_training = True
