"""System metrics of a trial run: CPU, host memory and GPU use while it trains.

The values are MLflow's own (its ``CPUMonitor`` and, through nvidia-ml-py, ``GPUMonitor``),
logged under MLflow's names (``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``, ``system/gpu_0_utilization_percentage``,
``system/gpu_0_memory_usage_megabytes``, ...), so the MLflow UI shows them in its system
metrics tab. The sampling loop is sweeplab's, because MLflow's ``SystemMetricsMonitor``
drops the samples taken since its last log when it is stopped (a trial shorter than its
interval logs nothing), reads the run from the store before every sample, and writes
beside the tracker's writer thread rather than through it.

Here a daemon thread samples every ``interval`` seconds; every ``log_every`` samples the
averages are handed to ``publish`` (the tracker's queued writer), and ``stop()`` takes one
last sample and hands over the rest, so even a sub-second trial gets one point. Sampling
costs well under a millisecond; the training thread only starts and stops the sampler.
GPU metrics cover the GPUs this process sees (``CUDA_VISIBLE_DEVICES``), numbered as the
process numbers them (``gpu_0`` is its first); utilization and memory are the whole
device's, other processes on a shared GPU included.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_LOG_EVERY",
    "PREFIX",
    "SystemMetricsSampler",
    "default_collectors",
    "enabled",
    "settings",
    "visible_gpu_indices",
]

PREFIX = "system/"
# One sample a second, written every 10 samples (and at the end): a 2 s trial gets one point,
# a 10-minute one 60, and the store sees one small batch per 10 s of training.
DEFAULT_INTERVAL_S = 1.0
DEFAULT_LOG_EVERY = 10

Publish = Callable[[dict[str, float], int], None]


def enabled() -> bool:
    """On unless ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` is set to false."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING as flag

    return not flag.is_set() or bool(flag.get())


def settings() -> tuple[float, int]:
    """(interval in seconds, samples per write): sweeplab's defaults, or MLflow's variables
    ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` / ``..._SAMPLES_BEFORE_LOGGING`` when set."""
    from mlflow.environment_variables import (
        MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING as samples,
    )
    from mlflow.environment_variables import (
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL as interval,
    )

    return (
        float(interval.get()) if interval.is_set() else DEFAULT_INTERVAL_S,
        int(samples.get()) if samples.is_set() else DEFAULT_LOG_EVERY,
    )


def visible_gpu_indices(visible: str | None, uuids: Sequence[str]) -> list[int]:
    """The driver's GPU indices that ``CUDA_VISIBLE_DEVICES=visible`` leaves visible, in order.

    ``uuids`` are the driver's GPU UUIDs in index order. CUDA's rules: unset means all; the
    list is read up to the first entry that names no GPU; an entry is an index or a
    (unique prefix of a) UUID such as ``GPU-8f3a...``.
    """
    if visible is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for entry in (part.strip() for part in visible.split(",")):
        if entry.isdigit():
            index = int(entry)
            if index >= len(uuids):
                break
        else:
            matches = [i for i, uuid in enumerate(uuids) if entry and uuid.startswith(entry)]
            if len(matches) != 1:
                break
            index = matches[0]
        if index in chosen:
            break
        chosen.append(index)
    return chosen


@lru_cache(maxsize=1)
def _nvml_usable() -> bool:
    """Whether nvidia-ml-py is installed and finds a driver (looked up once per process)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError: no library, no driver
        return False
    pynvml.nvmlShutdown()
    return True


def _gpu_collector() -> Any | None:
    """MLflow's GPU monitor, narrowed to the GPUs this process sees; None without a GPU."""
    if _nvml_usable():
        import pynvml
        from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

        try:
            monitor = GPUMonitor()
            uuids = [pynvml.nvmlDeviceGetUUID(h) for h in monitor.gpu_handles]
            uuids = [u.decode() if isinstance(u, bytes) else u for u in uuids]
            keep = visible_gpu_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)
            monitor.gpu_handles = [monitor.gpu_handles[i] for i in keep]
            monitor.num_gpus = len(keep)
            return monitor if keep else None
        except Exception as exc:
            log.warning("GPU metrics off: %s", exc)
            return None
    try:  # AMD GPUs, where MLflow's ROCm monitor has its library (pyrsmi)
        from mlflow.system_metrics.metrics.rocm_monitor import ROCMMonitor

        return ROCMMonitor()
    except Exception:
        return None


def default_collectors() -> list[Any]:
    """MLflow's CPU/host-memory monitor, and its GPU monitor where there is a GPU."""
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor

    collectors: list[Any] = [CPUMonitor()]
    gpu = _gpu_collector()
    if gpu is not None:
        collectors.append(gpu)
    return collectors


class SystemMetricsSampler:
    """Samples system metrics on a daemon thread and hands averages to ``publish(metrics, step)``.

    ``metrics`` are keyed ``system/<name>``; ``step`` counts the writes from 0, as MLflow's
    monitor counts them. ``collectors`` are MLflow ``BaseMetricsMonitor``-like objects
    (``collect_metrics``, ``aggregate_metrics``, ``clear_metrics``).

    Example:
        >>> points = []
        >>> sampler = SystemMetricsSampler(lambda m, step: points.append(m))
        >>> sampler.start(); sampler.stop()
        >>> "system/cpu_utilization_percentage" in points[0]
        True
    """

    def __init__(
        self,
        publish: Publish,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        log_every: int = DEFAULT_LOG_EVERY,
        collectors: Iterable[Any] | None = None,
    ) -> None:
        if interval <= 0 or log_every < 1:
            raise ValueError(f"interval={interval!r}, log_every={log_every!r}: expected > 0 and >= 1")
        self._publish = publish
        self._interval = interval
        self._log_every = log_every
        self._collectors = list(collectors) if collectors is not None else default_collectors()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._samples = 0
        self.step = 0  # the next write's step; after stop(), how many writes there were

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Begin sampling (the first sample's CPU use covers the time from here)."""
        if self._thread is not None:
            return
        import psutil

        psutil.cpu_percent()  # CPU use is measured between calls: start the first interval now
        self._thread = threading.Thread(target=self._loop, name="sweeplab-system-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and hand over what was not yet published; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join()
        self._sample()
        self._flush()

    def _loop(self) -> None:
        while not self._stopping.wait(self._interval):
            self._sample()
            if self._samples >= self._log_every and not self._flush():
                return

    def _sample(self) -> None:
        for collector in list(self._collectors):
            try:
                collector.collect_metrics()
            except Exception as exc:  # a collector that fails once is dropped, not retried
                log.warning("system metrics: %s stopped: %s", type(collector).__name__, exc)
                self._collectors.remove(collector)
        self._samples += 1

    def _flush(self) -> bool:
        """Publish the averages of the samples so far; False when publishing failed."""
        if not self._samples:
            return True
        metrics: dict[str, float] = {}
        for collector in self._collectors:
            try:
                values = collector.aggregate_metrics()
            except Exception:  # e.g. a collector with no sample of its own
                values = {}
            metrics.update({f"{PREFIX}{key}": float(value) for key, value in values.items()})
            collector.clear_metrics()
        self._samples = 0
        if not metrics:
            return True
        step, self.step = self.step, self.step + 1
        try:
            self._publish(metrics, step)
        except Exception as exc:  # the tracker was closed under us: nothing more to write to
            log.warning("system metrics not recorded: %s", exc)
            return False
        return True
