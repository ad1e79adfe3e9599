"""Trials on any Keras backend: the quickstart through the real CLI on PyTorch (and JAX where
installed), and the GPU features a CPU can check: mixed precision, jit compile, out of memory.

CI installs PyTorch's CPU build (`pip install torch==2.13.0`); without it the PyTorch case
skips, as the JAX one does without `jax`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import pytest
from mlflow.tracking import MlflowClient

from experiments.data import load_dataset
from sweeps.running.trial import TrialFailed, TrialRunner
from sweeps.spec.schema import load_spec
from tests.conftest import sweep_cli
from tests.sweeps.test_cli_run import TINY, trial_runs
from tracking import tags
from tracking.runs import SweepTracker

CONFIG = {"optimizer": "adam", "learning_rate": 0.01, "dropout": 0.1, "patience": 1}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_quickstart_runs_on_another_backend(backend: str, workdir: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (CI installs torch==2.13.0)")
    result = sweep_cli(
        "run", "quickstart", "--trials", "2", cwd=workdir, timeout=600, env={"KERAS_BACKEND": backend}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"devices: backend {backend} " in result.stdout
    assert "sweep quickstart: 2 complete" in result.stdout

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = trial_runs(client, "quickstart")
    assert len(runs) == 2
    for run in runs:
        assert run.data.params["backend"] == backend
        assert run.data.params["mixed_precision"] == "False"
        assert run.data.params["jit_compile"] == "auto"
        assert "system/cpu_utilization_percentage" in run.data.metrics
        assert "system/system_memory_usage_megabytes" in run.data.metrics
    # A checkpoint written under this backend loads back here (TensorFlow), as reports load it.
    best = max(runs, key=lambda r: r.data.metrics["best_val_accuracy"])
    path = client.download_artifacts(best.info.run_id, "checkpoint/best.keras", str(tmp_path))
    model = keras.saving.load_model(path)
    data = load_dataset("digits", validation_split=0.2, seed=42)
    _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
    assert accuracy == pytest.approx(best.data.metrics["best_val_accuracy"], abs=1e-4)


def _runner(uri: str, **train: object) -> tuple[TrialRunner, SweepTracker]:
    spec = load_spec({**TINY, "name": "gpu-features", "train": {"epochs": 1, "batch_size": 64, **train}})
    data = load_dataset("digits", validation_split=0.25, seed=7, train_size=300)
    tracker = SweepTracker(uri, spec.name)
    tracker.open({"engine.name": "optuna"}, spec.to_yaml())
    return TrialRunner(spec, data, tracker), tracker


def test_mixed_precision_and_jit_compile_are_logged_and_keep_a_float32_output(
    tracking_uri: str, tmp_path: Path
) -> None:
    runner, tracker = _runner(tracking_uri, mixed_precision=True, jit_compile=True)
    outcome = runner(0, CONFIG)
    tracker.close()
    client = MlflowClient(tracking_uri)
    params = client.get_run(outcome.run_id).data.params
    assert params["mixed_precision"] == "True" and params["jit_compile"] == "True"
    assert params["backend"] == keras.backend.backend()
    path = client.download_artifacts(outcome.run_id, "checkpoint/best.keras", str(tmp_path))
    model = keras.saving.load_model(path)
    assert model.get_layer("hidden").dtype_policy.name == "mixed_float16"
    assert model.get_layer("output").dtype_policy.name == "float32"
    assert model.outputs[0].dtype == "float32"


class RunOutOfMemory(keras.callbacks.Callback):
    """What a GPU does to a batch too large for it: TensorFlow's ResourceExhaustedError."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,4096]")


def test_out_of_memory_fails_the_trial_not_the_sweep(tracking_uri: str) -> None:
    runner, tracker = _runner(tracking_uri)
    with pytest.raises(TrialFailed) as failed:
        runner(0, CONFIG, [RunOutOfMemory()])
    assert failed.value.reason == "out_of_memory"
    after = runner(1, CONFIG)  # the same process trains the next trial
    tracker.close()
    client = MlflowClient(tracking_uri)
    first, second = trial_runs(client, "gpu-features")
    assert first.info.status == "FAILED"
    assert first.data.tags[tags.REASON] == "out_of_memory"
    assert "ResourceExhaustedError: OOM when allocating" in first.data.tags[tags.ERROR]
    assert second.info.run_id == after.run_id and second.info.status == "FINISHED"


@pytest.mark.slow
def test_gpu_benchmark_runs_on_a_cpu_with_tiny_arrays(tmp_path: Path) -> None:
    """bench/gpu.py end to end (one case, in its own process, as on a GPU), minus the sizes."""
    import json
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    root = Path(__file__).resolve().parent.parent
    command = [
        sys.executable,
        str(root / "bench" / "gpu.py"),
        "--tiny",
        "--models",
        "mlp",
        "--batches",
        "32",
        "--mixed",
        "on",
        "--epochs",
        "2",
        "--overhead-repeats",
        "0",
        "--fused-repeats",
        "0",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "devices: backend " in result.stdout and "| mlp | 32 | on |" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["tiny"] is True and figures["overhead"] is None and figures["fused"] is None
    (case,) = figures["cases"]
    assert case["mixed_precision"] is True and case["epochs"] == 2
    assert case["epoch_s"] > 0 and case["samples_per_s"] > 0 and case["utilization_samples"] >= 1
    assert (case["gpu_util_mean"] is None) == (figures["machine"]["gpu"] is None)
