"""System metrics on trial runs: the sampler alone, MLflow's GPU monitor on fake NVML, a real store."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient

from tracking import system_metrics
from tracking.runs import SweepTracker
from tracking.system_metrics import PREFIX, SystemMetricsSampler


class Counter:
    """A collector like MLflow's monitors: one value per sample, averaged on aggregate."""

    def __init__(self, fail_after: int | None = None) -> None:
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.collected = 0
        self.fail_after = fail_after
        self.threads: set[str] = set()

    def collect_metrics(self) -> None:
        if self.fail_after is not None and self.collected >= self.fail_after:
            raise OSError("sensor gone")
        self.collected += 1
        self.threads.add(threading.current_thread().name)
        self._metrics["count"].append(float(self.collected))

    def aggregate_metrics(self) -> dict[str, float]:
        values = self._metrics["count"]
        return {"count": sum(values) / len(values)}

    def clear_metrics(self) -> None:
        self._metrics.clear()


def test_a_trial_shorter_than_the_interval_still_gets_one_point() -> None:
    points: list[tuple[int, dict[str, float]]] = []
    sampler = SystemMetricsSampler(
        lambda m, step: points.append((step, m)), interval=10, collectors=[Counter()]
    )
    started = time.perf_counter()
    sampler.start()
    sampler.stop()
    assert time.perf_counter() - started < 0.5  # stopping does not wait out the interval
    assert points == [(0, {f"{PREFIX}count": 1.0})]
    sampler.stop()  # a second stop changes nothing
    assert len(points) == 1 and not sampler.running


def test_samples_are_averaged_and_written_every_log_every() -> None:
    points: list[tuple[int, dict[str, float]]] = []
    counter = Counter()
    sampler = SystemMetricsSampler(
        lambda m, step: points.append((step, m)), interval=0.01, log_every=3, collectors=[counter]
    )
    sampler.start()
    deadline = time.monotonic() + 5
    while len(points) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    steps = [step for step, _ in points]
    assert steps == list(range(len(points))) and len(points) >= 3  # 2 periodic + the final one
    assert points[0][1] == {f"{PREFIX}count": 2.0}  # mean of samples 1, 2, 3
    assert sampler.step == len(points)
    assert "sweeplab-system-metrics" in counter.threads  # sampled off the caller's thread


def test_a_failing_collector_is_dropped_and_the_others_go_on() -> None:
    points: list[dict[str, float]] = []
    good, bad = Counter(), Counter(fail_after=0)
    sampler = SystemMetricsSampler(lambda m, step: points.append(m), interval=10, collectors=[bad, good])
    sampler.start()
    sampler.stop()
    assert points == [{f"{PREFIX}count": 1.0}]


def test_a_failing_publish_ends_sampling_quietly() -> None:
    def closed(metrics: dict[str, float], step: int) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    sampler = SystemMetricsSampler(closed, interval=0.01, log_every=1, collectors=[Counter()])
    sampler.start()
    time.sleep(0.1)
    sampler.stop()  # no exception
    assert not sampler.running


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="interval=0"):
        SystemMetricsSampler(lambda m, s: None, interval=0, collectors=[])


def test_default_collectors_give_mlflow_cpu_and_memory_metrics() -> None:
    points: list[dict[str, float]] = []
    sampler = SystemMetricsSampler(lambda m, step: points.append(m))
    sampler.start()
    time.sleep(0.05)
    sampler.stop()
    (metrics,) = points
    names = ("cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage")
    for name in names:
        assert f"{PREFIX}{name}" in metrics
    assert 0 <= metrics[f"{PREFIX}cpu_utilization_percentage"] <= 100
    assert metrics[f"{PREFIX}system_memory_usage_megabytes"] > 0


def test_settings_follow_mlflow_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert system_metrics.settings() == (1.0, 10)
    assert system_metrics.enabled()
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "4")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    assert system_metrics.settings() == (0.5, 4)
    assert not system_metrics.enabled()


# --- GPU metrics through MLflow's GPUMonitor, on fake NVML ------------------------------


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch):
    """Three fake GPUs behind the real nvidia-ml-py module's functions, as MLflow calls them."""
    pynvml = pytest.importorskip("pynvml")
    from types import SimpleNamespace

    calls = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 3,
        "nvmlDeviceGetHandleByIndex": lambda i: i,
        "nvmlDeviceGetUUID": lambda h: f"GPU-{h}{h}{h}",
        "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=8000 * 10**6, used=(h + 1) * 1000 * 10**6),
        "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=10 * (h + 1), memory=0),
        "nvmlDeviceGetPowerUsage": lambda h: 100_000,
        "nvmlDeviceGetEnforcedPowerLimit": lambda h: 400_000,
    }
    for name, fn in calls.items():
        monkeypatch.setattr(pynvml, name, fn)
    system_metrics._nvml_usable.cache_clear()
    yield
    system_metrics._nvml_usable.cache_clear()


def test_gpu_metrics_cover_the_gpus_this_process_sees(fake_gpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    points: list[dict[str, float]] = []
    sampler = SystemMetricsSampler(lambda m, step: points.append(m))
    sampler.start()
    sampler.stop()
    (metrics,) = points
    # gpu_0 is the process's first GPU: the driver's GPU 2 here.
    assert metrics[f"{PREFIX}gpu_0_utilization_percentage"] == 30
    assert metrics[f"{PREFIX}gpu_0_memory_usage_megabytes"] == 3000
    assert metrics[f"{PREFIX}gpu_0_memory_usage_percentage"] == 37.5
    assert not any(key.startswith(f"{PREFIX}gpu_1") for key in metrics)


def test_no_gpu_metrics_where_no_gpu_is_visible(fake_gpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    names = [type(c).__name__ for c in system_metrics.default_collectors()]
    assert names == ["CPUMonitor"]


# --- on a trial run in a real store -----------------------------------------------------


def _open(uri: str) -> SweepTracker:
    tracker = SweepTracker(uri, "sysmetrics")
    tracker.open({"engine.name": "optuna"}, "name: sysmetrics\n")
    return tracker


def test_trial_runs_carry_system_metrics(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "2")
    tracker = _open(tracking_uri)
    recorder = tracker.trial(0, {"optimizer": "adam"}, {}, "trial-000")
    time.sleep(0.4)
    recorder.fail("exception", "RuntimeError: boom")
    tracker.close()
    client = MlflowClient(tracking_uri)
    run = client.get_run(recorder.run_id)
    assert run.info.status == "FAILED"
    history = client.get_metric_history(recorder.run_id, "system/cpu_utilization_percentage")
    steps = sorted(m.step for m in history)
    assert len(steps) >= 2 and steps == list(range(len(steps)))
    assert "system/system_memory_usage_megabytes" in run.data.metrics


def test_a_short_trial_gets_its_point_at_the_end(tracking_uri: str) -> None:
    tracker = _open(tracking_uri)
    recorder = tracker.trial(0, {"optimizer": "adam"}, {}, "trial-000")  # default: 1 s interval
    recorder.fail("exception", "RuntimeError: at once")
    tracker.close()
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history(recorder.run_id, "system/cpu_utilization_percentage")
    assert [m.step for m in history] == [0]


def test_system_metrics_can_be_turned_off(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    tracker = _open(tracking_uri)
    recorder = tracker.trial(0, {"optimizer": "adam"}, {}, "trial-000")
    recorder.fail("exception", "RuntimeError: boom")
    tracker.close()
    metrics = MlflowClient(tracking_uri).get_run(recorder.run_id).data.metrics
    assert not any(key.startswith("system/") for key in metrics)


def test_closing_the_sweep_stops_a_sampler_left_running(tracking_uri: str) -> None:
    tracker = _open(tracking_uri)
    recorder = tracker.trial(0, {"optimizer": "adam"}, {}, "trial-000")
    sampler = recorder._system
    tracker.close()  # the trial never finished (an error outside training)
    assert not sampler.running
    client = MlflowClient(tracking_uri)
    client.set_terminated(recorder.run_id, status="KILLED")
    assert "system/cpu_utilization_percentage" in client.get_run(recorder.run_id).data.metrics
