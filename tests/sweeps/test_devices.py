"""Device discovery, the device line and each worker's environment: pure logic, no GPU needed."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from sweeps.running import devices
from sweeps.running.devices import GPU, DeviceError, Devices, device_line, worker_device, worker_env
from tracking.system_metrics import visible_gpu_indices

H100 = "NVIDIA H100 80GB HBM3"


def _devices(
    gpus: int = 0, backend_gpus: int | None = None, cpus: int = 16, backend: str = "tensorflow"
) -> Devices:
    listed = tuple(GPU(i, H100, 81559) for i in range(gpus))
    return Devices(backend, "2.21.0", listed, gpus if backend_gpus is None else backend_gpus, cpus)


# --- worker_env: GPUs -------------------------------------------------------------------


def test_one_worker_per_gpu_sees_only_its_gpu() -> None:
    envs = [worker_env(i, 2, [0, 1], available=[0, 1]) for i in range(2)]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["0", "1"]
    for env in envs:
        assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA numbers GPUs as nvidia-smi does
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
        assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in env  # nobody shares: JAX may preallocate
        assert "OMP_NUM_THREADS" not in env


def test_workers_are_spread_round_robin_before_sharing_a_gpu() -> None:
    gpus = [
        worker_env(i, 4, [2, 3], workers_per_gpu=2, available=[0, 1, 2, 3])["CUDA_VISIBLE_DEVICES"]
        for i in range(4)
    ]
    assert gpus == ["2", "3", "2", "3"]
    # Two workers on two GPUs with room for two each: one per GPU, none idle.
    pair = [worker_env(i, 2, [0, 1], 2, available=[0, 1])["CUDA_VISIBLE_DEVICES"] for i in range(2)]
    assert pair == ["0", "1"]


def test_shared_gpu_keeps_jax_from_preallocating() -> None:
    env = worker_env(1, 3, [0], workers_per_gpu=3, available=[0])
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_gpus_none_means_all_the_machine_lists() -> None:
    assert worker_env(1, 2, None, available=[0, 1])["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker_env(0, 2, None, cpu_count=4, available=[])["OMP_NUM_THREADS"] == "2"
    assert worker_env(0, 2, None, cpu_count=4, available=None)["CUDA_VISIBLE_DEVICES"] == ""


def test_unknown_machine_takes_the_gpus_as_given() -> None:
    assert worker_env(0, 1, [5], available=None)["CUDA_VISIBLE_DEVICES"] == "5"


# --- worker_env: CPU --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "cpus", "expected"),
    [(1, 8, [8]), (2, 8, [4, 4]), (3, 8, [3, 3, 2]), (4, 2, [1, 1, 1, 1]), (2, 1, [1, 1])],
)
def test_cpu_workers_split_the_cores(workers: int, cpus: int, expected: list[int]) -> None:
    envs = [worker_env(i, workers, [], cpu_count=cpus) for i in range(workers)]
    for env, threads in zip(envs, expected, strict=True):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
            assert env[name] == str(threads)
        assert env["TF_NUM_INTEROP_THREADS"] == str(min(2, threads))
        assert env["CUDA_VISIBLE_DEVICES"] == ""  # a CPU worker never grabs a GPU
        assert "TF_FORCE_GPU_ALLOW_GROWTH" not in env
    assert sum(int(env["OMP_NUM_THREADS"]) for env in envs) == max(cpus, workers)


def test_cpu_count_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cpu_threads", lambda: 6)
    assert worker_env(0, 2, [])["OMP_NUM_THREADS"] == "3"


def test_workers_per_gpu_is_ignored_without_gpus() -> None:
    assert worker_env(0, 2, [], workers_per_gpu=4, cpu_count=4)["OMP_NUM_THREADS"] == "2"


# --- worker_env: errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 0, []), {}, r"--workers 0: expected an integer >= 1"),
        ((2, 2, []), {}, r"worker index 2: expected an integer in \[0, 2\)"),
        ((-1, 2, []), {}, r"worker index -1"),
        ((0, 1, []), {"workers_per_gpu": 0}, r"--workers-per-gpu 0: expected an integer >= 1"),
        ((0, 2, [0, 0]), {"available": [0, 1]}, r"--gpus 0,0: GPU 0 listed more than once; .*per-gpu"),
        ((0, 1, [-1]), {"available": [0]}, r"--gpus -1: -1 is not a GPU index"),
        (
            (0, 1, [3]),
            {"available": [0, 1]},
            r"--gpus 3: no GPU 3 on this machine; its visible GPUs are: 0, 1 \(as nvidia-smi",
        ),
        ((0, 1, [0]), {"available": []}, r"--gpus 0: no GPU 0 on this machine; its visible GPUs are: none"),
        (
            (0, 5, [0, 1]),
            {"workers_per_gpu": 2, "available": [0, 1]},
            r"--workers 5 on 2 GPU\(s\) \(0,1\) at --workers-per-gpu 2 leaves 1 worker\(s\) without a GPU; "
            r"use --workers-per-gpu 3 or at most --workers 4",
        ),
    ],
)
def test_bad_layouts_say_what_would_work(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        worker_env(*args, **kwargs)


def test_device_error_is_a_user_error() -> None:
    from sweeps.errors import SweepError

    assert issubclass(DeviceError, SweepError)  # the CLI prints one line and exits 2


def test_worker_device_in_words() -> None:
    assert worker_device(1, 2, [0, 1], available=[0, 1]) == "GPU 1"
    assert worker_device(0, 2, [], cpu_count=2) == "CPU (1 thread)"
    assert worker_device(0, 1, [], cpu_count=4) == "CPU (4 threads)"


# --- CUDA_VISIBLE_DEVICES ---------------------------------------------------------------

UUIDS = ["GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-cccc-3333"]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, [0, 1, 2]),
        ("", []),
        ("-1", []),
        ("2,0", [2, 0]),
        ("1, 2", [1, 2]),
        ("0,7,1", [0]),  # CUDA stops at the first entry that names no GPU
        ("1,1", [1]),
        ("GPU-bbbb", [1]),
        ("GPU-cccc-3333,0", [2, 0]),
        ("GPU-", []),  # a prefix of several UUIDs names none
    ],
)
def test_visible_gpu_indices_follow_cuda(visible: str | None, expected: list[int]) -> None:
    assert visible_gpu_indices(visible, UUIDS) == expected


# --- discovery --------------------------------------------------------------------------


class FakeNVML(types.ModuleType):
    """nvidia-ml-py's calls that discovery and MLflow's GPU monitor make, for 3 fake GPUs."""

    class NVMLError(Exception):
        pass

    def __init__(self, count: int = 3) -> None:
        super().__init__("pynvml")
        self.count = count
        self.inits = 0

    def nvmlInit(self) -> None:  # noqa: N802 (NVML's names)
        self.inits += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.inits -= 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetUUID(self, h: int) -> str:  # noqa: N802
        return UUIDS[h]

    def nvmlDeviceGetName(self, h: int) -> bytes:  # noqa: N802
        return f"Fake GPU {h}".encode()  # old bindings return bytes

    def nvmlDeviceGetMemoryInfo(self, h: int) -> types.SimpleNamespace:  # noqa: N802
        return types.SimpleNamespace(total=(h + 1) * 2**30, used=h * 2**29)


def test_nvml_gpus_lists_the_visible_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert devices.nvml_gpus() == (GPU(2, "Fake GPU 2", 3072), GPU(0, "Fake GPU 0", 1024))
    assert fake.inits == 0  # shut down again


def test_nvml_gpus_is_none_without_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNVML()

    def no_driver() -> None:
        raise FakeNVML.NVMLError("NVML Shared Library Not Found")

    fake.nvmlInit = no_driver  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert devices.nvml_gpus() is None


def test_discover_reports_backend_gpus_and_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "nvml_gpus", lambda: (GPU(0, H100, 81559),))
    found = devices.discover(probe_backend=False)
    import keras

    assert found.backend == keras.backend.backend()
    assert found.backend_version not in ("", "unknown")
    assert found.gpus == (GPU(0, H100, 81559),) and found.backend_gpus is None
    assert found.cpu_count >= 1


def test_discover_asks_the_backend_whether_it_can_use_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "nvml_gpus", lambda: (GPU(0, H100, 81559),))
    monkeypatch.setattr(devices, "_backend_gpu_count", lambda backend: 0)  # a CPU-only wheel
    found = devices.discover()
    assert found.backend_gpus == 0 and found.usable_gpus == ()


def test_configured_backend_is_read_as_keras_reads_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "keras")  # as in a process that has not imported Keras
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert devices.configured_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert devices.configured_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert devices.configured_backend() == "torch"


# --- the device line --------------------------------------------------------------------


def test_line_on_a_cpu_machine() -> None:
    line = device_line(_devices(cpus=2))
    assert line == "backend tensorflow 2.21.0 | no GPU: CPU only (2 cores) | 1 worker: CPU (2 threads)"
    line = device_line(_devices(cpus=4), workers=3)
    assert line.endswith("3 workers: 0 -> CPU (2 threads), 1 -> CPU (1 thread), 2 -> CPU (1 thread)")


def test_line_with_gpus_names_them_and_each_worker() -> None:
    line = device_line(_devices(gpus=2), workers=4, workers_per_gpu=2)
    assert line == (
        f"backend tensorflow 2.21.0 | 2 GPUs: 0 {H100} (80 GiB), 1 {H100} (80 GiB) | "
        "4 workers, up to 2 per GPU: 0 -> GPU 0, 1 -> GPU 1, 2 -> GPU 0, 3 -> GPU 1"
    )
    line = device_line(_devices(gpus=2), workers=2, gpus=[1], workers_per_gpu=2)
    assert line.endswith("| 2 workers, up to 2 per GPU: 0 -> GPU 1, 1 -> GPU 1")


def test_line_for_one_process_says_which_gpus_stay_idle() -> None:
    assert device_line(_devices(gpus=1)).endswith("| 1 worker: GPU 0")
    line = device_line(_devices(gpus=4))
    assert line.endswith("| 1 worker: GPU 0 (3 more GPUs idle: --workers 4 uses them)")
    assert device_line(_devices(gpus=4), gpus=[2]).endswith("| 1 worker: GPU 2")


def test_line_when_the_backend_build_cannot_use_the_gpu() -> None:
    line = device_line(_devices(gpus=1, backend_gpus=0, cpus=8, backend="torch"))
    assert f"the driver lists 1 GPU(s) (0 {H100} (80 GiB)) but this torch build cannot use them" in line
    assert line.endswith("| 1 worker: CPU (8 threads)")


def test_line_rejects_a_layout_the_gpus_cannot_take() -> None:
    with pytest.raises(DeviceError, match="--workers 3 on 1 GPU"):
        device_line(_devices(gpus=1), workers=3)


# --- memory growth ----------------------------------------------------------------------


def test_memory_growth_is_a_no_op_without_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "configured_backend", lambda: "torch")
    assert devices.enable_memory_growth() == []


class FakeTFConfig:
    """tf.config's device calls: two GPUs, one already initialized by an earlier op."""

    def __init__(self, initialized: bool, growth: bool = False) -> None:
        self.initialized, self.growth = initialized, growth
        self.grown: list[str] = []
        self.experimental = self

    def list_physical_devices(self, kind: str) -> list[types.SimpleNamespace]:
        return [types.SimpleNamespace(name=f"/physical_device:GPU:{i}") for i in range(2)]

    def set_memory_growth(self, gpu: types.SimpleNamespace, enable: bool) -> None:
        if self.initialized:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.grown.append(gpu.name)

    def get_memory_growth(self, gpu: types.SimpleNamespace) -> bool:
        return self.growth


@pytest.mark.parametrize("initialized", [False, True])
def test_memory_growth_on_tensorflow_gpus(monkeypatch: pytest.MonkeyPatch, initialized: bool) -> None:
    import tensorflow as tf

    fake = FakeTFConfig(initialized, growth=initialized)
    monkeypatch.setattr(devices, "configured_backend", lambda: "tensorflow")
    monkeypatch.setattr(tf, "config", fake)
    assert devices.enable_memory_growth() == ["/physical_device:GPU:0", "/physical_device:GPU:1"]
    assert fake.grown == ([] if initialized else ["/physical_device:GPU:0", "/physical_device:GPU:1"])


def test_memory_growth_too_late_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorflow as tf

    monkeypatch.setattr(devices, "configured_backend", lambda: "tensorflow")
    monkeypatch.setattr(tf, "config", FakeTFConfig(initialized=True, growth=False))
    with pytest.raises(DeviceError, match="TensorFlow already uses it .* TF_FORCE_GPU_ALLOW_GROWTH=true"):
        devices.enable_memory_growth()


def test_memory_growth_on_this_machine_does_not_fail() -> None:
    assert isinstance(devices.enable_memory_growth(), list)
