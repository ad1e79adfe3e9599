"""What a pack predicts and how each branch is scored: its head, per-branch loss and metrics.

A pack's output is ``(batch, K, ...)``: each branch's prediction, side by side. The loss Keras
minimizes is the sum of the branches' losses (each the mean over the batch, as a solo trial's),
so each branch's gradients are exactly its own; the per-branch loss and metrics are kept as
K-vectors by `PackMetrics` and read back per branch under the plain names (``loss``,
``accuracy``). A head is the one place that knows the task: another task (binary, regression)
plugs in as another `Head` with its own output layer, loss and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import keras
from keras import ops

from experiments.fused.layers import StackedDense

__all__ = ["ClassificationHead", "Head", "PackLoss", "PackMetrics", "head_for"]


class Head(Protocol):
    """The task-specific end of a pack."""

    metric_names: tuple[str, ...]  # besides "loss", what each branch logs per epoch

    def output_layer(self, branches: int) -> keras.layers.Layer:
        """The fused last layer of a stacked group, before `finish`: ``(K, batch, units)`` ->
        ``(batch, K, ...)``."""
        ...

    def before_finish(self, output: Any) -> Any:
        """A separate branch's own output ``(batch, ...)`` taken back to what `finish` takes."""
        ...

    def finish(self, outputs: Any) -> Any:
        """The pack's prediction from its branches' joined ``(batch, K, ...)`` pre-activations."""
        ...

    def losses(self, y_true: Any, y_pred: Any) -> Any:
        """Per-sample, per-branch losses ``(batch, K)`` of a ``(batch, K, ...)`` prediction."""
        ...

    def metrics(self, y_true: Any, y_pred: Any) -> dict[str, Any]:
        """Per-sample, per-branch values ``(batch, K)`` of each metric in `metric_names`."""
        ...


@dataclass(frozen=True)
class ClassificationHead:
    """Softmax over the classes, sparse categorical cross-entropy and accuracy: what
    `experiments.training.compile_model` compiles a solo trial with.

    The softmax comes last, after the branches are joined, so that the cross-entropy finds the
    logits behind it as it does behind a solo model's softmax layer: from probabilities it
    would clip them at 1e-7 and lose the gradient of a branch that is confidently wrong.
    """

    num_classes: int
    metric_names: tuple[str, ...] = ("accuracy",)

    def output_layer(self, branches: int) -> keras.layers.Layer:
        return StackedDense(branches, self.num_classes, batch_major=True, dtype="float32", name="output")

    def before_finish(self, output: Any) -> Any:
        """The logits of a softmax output: on TensorFlow, Keras's softmax keeps them on the
        tensor (and its cross-entropy uses them); elsewhere the clipped log-probabilities."""
        logits = getattr(output, "_keras_logits", None)
        if logits is not None:
            return logits
        return ops.log(ops.clip(output, keras.config.epsilon(), 1.0))

    def finish(self, outputs: Any) -> Any:
        """Softmax last, as a solo model's output layer: Keras's cross-entropy then reads the
        logits (TensorFlow's stable path) exactly as it does for a solo trial."""
        return keras.activations.softmax(outputs, axis=-1)

    def _labels(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1, 1))
        return ops.broadcast_to(labels, ops.shape(y_pred)[:2])

    def losses(self, y_true: Any, y_pred: Any) -> Any:
        return keras.losses.sparse_categorical_crossentropy(self._labels(y_true, y_pred), y_pred)

    def metrics(self, y_true: Any, y_pred: Any) -> dict[str, Any]:
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        correct = ops.cast(ops.equal(predicted, self._labels(y_true, y_pred)), "float32")
        return {"accuracy": correct}


def head_for(num_classes: int) -> Head:
    """The head of a classification pack (the one task `experiments.training` trains today)."""
    return ClassificationHead(num_classes)


class PackLoss(keras.losses.Loss):
    """The sum over branches of each branch's loss; Keras averages it over the batch."""

    def __init__(self, head: Head, **kwargs: Any) -> None:
        super().__init__(name="pack_loss", **kwargs)
        self.head = head

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return ops.sum(self.head.losses(y_true, y_pred), axis=1)


class PackMetrics(keras.metrics.Metric):
    """Per-branch running means of the loss and the head's metrics, as K-vectors.

    `result()` gives ``{"pack_loss": (K,), "pack_<metric>": (K,)}``, which Keras logs as
    ``pack_loss`` / ``val_pack_loss`` and so on; `branch_logs` turns them into each branch's
    plain-named logs.
    """

    def __init__(self, head: Head, branches: int, **kwargs: Any) -> None:
        super().__init__(name="pack_metrics", **kwargs)
        self.head = head
        self.names = ("loss", *head.metric_names)
        self.totals = self.add_variable(shape=(len(self.names), branches), initializer="zeros", name="totals")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        values = [self.head.losses(y_true, y_pred), *self.head.metrics(y_true, y_pred).values()]
        sums = ops.stack([ops.sum(ops.cast(v, "float32"), axis=0) for v in values])
        self.totals.assign_add(sums)
        self.count.assign_add(ops.cast(ops.shape(y_pred)[0], "float32"))

    def result(self) -> dict[str, Any]:
        means = ops.divide(self.totals, ops.maximum(self.count, 1.0))
        return {f"pack_{name}": means[i] for i, name in enumerate(self.names)}

    def reset_state(self) -> None:
        self.totals.assign(ops.zeros(self.totals.shape))
        self.count.assign(0.0)


def branch_logs(logs: dict[str, Any], names: Sequence[str]) -> list[dict[str, float]]:
    """Split a pack's epoch logs into each branch's logs under the plain metric names."""
    import numpy as np

    columns = {}
    for prefix in ("", "val_"):
        for name in names:
            value = logs.get(f"{prefix}pack_{name}")
            if value is not None:
                columns[f"{prefix}{name}"] = np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")
    count = len(next(iter(columns.values()))) if columns else 0
    return [{key: float(values[k]) for key, values in columns.items()} for k in range(count)]
