"""What a pack can train: the one head it has (`experiments.fused.head`) scores classification
with the task's default loss and metrics. Keras-free, so a spec is checked before any backend
is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["unfusable"]

_LOSSES = (None, "sparse_categorical_crossentropy")
_METRICS = (None, ("accuracy",))


def unfusable(task: str, loss: str | None, metrics: Sequence[str] | None) -> str | None:
    """None when a pack scores (task, loss, metrics) exactly as a solo trial's compile step
    does; otherwise which of them it cannot, e.g. ``"task binary"``."""
    if task != "classification":
        return f"task {task}"
    if loss not in _LOSSES:
        return f"train.loss {loss!r}"
    if metrics is not None and tuple(metrics) not in _METRICS:
        return f"train.metrics {list(metrics)!r}"
    return None
