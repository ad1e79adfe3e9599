"""What differs between Keras backends (TensorFlow, JAX, PyTorch) for a training job.

Training itself uses only ``keras.*`` APIs, so ``KERAS_BACKEND=jax`` or ``torch`` runs the
same spec. What is left is small: which backend and version run, whether an error is an
out-of-memory error (each backend raises its own type), and freeing a failed trial's
memory. Nothing here imports a backend at module import time.

Example:
    >>> failure_reason(MemoryError())
    'out_of_memory'
    >>> failure_reason(ValueError("bad shape"))
    'exception'
    >>> failure_reason(ModelError("no such option"))
    'model_error'
"""

from __future__ import annotations

import gc
import re
import sys
from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "BACKEND_PACKAGES",
    "backend_name",
    "backend_version",
    "failure_reason",
    "is_out_of_memory",
    "release_memory",
]

# The distribution that provides each Keras backend (for versions and model requirements).
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}

# Exception type names each backend raises when a device (or the host) runs out of memory:
# TensorFlow's tf.errors.ResourceExhaustedError, torch.OutOfMemoryError (torch.cuda's is the
# same class). Matched by name so that no backend needs importing to classify an error.
_OOM_TYPE_NAMES = frozenset({"ResourceExhaustedError", "OutOfMemoryError"})
# Messages of OOM errors raised as generic types: JAX's XlaRuntimeError ("RESOURCE_EXHAUSTED:
# Out of memory while trying to allocate ..."), torch's RuntimeError ("CUDA error: out of
# memory", "DefaultCPUAllocator: can't allocate memory"), TF's "OOM when allocating tensor".
_OOM_MESSAGE = re.compile(
    r"out of memory|\bOOM when allocating|RESOURCE_EXHAUSTED|can't allocate memory", re.IGNORECASE
)


def backend_name() -> str:
    """The Keras backend this process trains on: tensorflow, jax, torch (or numpy)."""
    import keras

    return keras.backend.backend()


def backend_version(name: str | None = None) -> str:
    """The installed version of a backend's package (``"unknown"`` if not installed)."""
    package = BACKEND_PACKAGES.get(name or backend_name(), name or "")
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is an out-of-memory error.

    Recognises ``MemoryError``, TensorFlow's ``ResourceExhaustedError``,
    ``torch.OutOfMemoryError`` and the messages JAX/XLA and PyTorch use for OOM raised as
    generic errors, by type name and message, so no backend is imported.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        if any(cls.__name__ in _OOM_TYPE_NAMES for cls in type(current).__mro__):
            return True
        if _OOM_MESSAGE.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def failure_reason(exc: BaseException) -> str:
    """The reason a trial that raised ``exc`` is recorded with: out_of_memory, model_error (the
    model cannot be built for this config), config_error (a value `train` rejects), or
    exception. The middle two repeat whenever the config is tried again."""
    from experiments.errors import ConfigError, ModelError

    if is_out_of_memory(exc):
        return "out_of_memory"
    if isinstance(exc, ModelError):
        return "model_error"
    if isinstance(exc, ConfigError):
        return "config_error"
    return "exception"


# Every this many sessions, what `new_session` froze is collected once (see there).
FULL_COLLECT_EVERY = 16
_sessions = 0


def new_session() -> None:
    """``keras.backend.clear_session`` for the next trial, with Python's cycle collector
    skipping what outlives trials.

    clear_session runs ``gc.collect()`` over the whole heap; in a sweep process (MLflow,
    Optuna, SQLAlchemy, pandas and the backend imported) that measured 0.4-0.5 s a trial on
    2 CPU cores, against 0.25-0.35 s in a plain Keras loop (bench/overhead.py). What survives
    the collection is long-lived, so it is frozen (``gc.freeze``) and the next trial's
    collection scans only what was made since (measured: 0.02 s). Every
    FULL_COLLECT_EVERY sessions everything is unfrozen first and collected once, so a cycle
    that was still alive when frozen and died later is freed too. The first session freezes
    the heap before its collection, so the imports' garbage waits for that full collection
    instead of delaying the first trial (a fused sweep's first pack: 0.28 s on 2 CPU cores).
    """
    import keras

    global _sessions
    _sessions += 1
    if _sessions == 1:
        gc.freeze()
    elif _sessions % FULL_COLLECT_EVERY == 0:
        gc.unfreeze()
    keras.backend.clear_session()
    gc.freeze()


def release_memory() -> None:
    """Free what a finished or failed trial still holds: Keras state, Python garbage, and
    PyTorch's cached GPU blocks, so that the next trial in this process has the memory.

    TensorFlow and JAX keep freed device memory in their own pools, where the next trial
    reuses it; PyTorch's cache is returned to the device so other workers can use it.
    """
    import keras

    gc.unfreeze()  # all of it: the failed trial's memory may sit among what `new_session` froze
    keras.backend.clear_session()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and keras.backend.backend() == "torch" and torch.cuda.is_available():
        torch.cuda.empty_cache()
