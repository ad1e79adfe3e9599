"""Which epoch counts as best: the rule Keras's EarlyStopping and ModelCheckpoint apply.

Both compare each epoch's monitored value to the best so far with a strict ``<`` (or
``>``), taking the first epoch unconditionally (keras/src/callbacks/monitor_callback.py).
A NaN compares false, so it never improves on anything, but a NaN first epoch is kept,
as Keras keeps it. Recomputing the rule from the history gives the epoch whose weights
the checkpoint holds without reading callback internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = ["Mode", "best_index", "metric_direction", "metric_mode"]

Mode = Literal["min", "max"]

# Scores (higher is better) and errors (lower is better), matched as the whole name or its end
# (`top_5_accuracy`, `mean_absolute_error`), with or without `val_`.
_MAX_LIKE = ("accuracy", "acc", "auc", "precision", "recall", "r2_score", "f1_score", "cosine_similarity")
_MIN_LIKE = (
    "loss",
    "error",
    "mse",
    "mae",
    "rmse",
    "mape",
    "msle",
    "crossentropy",
    "hinge",
    "poisson",
    "divergence",
)


def metric_mode(name: str) -> Mode:
    """The direction of a metric: "max" if accuracy-like, "min" if loss-like.

    Passed to the callbacks explicitly so that their direction never depends on how
    Keras's "auto" mode reads a model's metrics.

    Raises ValueError for a name that says neither (a metric of the user's own): its direction
    must then be given.
    """
    base = name.removeprefix("val_").lower()
    if any(base == m or base.endswith(f"_{m}") for m in _MAX_LIKE):
        return "max"
    if any(base == m or base.endswith(f"_{m}") for m in _MIN_LIKE):
        return "min"
    raise ValueError(
        f"cannot tell whether metric {name!r} is to be maximized or minimized; expected an "
        f"accuracy-like ({', '.join(_MAX_LIKE)}) or loss-like ({', '.join(_MIN_LIKE)}) name"
    )


def metric_direction(name: str) -> Literal["maximize", "minimize"]:
    """`metric_mode` in the words of a sweep's objective."""
    return "maximize" if metric_mode(name) == "max" else "minimize"


def best_index(values: Sequence[float], mode: Mode) -> int | None:
    """The 0-based index Keras would checkpoint, or None for an empty history."""
    best: float | None = None
    index: int | None = None
    for i, value in enumerate(values):
        if best is None or (value < best if mode == "min" else value > best):
            best, index = value, i
    return index
