"""The Keras callback that streams per-epoch metrics to a trial's MLflow run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import keras
from mlflow.entities import Metric

if TYPE_CHECKING:
    from tracking.runs import SweepTracker


class EpochLogger(keras.callbacks.Callback):
    """Each epoch's metrics to the run, with step = the epoch number Keras prints.

    The write is queued on the tracker's writer thread (`SweepTracker.stream`: epochs queued
    while it is busy go as one batch), so `model.fit` never waits on the store, and a failed
    write is kept in the tracker's faults instead of stopping training.
    """

    def __init__(self, tracker: SweepTracker, run_id: str) -> None:
        super().__init__()
        self._tracker = tracker
        self._run_id = run_id

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, epoch + 1) for key, value in (logs or {}).items()]
        if metrics:
            self._tracker.stream(self._run_id, metrics)
