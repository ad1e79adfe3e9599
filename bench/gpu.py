"""Seconds per epoch, GPU utilization and mixed precision on a GPU, on any Keras backend.

Two workloads on random arrays of the real shapes, split as the built-in specs split them:

  mlp      the seeds' MLP (Flatten-Dense(100)-Dropout-softmax) at Fashion-MNIST size:
           60,000 x 28 x 28 x 1 (48,000 train + 12,000 validation, fashion_mnist_optimizers)
  alexnet  AlexNet on CIFAR-10-size input: 50,000 x 32 x 32 x 3 (45,000 + 5,000), resized
           inside the model to 227 x 227 as cifar10_alexnet does (--alexnet-input-size)

each at batch 32 and 256, mixed precision off and on, trained by `experiments.train` (what
a sweep trial runs: EarlyStopping, TerminateOnNaN; no checkpoint). Per case: the first
epoch (tracing/compiling included), the median of the later epochs, samples per second,
and GPU utilization and memory sampled every 0.2 s during the later epochs through the
same MLflow monitors that trial runs log (CPU utilization where there is no GPU). Then
`bench/overhead.py` gives the sweep-vs-plain-loop ratio on the same machine.

Then `bench/fused.py` (the same configs as a plain Keras loop, a sweep one trial at a time and
fused sweeps of K trials, against the raw stacked step) at Fashion-MNIST size on this machine.

Each case runs in a fresh process (GPU memory is per process; TensorFlow is told to grow
its memory and JAX not to preallocate, so the memory figures mean what the model used).
The backend is Keras's: set KERAS_BACKEND=jax or torch where TensorFlow is not installed.

    python bench/gpu.py                                   # everything, ~15 min on one GPU
    python bench/gpu.py --models mlp --batches 256 --epochs 4
    python bench/gpu.py --tiny --same-process --overhead-repeats 0   # a CPU smoke test
    python bench/gpu.py --out bench/results/gpu-h100-tensorflow.json
    python bench/gpu.py --models mlp --batches 32 --fused-ks 1 8 16 32 --fused-workloads b
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INTERVAL_S = 0.2


@dataclass(frozen=True)
class Workload:
    model: str
    train: int
    val: int
    shape: tuple[int, ...]
    options: dict


def workloads(tiny: bool, alexnet_input_size: int) -> dict[str, Workload]:
    if tiny:  # seconds on a CPU: checks that everything runs, measures nothing
        return {
            "mlp": Workload("mlp", 512, 128, (28, 28, 1), {"units": 100}),
            "alexnet": Workload("alexnet", 128, 32, (32, 32, 3), {"input_size": 67, "width": 0.05}),
        }
    return {
        "mlp": Workload("mlp", 48_000, 12_000, (28, 28, 1), {"units": 100}),
        "alexnet": Workload("alexnet", 45_000, 5_000, (32, 32, 3), {"input_size": alexnet_input_size}),
    }


# --- one case, in this process ---------------------------------------------------------------


def run_case(work: Workload, batch: int, mixed: bool, epochs: int, jit: str) -> dict:
    """Train one case with `experiments.train` and return its figures."""
    import keras
    import numpy as np

    from experiments.backends import backend_name
    from experiments.data import Dataset
    from experiments.training import TrainConfig, train
    from tracking.system_metrics import SystemMetricsSampler

    rng = np.random.default_rng(0)
    x = rng.random((work.train + work.val, *work.shape), dtype=np.float32)
    y = rng.integers(0, 10, work.train + work.val).astype(np.int32)
    data = Dataset(
        "random", x[: work.train], y[: work.train], x[work.train :], y[work.train :], None, None, 10
    )

    samples: list[dict[str, float]] = []
    sampler = SystemMetricsSampler(lambda m, step: samples.append(m), interval=SAMPLE_INTERVAL_S, log_every=1)

    class Clock(keras.callbacks.Callback):
        """Epoch wall times; samples utilization from the second epoch on (after compiling)."""

        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self.jit: object = None

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()
            if epoch == min(1, epochs - 1):  # the first epoch compiles: sample from the second
                sampler.start()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append(time.perf_counter() - self.start)
            self.jit = getattr(self.model, "jit_compile", None)

    clock = Clock()
    jit_compile: bool | str = {"auto": "auto", "true": True, "false": False}[jit]
    config = TrainConfig(
        model=work.model,
        optimizer="momentum",
        learning_rate=1e-3,
        epochs=epochs,
        patience=epochs,
        batch_size=batch,
        mixed_precision=mixed,
        jit_compile=jit_compile,
        model_options=work.options,
    )
    started = time.perf_counter()
    try:
        result = train(config, data, [clock])
    finally:
        sampler.stop()
    total = time.perf_counter() - started
    later = clock.seconds[1:] or clock.seconds
    epoch_s = statistics.median(later)

    def series(key: str) -> list[float]:
        return [s[key] for s in samples if key in s]

    gpu_util, gpu_mem = (
        series("system/gpu_0_utilization_percentage"),
        series("system/gpu_0_memory_usage_megabytes"),
    )
    cpu_util = series("system/cpu_utilization_percentage")
    return {
        "model": work.model,
        "batch": batch,
        "mixed_precision": mixed,
        "jit_compile": clock.jit,
        "backend": backend_name(),
        "train_samples": work.train,
        "val_samples": work.val,
        "input_shape": list(work.shape),
        "epochs": result.epochs_run,
        "first_epoch_s": round(clock.seconds[0], 3),
        "epoch_s": round(epoch_s, 3),
        "samples_per_s": round(work.train / epoch_s, 1),
        "fit_s": round(total, 2),
        "gpu_util_mean": round(statistics.mean(gpu_util), 1) if gpu_util else None,
        "gpu_util_max": max(gpu_util) if gpu_util else None,
        "gpu_mem_max_mb": round(max(gpu_mem)) if gpu_mem else None,
        "cpu_util_mean": round(statistics.mean(cpu_util), 1) if cpu_util else None,
        "utilization_samples": len(samples),
        "final_loss": round(result.history["loss"][-1], 4),
    }


# --- the parent: cases in child processes, the overhead ratio, the report ---------------------


def child_env() -> dict[str, str]:
    """Memory figures that mean what the model used: no allocate-everything-up-front."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def overhead(repeats: int) -> dict | None:
    """bench/overhead.py's plain-vs-sweeplab figures, run on this machine and backend."""
    if repeats < 1:
        return None
    command = [
        sys.executable,
        str(ROOT / "bench" / "overhead.py"),
        "--repeats",
        str(repeats),
        "--modes",
        "plain",
        "sweeplab",
    ]
    out = subprocess.run(command, capture_output=True, text=True, env=child_env(), check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    figures: dict[str, float | str] = {"output": out.stdout.strip()}
    for mode in ("plain", "sweeplab"):
        found = re.search(rf"^\s*{mode}\s+([\d.]+) s per trial", out.stdout, re.MULTILINE)
        if found:
            figures[f"{mode}_s_per_trial"] = float(found.group(1))
    ratio = re.search(r"ratio sweeplab/plain: ([\d.]+)x", out.stdout)
    if ratio:
        figures["ratio"] = float(ratio.group(1))
    return figures


def fused(repeats: int, ks: list[int], workloads: list[str], train: int, val: int) -> dict | None:
    """bench/fused.py on this machine: trials per minute, plain loop vs solo vs fused K."""
    if repeats < 1:
        return None
    command = [sys.executable, str(ROOT / "bench" / "fused.py"), "--repeats", str(repeats), "--ks"]
    command += [str(k) for k in ks] + ["--workloads", *workloads]
    command += ["--train-size", str(train), "--val-size", str(val)]
    out = subprocess.run(command, capture_output=True, text=True, env=child_env(), check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return {"command": " ".join(command[1:]), "output": out.stdout.strip()}


def describe_machine() -> dict:
    from sweeps.running.devices import device_line, discover

    found = discover()
    return {
        "devices": device_line(found),
        "backend": found.backend,
        "backend_version": found.backend_version,
        "gpu": found.usable_gpus[0].name if found.usable_gpus else None,
        "cpu_cores": found.cpu_count,
        "python": platform.python_version(),
        "keras": _version("keras"),
        "date": time.strftime("%Y-%m-%d"),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def summary(case: dict) -> str:
    if "error" in case:
        return f"failed: {case['error']}"
    use = (
        f"GPU util {case['gpu_util_mean']} %"
        if case["gpu_util_mean"] is not None
        else f"no GPU, CPU util {case['cpu_util_mean']} %"
    )
    return f"{case['epoch_s']:.2f} s/epoch (first {case['first_epoch_s']:.2f} s), {use}"


def table(cases: list[dict]) -> str:
    lines = [
        "| model | batch | mixed precision | jit | first epoch s | epoch s | samples/s "
        "| GPU util % (mean/max) | GPU mem MB | CPU util % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        if "error" in c:
            lines.append(
                f"| {c['model']} | {c['batch']} | {c['mixed_precision']} | | failed: {c['error'][:80]} |"
            )
            continue
        util = "-" if c["gpu_util_mean"] is None else f"{c['gpu_util_mean']:.0f} / {c['gpu_util_max']:.0f}"
        lines.append(
            f"| {c['model']} | {c['batch']} | {'on' if c['mixed_precision'] else 'off'} | {c['jit_compile']} "
            f"| {c['first_epoch_s']:.2f} | {c['epoch_s']:.2f} | {c['samples_per_s']:,.0f} | {util} "
            f"| {c['gpu_mem_max_mb'] if c['gpu_mem_max_mb'] is not None else '-'} "
            f"| {c['cpu_util_mean'] if c['cpu_util_mean'] is not None else '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["mlp", "alexnet"], choices=["mlp", "alexnet"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--mixed", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--epochs", type=int, default=3, help="the first is reported apart (compiling)")
    parser.add_argument("--jit", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--alexnet-input-size", type=int, default=227)
    parser.add_argument(
        "--overhead-repeats", type=int, default=3, help="bench/overhead.py repeats; 0 skips it"
    )
    parser.add_argument("--fused-repeats", type=int, default=1, help="bench/fused.py repeats; 0 skips it")
    parser.add_argument("--fused-ks", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--fused-workloads", nargs="+", default=["b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--tiny", action="store_true", help="tiny arrays: a smoke test that runs on a CPU")
    parser.add_argument(
        "--same-process", action="store_true", help="all cases in this process (faster start)"
    )
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    works = workloads(args.tiny, args.alexnet_input_size)
    sys.path.insert(0, str(ROOT))

    if args.child:  # one case, from the parent below
        model, batch, mixed = args.child.split(",")
        print(json.dumps(run_case(works[model], int(batch), mixed == "on", args.epochs, args.jit)))
        return

    os.environ.update({k: v for k, v in child_env().items() if k not in os.environ})
    machine = describe_machine()
    print(f"devices: {machine['devices']}", flush=True)
    cases: list[dict] = []
    for model in args.models:
        for batch in args.batches:
            for mixed in args.mixed:
                if args.same_process:
                    case = run_case(works[model], batch, mixed == "on", args.epochs, args.jit)
                else:
                    command = [
                        sys.executable,
                        __file__,
                        "--child",
                        f"{model},{batch},{mixed}",
                        "--epochs",
                        str(args.epochs),
                        "--jit",
                        args.jit,
                        "--alexnet-input-size",
                        str(args.alexnet_input_size),
                    ] + (["--tiny"] if args.tiny else [])
                    out = subprocess.run(
                        command, capture_output=True, text=True, env=child_env(), check=False
                    )
                    if out.returncode != 0:  # e.g. out of memory at this batch size: report it, go on
                        error = (out.stderr.strip().splitlines() or ["no output"])[-1]
                        case = {
                            "model": model,
                            "batch": batch,
                            "mixed_precision": mixed == "on",
                            "error": error,
                        }
                    else:
                        case = json.loads(out.stdout.strip().splitlines()[-1])
                cases.append(case)
                print(f"  {model} batch {batch} mixed precision {mixed}: {summary(case)}", flush=True)
    print()
    print(table(cases))
    ratio = overhead(args.overhead_repeats)
    if ratio is not None:
        print()
        print("bench/overhead.py on this machine:")
        print(ratio.get("output", ratio.get("error")))
    # Fashion-MNIST size on a GPU; the tiny smoke test keeps bench/fused.py's CPU sizes.
    sizes = (2400, 600) if args.tiny else (48_000, 12_000)
    packs = fused(args.fused_repeats, args.fused_ks, args.fused_workloads, *sizes)
    if packs is not None:
        print()
        print("bench/fused.py on this machine:")
        print(packs.get("output", packs.get("error")))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "tiny": args.tiny,
                    "epochs": args.epochs,
                    "cases": cases,
                    "overhead": ratio,
                    "fused": packs,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
