"""Which devices a sweep trains on, and how worker processes share them.

GPUs are listed through NVML (nvidia-ml-py), which needs no deep-learning framework and
touches no GPU memory, so a coordinating process can plan its workers without importing
TensorFlow, JAX or PyTorch; the backend is asked only whether it can use them. GPU ids are
the driver's (as ``nvidia-smi`` numbers them): workers get ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
so that CUDA numbers them the same way.

Example:
    >>> worker_env(1, 2, [0, 1])["CUDA_VISIBLE_DEVICES"]
    '1'
    >>> worker_env(0, 2, [], cpu_count=8)["OMP_NUM_THREADS"]
    '4'
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Final

from sweeps.errors import SweepError
from tracking.system_metrics import visible_gpu_indices

__all__ = [
    "GPU",
    "DeviceError",
    "Devices",
    "configured_backend",
    "cpu_threads",
    "device_line",
    "discover",
    "enable_memory_growth",
    "nvml_gpus",
    "visible_gpu_indices",
    "worker_device",
    "worker_env",
]

# Environment variables that size a process's CPU thread pools: OpenMP/MKL/OpenBLAS (numpy,
# PyTorch's intra-op pool) and TensorFlow's two pools.
THREAD_VARIABLES: Final = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)
# JAX CUDA builds; `jax.devices()` would tell, but it preallocates most of the GPU's memory.
_JAX_CUDA_PACKAGES: Final = ("jax-cuda12-plugin", "jax-cuda13-plugin")


class DeviceError(SweepError, ValueError):
    """A worker or GPU layout that cannot run: names the option, the value and what would."""


class _Detect:
    """Marker: look the machine's GPUs up (NVML) instead of taking them as given."""


DETECT: Final = _Detect()


@dataclass(frozen=True)
class GPU:
    """One GPU as the driver lists it; ``index`` is its nvidia-smi number."""

    index: int
    name: str
    memory_mib: int | None = None

    def describe(self) -> str:
        memory = f" ({self.memory_mib / 1024:.0f} GiB)" if self.memory_mib else ""
        return f"{self.index} {self.name}{memory}"


@dataclass(frozen=True)
class Devices:
    """What this process can train on.

    ``gpus`` are the GPUs the driver lists and ``CUDA_VISIBLE_DEVICES`` leaves visible;
    ``backend_gpus`` is how many of them the Keras backend's build can use (None when the
    backend was not asked); ``cpu_count`` is the cores this process may run on.
    """

    backend: str
    backend_version: str
    gpus: tuple[GPU, ...]
    backend_gpus: int | None
    cpu_count: int

    @property
    def usable_gpus(self) -> tuple[GPU, ...]:
        """The GPUs training will use: none when the backend's build cannot use them."""
        return self.gpus if self.backend_gpus is None or self.backend_gpus > 0 else ()


def configured_backend() -> str:
    """The Keras backend this process will use, read as Keras does but without importing it.

    ``KERAS_BACKEND``, else ``backend`` in ``$KERAS_HOME/keras.json`` (default ``~/.keras``),
    else TensorFlow; once Keras is imported, Keras's own answer.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):
        return str(keras.backend.backend())
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        return str(json.loads((home / "keras.json").read_text()).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def cpu_threads() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def nvml_gpus() -> tuple[GPU, ...] | None:
    """The GPUs the NVIDIA driver lists and ``CUDA_VISIBLE_DEVICES`` leaves visible.

    None when it cannot be told: nvidia-ml-py missing, or no NVIDIA driver.
    """
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        gpus = []
        for index in visible_gpu_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids):
            handle = handles[index]
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            gpus.append(GPU(index, _text(pynvml.nvmlDeviceGetName(handle)), int(memory)))
        return tuple(gpus)
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@lru_cache(maxsize=1)
def _detected_gpu_ids() -> tuple[int, ...] | None:
    gpus = nvml_gpus()
    return None if gpus is None else tuple(gpu.index for gpu in gpus)


def _backend_gpu_count(backend: str) -> int:
    """How many GPUs the backend's build can use; imports it, but initializes no GPU."""
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend == "jax":
        for package in _JAX_CUDA_PACKAGES:
            try:
                distribution(package)
                return len(_detected_gpu_ids() or ())
            except PackageNotFoundError:
                continue
        return 0
    return 0


def discover(*, probe_backend: bool = True) -> Devices:
    """The backend, its version and the GPUs and CPU cores this process can train on.

    With ``probe_backend`` the backend is imported and asked whether its build can use the
    GPUs (a CPU-only PyTorch or TensorFlow wheel cannot); a coordinating process that only
    starts workers passes False and lists GPUs through NVML alone.
    """
    from experiments.backends import backend_version

    backend = configured_backend()
    gpus = nvml_gpus() or ()
    backend_gpus = _backend_gpu_count(backend) if probe_backend else None
    if probe_backend and backend_gpus and not gpus:  # a GPU NVML cannot see (no nvidia-ml-py)
        gpus = tuple(GPU(i, "GPU") for i in range(backend_gpus))
    return Devices(backend, backend_version(backend), tuple(gpus), backend_gpus, cpu_threads())


def _check_layout(index: int, workers: int, workers_per_gpu: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DeviceError(f"--workers {workers!r}: expected an integer >= 1")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < workers:
        raise DeviceError(f"worker index {index!r}: expected an integer in [0, {workers})")
    if isinstance(workers_per_gpu, bool) or not isinstance(workers_per_gpu, int) or workers_per_gpu < 1:
        raise DeviceError(f"--workers-per-gpu {workers_per_gpu!r}: expected an integer >= 1")


def _resolve_gpus(
    gpus: Sequence[int] | None, workers: int, workers_per_gpu: int, available: Sequence[int] | None | _Detect
) -> list[int]:
    """The checked GPU list the workers are spread over ([] for CPU workers)."""
    known = _detected_gpu_ids() if isinstance(available, _Detect) else available
    if gpus is None:
        return list(known or ())
    listed = ",".join(str(g) for g in gpus)
    for gpu in gpus:
        if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
            raise DeviceError(
                f"--gpus {listed}: {gpu!r} is not a GPU index (expected integers >= 0, as nvidia-smi "
                "numbers them)"
            )
    repeated = sorted({g for g in gpus if list(gpus).count(g) > 1})
    if repeated:
        raise DeviceError(
            f"--gpus {listed}: GPU {', '.join(map(str, repeated))} listed more than once; to put several "
            "workers on one GPU, use --workers-per-gpu"
        )
    if known is not None:
        missing = [g for g in gpus if g not in known]
        if missing:
            have = ", ".join(map(str, known)) if known else "none"
            raise DeviceError(
                f"--gpus {listed}: no GPU {', '.join(map(str, missing))} on this machine; its visible GPUs "
                f"are: {have} (as nvidia-smi numbers them)"
            )
    if gpus and workers > len(gpus) * workers_per_gpu:
        need = -(-workers // len(gpus))
        raise DeviceError(
            f"--workers {workers} on {len(gpus)} GPU(s) ({listed}) at --workers-per-gpu {workers_per_gpu} "
            f"leaves {workers - len(gpus) * workers_per_gpu} worker(s) without a GPU; use --workers-per-gpu "
            f"{need} or at most --workers {len(gpus) * workers_per_gpu}"
        )
    return list(gpus)


def _thread_share(index: int, workers: int, cpu_count: int) -> int:
    """Worker ``index``'s share of ``cpu_count`` threads; the first ones take the remainder."""
    return max(1, cpu_count // workers + (1 if index < cpu_count % workers else 0))


def worker_env(
    index: int,
    workers: int,
    gpus: Sequence[int] | None,
    workers_per_gpu: int = 1,
    cpu_count: int | None = None,
    *,
    available: Sequence[int] | None | _Detect = DETECT,
) -> dict[str, str]:
    """The environment variables worker ``index`` of ``workers`` is started with.

    Workers are spread round-robin over ``gpus`` (worker i gets ``gpus[i % len(gpus)]``),
    at most ``workers_per_gpu`` on each, each seeing only its own GPU. TensorFlow allocates
    GPU memory as it needs it (``TF_FORCE_GPU_ALLOW_GROWTH``) so that workers can share a
    GPU; where they do, JAX is kept from taking 75% of it up front. With no GPU, the CPU
    cores are split between the workers (OpenMP, MKL, OpenBLAS and TensorFlow pools).

    Args:
        index: the worker, 0-based.
        workers: how many workers run on this machine.
        gpus: GPU ids as nvidia-smi numbers them; ``[]`` for CPU workers; None for all the
            GPUs this machine's driver lists (none where it lists none).
        workers_per_gpu: how many workers may share one GPU.
        cpu_count: cores to split between CPU workers (default: this process's).
        available: the machine's GPU ids that ``gpus`` must come from (default: looked
            up through NVML; None: not checked). Pass it to keep the function pure.

    Raises:
        DeviceError: a bad index, count or GPU list, or more workers than the GPUs can take.
    """
    _check_layout(index, workers, workers_per_gpu)
    gpu_ids = _resolve_gpus(gpus, workers, workers_per_gpu, available)
    if gpu_ids:
        env = {
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": str(gpu_ids[index % len(gpu_ids)]),
            "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        }
        if workers > len(gpu_ids):  # some GPU is shared
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        return env
    threads = _thread_share(index, workers, cpu_count or cpu_threads())
    env = {name: str(threads) for name in THREAD_VARIABLES}
    env["TF_NUM_INTEROP_THREADS"] = str(min(2, threads))
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def worker_device(
    index: int,
    workers: int,
    gpus: Sequence[int] | None,
    workers_per_gpu: int = 1,
    cpu_count: int | None = None,
    *,
    available: Sequence[int] | None | _Detect = DETECT,
) -> str:
    """What worker ``index`` trains on, in words: ``GPU 1`` or ``CPU (4 threads)``."""
    env = worker_env(index, workers, gpus, workers_per_gpu, cpu_count, available=available)
    if env["CUDA_VISIBLE_DEVICES"]:
        return f"GPU {env['CUDA_VISIBLE_DEVICES']}"
    threads = int(env["OMP_NUM_THREADS"])
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def device_line(
    devices: Devices,
    workers: int = 1,
    gpus: Sequence[int] | None = None,
    workers_per_gpu: int = 1,
) -> str:
    """The one line a sweep prints at its start: backend, devices, and each worker's device.

    Example: ``backend tensorflow 2.21.0 | 2 GPUs: 0 NVIDIA H100 80GB HBM3 (80 GiB), 1 ... |
    2 workers: 0 -> GPU 0, 1 -> GPU 1``.
    """
    parts = [f"backend {devices.backend} {devices.backend_version}"]
    usable = devices.usable_gpus
    if usable:
        plural = "s" if len(usable) > 1 else ""
        parts.append(f"{len(usable)} GPU{plural}: " + ", ".join(gpu.describe() for gpu in usable))
    elif devices.gpus:
        listed = ", ".join(gpu.describe() for gpu in devices.gpus)
        parts.append(
            f"the driver lists {len(devices.gpus)} GPU(s) ({listed}) but this {devices.backend} build "
            f"cannot use them: CPU only ({devices.cpu_count} cores)"
        )
    else:
        parts.append(f"no GPU: CPU only ({devices.cpu_count} cores)")

    ids = [gpu.index for gpu in usable]
    chosen = ids if gpus is None else list(gpus)
    if workers == 1:  # one process trains in place, on the first GPU its backend sees
        device = f"GPU {chosen[0]}" if chosen else f"CPU ({devices.cpu_count} threads)"
        idle = len(chosen) - 1
        hint = ""
        if idle > 0:
            hint = f" ({idle} more GPU{'s' if idle > 1 else ''} idle: --workers {len(chosen)} uses them)"
        parts.append(f"1 worker: {device}{hint}")
    else:
        layout = [
            worker_device(i, workers, chosen, workers_per_gpu, devices.cpu_count, available=ids or None)
            for i in range(workers)
        ]
        share = f", up to {workers_per_gpu} per GPU" if chosen and workers_per_gpu > 1 else ""
        parts.append(f"{workers} workers{share}: " + ", ".join(f"{i} -> {d}" for i, d in enumerate(layout)))
    return " | ".join(parts)


def enable_memory_growth() -> list[str]:
    """Let TensorFlow take GPU memory as it needs it in this process, not all at once.

    Several processes can then share a GPU (the in-process twin of the
    ``TF_FORCE_GPU_ALLOW_GROWTH=true`` that `worker_env` sets). A no-op on other backends
    and without GPUs; returns the GPUs it applied to.

    Raises:
        DeviceError: TensorFlow had already started using the GPUs without memory growth.
    """
    if configured_backend() != "tensorflow":
        return []
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # raised once the GPU is initialized
            if tf.config.experimental.get_memory_growth(gpu):
                continue
            raise DeviceError(
                f"cannot turn on memory growth for {gpu.name}: TensorFlow already uses it ({exc}); "
                "call enable_memory_growth() before anything runs on the GPU, or start the process "
                "with TF_FORCE_GPU_ALLOW_GROWTH=true"
            ) from exc
    return [gpu.name for gpu in gpus]
