"""The Keras callback that streams per-epoch metrics to a trial's MLflow run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import keras
from mlflow.entities import Metric

if TYPE_CHECKING:
    from tracking.runs import Faults


class EpochLogger(keras.callbacks.Callback):
    """One batched, asynchronous MLflow write per epoch, with step = the epoch Keras prints.

    Writes are queued (`synchronous=False`) so training never waits on the store;
    `flush()` waits for them before the run is closed. A failed write is kept in
    `faults`, never raised into `model.fit`.
    """

    def __init__(self, client: Any, run_id: str, faults: Faults) -> None:
        super().__init__()
        self._client = client
        self._run_id = run_id
        self._faults = faults
        self._pending: list[Any] = []
        self.last_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.last_epoch = epoch + 1
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), now, epoch + 1)
            for key, value in (logs or {}).items()
            if isinstance(value, int | float) or hasattr(value, "__float__")
        ]
        if not metrics:
            return
        try:
            self._pending.append(
                self._client.log_batch(self._run_id, metrics=metrics, synchronous=False)
            )
        except Exception as exc:  # a tracker's failure must not kill training
            self._faults.add(f"run {self._run_id} epoch {epoch + 1} metrics", exc)

    def flush(self) -> None:
        """Wait for the queued writes; record the ones that failed."""
        for op in self._pending:
            try:
                if op is not None:
                    op.wait()
            except Exception as exc:
                self._faults.add(f"run {self._run_id} per-epoch metrics", exc)
        self._pending.clear()

