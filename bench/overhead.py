"""What sweeplab costs on top of plain `model.fit`, and what the hand-written peer costs.

The same fixed configs are trained three ways, each in a fresh process so that imports
and warm-up are paid alike:

  plain     a plain Keras loop: build, compile (steps_per_execution 32, as a sweep's "auto"
            resolves here), fit with EarlyStopping(restore_best_weights) and a best-only
            ModelCheckpoint, as the seeds do; nothing recorded
  plain-tfdata  the same loop fed the tf.data pipeline a sweep builds on TensorFlow (shuffled,
            batched, prefetched; validation cached): sweeplab/plain-tfdata is the framework's
            cost alone, sweeplab/plain what a user of the seeds' loop gains or pays
  sweeplab  `run_sweep` (what `sweep run` calls) with full tracking to a SQLite MLflow store:
            params, per-epoch metrics, history.csv, curves.png, the checkpoint, summaries,
            and the best model logged once on the parent run
  peer      Optuna + optuna_integration.MLflowCallback + mlflow.keras.autolog()

Data: scikit-learn's digits upscaled to 28x28, 4,800 training and 1,200 validation images
(small random shifts make up the count), written to an .npz and loaded through `npz:PATH`.
Timed per trial, from the start of the first trial to the end of the last (imports, data
loading and study/experiment creation are outside); the once-per-sweep cost of logging the
best model is reported apart.

`--process` times whole processes instead, from exec to exit: `python -m sweeps run` of a
grid spec over twelve configs (the six optimizers at two learning rates) into a new SQLite
store, against a plain Keras loop script over the same configs, data and epochs. Imports,
store creation, data loading and the best model's logging are all inside. Run:

    python bench/overhead.py                 # 6 configs (the six optimizers), 3 epochs, 3 repeats
    python bench/overhead.py --repeats 1 --modes plain sweeplab
    python bench/overhead.py --process --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]
EPOCHS, BATCH, LEARNING_RATE, DROPOUT, PATIENCE, UNITS = 3, 32, 0.01, 0.2, 2, 100
# What a sweep compiles with here (train.steps_per_execution "auto"), so that both loops run
# the same steps per call into Keras and the ratio is the framework's cost alone.
STEPS_PER_EXECUTION = 32


def make_data(path: Path, seed: int = 0) -> None:
    """Digits upscaled to 28x28; shifted copies bring the count to 6,000 (4,800 + 1,200)."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((4, 4)))[:, 2:30, 2:30]  # 32x32 -> 28x28
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(images), 6000)
    shifts = rng.integers(-2, 3, size=(6000, 2))
    x = np.stack([np.roll(images[i], tuple(s), axis=(0, 1)) for i, s in zip(index, shifts, strict=True)])
    x = x[..., None].astype("float32")
    y = digits.target[index].astype("int64")
    np.savez(path, x_train=x[:4800], y_train=y[:4800], x_val=x[4800:], y_val=y[4800:])


def configs() -> list[dict]:
    return [
        {"optimizer": o, "learning_rate": LEARNING_RATE, "dropout": DROPOUT, "patience": PATIENCE}
        for o in OPTIMIZERS
    ]


def spec(data: Path, name: str) -> dict:
    return {
        "name": name,
        "dataset": {"name": f"npz:{data}"},
        "model": {"name": "mlp", "units": UNITS},
        "train": {"epochs": EPOCHS, "batch_size": BATCH, "monitor": "val_loss"},
        "objective": {"metric": "val_accuracy"},
        "space": {
            "optimizer": {"choices": OPTIMIZERS},
            "learning_rate": LEARNING_RATE,
            "dropout": DROPOUT,
            "patience": PATIENCE,
        },
        "engine": {"name": "optuna", "sampler": "grid", "seed": 0},
        "budget": {"trials": len(OPTIMIZERS)},
    }


def plain_fit(config: dict, data: Any, workdir: Path, tf_data: bool = False) -> dict[str, list[float]]:
    """One trial the seeds' way: build, compile, fit with EarlyStopping and a best-only checkpoint
    (on the arrays, or with `tf_data` on the tf.data pipeline a sweep builds)."""
    import keras

    from experiments.models import build_model
    from experiments.optimizers import make_optimizer

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = build_model("mlp", (28, 28, 1), 10, dropout=config["dropout"], units=UNITS)
    model.compile(
        optimizer=make_optimizer(config["optimizer"], config["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    if tf_data:  # the pipeline a sweep feeds on TensorFlow (experiments.training._fit_data)
        import tensorflow as tf

        n = len(data["y_train"])
        feed = {
            "x": tf.data.Dataset.from_tensor_slices((data["x_train"], data["y_train"]))
            .shuffle(n, seed=0, reshuffle_each_iteration=True)
            .batch(BATCH)
            .prefetch(tf.data.AUTOTUNE),
            "validation_data": tf.data.Dataset.from_tensor_slices((data["x_val"], data["y_val"]))
            .batch(BATCH)
            .cache()
            .prefetch(tf.data.AUTOTUNE),
        }
    else:
        feed = {
            "x": data["x_train"],
            "y": data["y_train"],
            "batch_size": BATCH,
            "validation_data": (data["x_val"], data["y_val"]),
        }
    history = model.fit(
        **feed,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping("val_loss", patience=config["patience"], restore_best_weights=True),
            keras.callbacks.ModelCheckpoint(str(workdir / "best.keras"), "val_loss", save_best_only=True),
        ],
    )
    return history.history


def run_plain(data_path: Path, workdir: Path, tf_data: bool = False) -> dict:
    import keras  # noqa: F401  (imported before the clock starts, as in the other modes)
    import numpy as np

    data = np.load(data_path)
    times = []
    for config in configs():
        start = time.perf_counter()
        plain_fit(config, data, workdir, tf_data)
        times.append(time.perf_counter() - start)
    return {"trials": times}


def run_plain_tf_data(data_path: Path, workdir: Path) -> dict:
    return run_plain(data_path, workdir, tf_data=True)


def run_sweeplab(data_path: Path, workdir: Path) -> dict:
    from sweeps.running.runner import run_sweep
    from sweeps.running.trial import TrialRunner
    from sweeps.spec.schema import parse_spec

    times: list[float] = []
    original = TrialRunner.__call__

    def timed(self, number, config, *args, **kwargs):  # the sweep's per-trial wall time
        start = time.perf_counter()
        try:
            return original(self, number, config, *args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    TrialRunner.__call__ = timed
    os.chdir(workdir)
    start = time.perf_counter()
    result = run_sweep(parse_spec(spec(data_path, "bench")), tracking_uri=f"sqlite:///{workdir}/mlflow.db")
    total = time.perf_counter() - start
    assert sum(result.counts.values()) == len(OPTIMIZERS), result.counts
    return {"trials": times, "sweep_total": total}


def run_peer(data_path: Path, workdir: Path) -> dict:
    import keras  # noqa: F401  (imported before the clock starts, as in the other modes)
    import mlflow
    import numpy as np
    import optuna
    from optuna_integration import MLflowCallback

    data = np.load(data_path)
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    mlflow.keras.autolog()
    callback = MLflowCallback(
        tracking_uri=f"sqlite:///{workdir}/mlflow.db",
        metric_name="val_accuracy",
        mlflow_kwargs={"nested": False},
    )
    by_optimizer = {c["optimizer"]: c for c in configs()}
    times: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        config = by_optimizer[trial.suggest_categorical("optimizer", OPTIMIZERS)]
        return max(plain_fit(config, data, workdir)["val_accuracy"])

    def timed(trial: optuna.Trial) -> float:
        start = time.perf_counter()
        try:
            return objective(trial)
        finally:
            times.append(time.perf_counter() - start)

    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.GridSampler({"optimizer": OPTIMIZERS})
    )
    started = [0.0]

    def clock(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        # MLflowCallback's own logging happens after the objective: count it in the trial.
        times[-1] += time.perf_counter() - started[0]

    def timed_with_callback(trial: optuna.Trial) -> float:
        value = timed(trial)
        started[0] = time.perf_counter()
        return value

    study.optimize(timed_with_callback, n_trials=len(OPTIMIZERS), callbacks=[callback, clock])
    return {"trials": times}


MODES = {"plain": run_plain, "plain-tfdata": run_plain_tf_data, "sweeplab": run_sweeplab, "peer": run_peer}
PROCESS_RATES = (0.01, 0.05)  # `--process`: the six optimizers at each of these learning rates

PLAIN_PROCESS = """
import sys, numpy as np, keras
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from overhead import plain_fit
from pathlib import Path
data = np.load({data!r})
for config in {configs!r}:
    plain_fit(config, data, Path({workdir!r}))
"""


def process_configs() -> list[dict]:
    return [{**config, "learning_rate": rate} for rate in PROCESS_RATES for config in configs()]


def process_spec(data: Path) -> dict:
    out = spec(data, "bench-process")
    out["space"]["learning_rate"] = {"choices": list(PROCESS_RATES)}
    out["budget"] = {"trials": len(process_configs())}
    return out


def time_process(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{command[:4]} failed:\n{out.stderr[-3000:]}")
    return elapsed


def run_processes(data_path: Path, tmp: Path, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of whole processes, the two ways interleaved over repeats."""
    import yaml

    times: dict[str, list[float]] = {"plain": [], "sweeplab": []}
    for repeat in range(repeats):
        workdir = tmp / f"process-{repeat}"
        workdir.mkdir()
        script = PLAIN_PROCESS.format(
            root=str(ROOT),
            bench=str(ROOT / "bench"),
            data=str(data_path),
            configs=process_configs(),
            workdir=str(workdir),
        )
        times["plain"].append(time_process([sys.executable, "-c", script], workdir))
        (workdir / "spec.yaml").write_text(yaml.safe_dump(process_spec(data_path)))
        times["sweeplab"].append(time_process([sys.executable, "-m", "sweeps", "run", "spec.yaml"], workdir))
    return times


def machine_line() -> str:
    """The CPU and the versions of what is timed, so that a table says what it was measured on."""
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ("tensorflow", "keras", "mlflow", "optuna", "pandas", "matplotlib")
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions}"


def child(mode: str, data_path: str, workdir: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    print(json.dumps(MODES[mode](Path(data_path), Path(workdir))))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--process", action="store_true", help="time whole processes (see above)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    print(machine_line())
    if args.process:
        with tempfile.TemporaryDirectory() as tmp:
            data_path = Path(tmp) / "digits28.npz"
            make_data(data_path)
            times = run_processes(data_path, Path(tmp), args.repeats)
        print(
            f"whole processes: {len(process_configs())} configs x {EPOCHS} epochs, MLP({UNITS}) on 4,800 "
            f"digits at 28x28, batch {BATCH}, {args.repeats} repeat(s)"
        )
        for mode, values in times.items():
            runs = ", ".join(f"{v:.1f}" for v in values)
            print(f"  {mode:9s} {statistics.mean(values):6.2f} s (runs: {runs})")
        ratio = statistics.mean(times["sweeplab"]) / statistics.mean(times["plain"])
        print(f"  ratio sweep run / plain process: {ratio:.3f}x")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "digits28.npz"
        make_data(data_path)
        results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
        for repeat in range(args.repeats):
            for mode in args.modes:  # interleaved, so drift hits every mode alike
                workdir = Path(tmp) / f"{mode}-{repeat}"
                workdir.mkdir()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(data_path), str(workdir)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode != 0:
                    sys.exit(f"{mode} failed:\n{out.stderr[-3000:]}")
                results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{len(OPTIMIZERS)} configs x {EPOCHS} epochs, MLP({UNITS}) on 4,800 digits at 28x28, "
        f"batch {BATCH}, {args.repeats} repeat(s), {os.cpu_count()} CPU cores"
    )
    per_trial = {}
    for mode, runs in results.items():
        # The first trial of each process pays graph tracing and warm-up; it is kept (all modes pay it).
        trial_times = [t for run in runs for t in run["trials"]]
        per_trial[mode] = statistics.mean(trial_times)
        extra = ""
        if mode == "sweeplab":
            totals = [run["sweep_total"] for run in runs]
            extra = f"  (whole run_sweep incl. setup and best-model logging: {statistics.mean(totals):.2f} s)"
        median = statistics.median(trial_times)
        print(f"  {mode:12s} {per_trial[mode]:6.2f} s per trial (median {median:.2f}){extra}")
    for base in ("plain", "plain-tfdata"):
        if base in per_trial:
            for mode in ("sweeplab", "peer"):
                if mode in per_trial:
                    print(f"  ratio {mode}/{base}: {per_trial[mode] / per_trial[base]:.3f}x")


if __name__ == "__main__":
    main()
