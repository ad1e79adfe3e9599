"""Backend facts: which backend runs, and out-of-memory errors of every backend told apart."""

from __future__ import annotations

import pytest

from experiments.backends import backend_name, backend_version, failure_reason, is_out_of_memory


class ResourceExhaustedError(Exception):
    """Named as TensorFlow names it, without importing TensorFlow."""


class XlaRuntimeError(RuntimeError):
    """JAX raises OOM as this generic type, with the status in the message."""


def _chained() -> BaseException:
    try:
        try:
            raise MemoryError("host")
        except MemoryError as inner:
            raise RuntimeError("fit failed") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        ResourceExhaustedError("OOM when allocating tensor with shape[4096,9216]"),
        XlaRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB."),
        RuntimeError("CUDA error: out of memory"),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
        _chained(),
    ],
    ids=["memory-error", "tf-type", "jax-message", "torch-cuda-message", "torch-cpu-message", "chained"],
)
def test_out_of_memory_is_recognised(exc: BaseException) -> None:
    assert is_out_of_memory(exc)
    assert failure_reason(exc) == "out_of_memory"


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("Input 0 of layer 'dense' is incompatible"),
        RuntimeError("dropout 0.40 is too much"),
        KeyError("x"),
    ],
)
def test_other_errors_are_exceptions(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)
    assert failure_reason(exc) == "exception"


def test_tensorflows_own_oom_error() -> None:
    import tensorflow as tf

    exc = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    assert failure_reason(exc) == "out_of_memory"


def test_torchs_own_oom_error() -> None:
    torch = pytest.importorskip("torch")
    exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert failure_reason(exc) == "out_of_memory"


def test_backend_and_version() -> None:
    import keras

    assert backend_name() == keras.backend.backend()
    assert backend_version("tensorflow") not in ("", "unknown")
    assert backend_version("no-such-backend") == "unknown"


def test_new_session_frees_a_cycle_that_died_after_it_was_frozen() -> None:
    """What survives a trial's collection is frozen (cheap later collections); a cycle that dies
    after that is still freed, at the latest FULL_COLLECT_EVERY sessions later."""
    import gc
    import weakref

    from experiments import backends

    class Node:
        pass

    node = Node()
    node.self = node  # a cycle: only the cycle collector frees it
    alive = weakref.ref(node)
    backends.new_session()
    assert gc.get_freeze_count() > 0
    del node
    backends.new_session()
    seen = 1
    while alive() is not None and seen <= backends.FULL_COLLECT_EVERY:
        backends.new_session()
        seen += 1
    assert alive() is None and seen <= backends.FULL_COLLECT_EVERY
    backends.release_memory()
    assert gc.get_freeze_count() == 0


def test_the_first_session_leaves_the_imports_garbage_to_the_full_collection(monkeypatch) -> None:
    """The first trial does not wait for a collection of the whole heap (0.2-0.3 s in a sweep
    process); garbage from before it is still freed, FULL_COLLECT_EVERY sessions later."""
    import gc
    import weakref

    from experiments import backends

    class Node:
        pass

    gc.unfreeze()
    monkeypatch.setattr(backends, "_sessions", 0)
    node = Node()
    node.self = node
    alive = weakref.ref(node)
    del node  # garbage now, as an import's leftovers are
    backends.new_session()
    assert alive() is not None  # frozen, not collected
    for _ in range(backends.FULL_COLLECT_EVERY - 1):
        backends.new_session()
    assert alive() is None
    backends.release_memory()
