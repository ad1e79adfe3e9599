"""How many training steps Keras runs per call into the backend (``steps_per_execution``).

For the seeds' small models most of a step on a CPU is Keras's per-step dispatch, not the
math; ``compile(steps_per_execution=N)`` runs N steps per call. Epoch-level behaviour does not
change (callbacks' ``on_epoch_*``, EarlyStopping, checkpoints, pruning); batch-level hooks are
called once per N steps, with the batch index of the first (``on_*_batch_begin``) or last
(``on_*_batch_end``) step of the N, so a NaN loss is seen at most N - 1 steps late.

Example:
    >>> resolve_steps_per_execution("auto", n_samples=1437, batch_size=32, backend="tensorflow")
    32
    >>> resolve_steps_per_execution("auto", n_samples=1437, batch_size=32, backend="torch")
    1
"""

from __future__ import annotations

import math

from experiments.errors import ConfigError

__all__ = ["AUTO_STEPS_PER_EXECUTION", "is_steps_setting", "resolve_steps_per_execution"]

# Measured with bench/fused.py and bench/overhead.py on the 2-core CPU (README "Fused trials").
AUTO_STEPS_PER_EXECUTION = 32


def is_steps_setting(value: object) -> bool:
    """Whether ``value`` is a ``steps_per_execution`` setting: "auto" or an integer >= 1 (not a bool)."""
    return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def resolve_steps_per_execution(
    setting: int | str, *, n_samples: int | None, batch_size: int, backend: str | None = None
) -> int:
    """The N to compile with: "auto" is AUTO_STEPS_PER_EXECUTION, never more than an epoch's steps
    (when ``n_samples`` is known; None for a stream).

    Keras's PyTorch trainer runs one step per call only, so "auto" is 1 there.

    Raises:
        ConfigError: an explicit N > 1 on the PyTorch backend, or N < 1.
    """
    if backend is None:
        import keras

        backend = keras.backend.backend()
    steps_per_epoch = math.inf if n_samples is None else max(1, math.ceil(n_samples / batch_size))
    if setting == "auto":
        return 1 if backend == "torch" else int(min(AUTO_STEPS_PER_EXECUTION, steps_per_epoch))
    if not is_steps_setting(setting):
        raise ConfigError(f"steps_per_execution={setting!r}: expected 'auto' or an integer >= 1")
    if setting > 1 and backend == "torch":
        raise ConfigError(
            f"steps_per_execution={setting}: Keras's PyTorch backend runs one step per call; "
            "use 'auto' or 1 with KERAS_BACKEND=torch"
        )
    return int(min(setting, steps_per_epoch))
