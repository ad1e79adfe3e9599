"""Trials per minute with fused trials (`train.fuse: K`) against one trial at a time.

Three workloads, each a fixed list of configs (the six optimizers x learning rates, dropout 0,
patience 2, EarlyStopping on val_loss), trained four ways, each in a fresh process, the ways
interleaved within every repeat so that the shared machine's drift hits them alike:

  plain     a plain Keras loop: build, compile, fit on the arrays with EarlyStopping
            (restore_best_weights) and a best-only ModelCheckpoint, one trial after another
  solo      `run_sweep` (what `sweep run` calls), full MLflow tracking to SQLite, fuse 1
  fused K   the same sweep with `train.fuse: K` (K = 2, 4, 6, 8, 12)
  raw K     the ceiling: a raw TensorFlow training step of K stacked models of the workload's
            shape (stacked kernels, batched matmul or einsum, a grouped convolution for the cnn;
            plain SGD; no Keras), timed per step on the workload's batches

Workloads (digits from scikit-learn, no download):

  a  the quickstart: MLP(100) on the 8x8 digits (1,437 + 360), batch 32, 10 epochs
  b  the seeds' MLP(100) at batch 32 on 28x28 inputs (the digits upscaled as bench/overhead.py
     does: 4,800 + 1,200), 5 epochs
  c  the built-in `cnn` (filters [32, 64], units 100) on the same 28x28 digits (2,400 + 600),
     12 configs, 3 epochs

Training time only: for plain the build-compile-fit of each trial, for the sweeps the time
spent in the engine's loop (`Sweep.work`: asking, training, recording, telling), not opening
the stores, loading data or closing the sweep. The ceiling is the issue's: K trials' steps
in one raw stacked step against plain fit's step (the training part of its later epochs), so
"fused / ceiling" is the fraction of what the machine allows that the fused sweep reaches. The
largest |delta val accuracy| compares every epoch of every config, fused against solo (1.0 when
a config ran a different number of epochs). CPU time (all threads of the process) is printed
beside the wall clock: on a shared machine it moves less with the other processes' load.

    python bench/fused.py                                  # everything, one repeat (~25 min on 2 cores)
    python bench/fused.py --workloads b --ks 6 12          # a subset
    python bench/fused.py --workloads a --configs 12 --epochs 3 --repeats 2
    python bench/fused.py --workloads b --train-size 48000 --val-size 12000   # Fashion-MNIST size (GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]
LEARNING_RATES = [0.001, 0.003, 0.01, 0.03]
KS = [1, 2, 4, 6, 8, 12]


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    model: dict
    image: bool  # 28x28 digits (else the 8x8 digits as the quickstart loads them)
    train: int
    val: int
    epochs: int
    configs: int
    batch: int = 32


WORKLOADS = {
    "a": Workload(
        "a", "quickstart MLP(100), 8x8 digits", {"name": "mlp", "units": 100}, False, 1437, 360, 10, 24
    ),
    "b": Workload(
        "b", "seeds' MLP(100), 28x28, batch 32", {"name": "mlp", "units": 100}, True, 4800, 1200, 5, 24
    ),
    "c": Workload(
        "c",
        "cnn [32, 64] + 100, 28x28",
        {"name": "cnn", "filters": [32, 64], "units": 100},
        True,
        2400,
        600,
        3,
        12,
    ),
}


def configs(work: Workload) -> list[dict]:
    per_optimizer = max(1, work.configs // len(OPTIMIZERS))
    rates = LEARNING_RATES[:per_optimizer] if per_optimizer < len(LEARNING_RATES) else LEARNING_RATES
    return [
        {"optimizer": o, "learning_rate": lr, "dropout": 0.0, "patience": 2}
        for o in OPTIMIZERS
        for lr in rates
    ][: work.configs]


def make_data(work: Workload, path: Path) -> None:
    """The workload's arrays as an .npz: the 8x8 digits split as the quickstart splits them, or
    digits upscaled to 28x28 with shifted copies (bench/overhead.py's recipe) at the asked sizes."""
    import numpy as np
    from sklearn.datasets import load_digits

    if not work.image:
        sys.path.insert(0, str(ROOT))
        from experiments.data import load_dataset

        data = load_dataset("digits", validation_split=0.2, seed=42)
        np.savez(path, x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val)
        return
    digits = load_digits()
    images = np.kron(digits.images / 16.0, np.ones((4, 4)))[:, 2:30, 2:30]
    n = work.train + work.val
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(images), n)
    shifts = rng.integers(-2, 3, size=(n, 2))
    x = np.stack([np.roll(images[i], tuple(s), axis=(0, 1)) for i, s in zip(index, shifts, strict=True)])
    x = x[..., None].astype("float32")
    y = digits.target[index].astype("int64")
    np.savez(
        path, x_train=x[: work.train], y_train=y[: work.train], x_val=x[work.train :], y_val=y[work.train :]
    )


# --- the modes, each run in its own process ---------------------------------------------------


def run_plain(work: Workload, data_path: Path, workdir: Path) -> dict:
    import keras
    import numpy as np

    from experiments.models import build_model
    from experiments.optimizers import make_optimizer

    data = np.load(data_path)
    options = {k: v for k, v in work.model.items() if k != "name"}
    seconds, cpu, histories, step_ms = 0.0, 0.0, [], []
    steps = -(-len(data["y_train"]) // work.batch)

    class StepClock(keras.callbacks.Callback):
        """The training part of each epoch after the first (no validation, no tracing)."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter() if epoch > 0 else None

        def on_test_begin(self, logs: dict | None = None) -> None:
            if self.start is not None:
                step_ms.append(1000 * (time.perf_counter() - self.start) / steps)
                self.start = None

    for config in configs(work):
        start, start_cpu = time.perf_counter(), time.process_time()
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build_model(work.model["name"], data["x_train"].shape[1:], 10, dropout=0.0, **options)
        model.compile(
            optimizer=make_optimizer(config["optimizer"], config["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(
            data["x_train"],
            data["y_train"],
            batch_size=work.batch,
            epochs=work.epochs,
            verbose=0,
            validation_data=(data["x_val"], data["y_val"]),
            callbacks=[
                keras.callbacks.EarlyStopping(
                    "val_loss", patience=config["patience"], restore_best_weights=True
                ),
                keras.callbacks.ModelCheckpoint(str(workdir / "best.keras"), "val_loss", save_best_only=True),
                StepClock(),
            ],
        )
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        histories.append(fit.history["val_accuracy"])
    return {
        "seconds": seconds,
        "cpu": cpu,
        "val_accuracy": histories,
        "ms_per_step": statistics.median(step_ms),
    }


def sweep_spec(work: Workload, data_path: Path, fuse: int) -> dict:
    return {
        "name": "bench",
        "dataset": {"name": f"npz:{data_path}"},
        "model": work.model,
        "train": {"epochs": work.epochs, "batch_size": work.batch, "monitor": "val_loss", "fuse": fuse},
        "objective": {"metric": "val_accuracy"},
        # Learning rate first: the grid then runs learning rate by learning rate, each pack
        # holding the six optimizers, as packs of a TPE or random search hold several.
        "space": {
            "learning_rate": {"choices": sorted({c["learning_rate"] for c in configs(work)})},
            "optimizer": {"choices": OPTIMIZERS},
            "dropout": 0.0,
            "patience": 2,
        },
        "engine": {"name": "optuna", "sampler": "grid", "seed": 0},
        "budget": {"trials": len(configs(work))},
    }


def run_sweeplab(work: Workload, data_path: Path, workdir: Path, fuse: int) -> dict:
    """A real sweep; the grid holds exactly `configs(work)` (a product of the same lists)."""
    from sweeps.running.runner import Sweep, load_data
    from sweeps.running.trial import TrialRunner
    from sweeps.spec.schema import parse_spec

    results: dict[tuple, Any] = {}
    original = TrialRunner.record

    def record(self, recorder, number, config, result, pruning, started):
        results[(config["optimizer"], float(config["learning_rate"]))] = result
        return original(self, recorder, number, config, result, pruning, started)

    TrialRunner.record = record
    os.chdir(workdir)
    spec = parse_spec(sweep_spec(work, data_path, fuse))
    data = load_data(spec)
    sweep = Sweep(spec, f"sqlite:///{workdir}/mlflow.db")
    start, start_cpu = time.perf_counter(), time.process_time()
    sweep.work(data)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    sweep.finish("FINISHED", "budget")
    ordered = [results[(c["optimizer"], c["learning_rate"])] for c in configs(work)]
    return {
        "seconds": seconds,
        "cpu": cpu,
        "val_accuracy": [r.history["val_accuracy"] for r in ordered],
        "epochs_run": [r.epochs_run for r in ordered],
    }


def run_raw(work: Workload, data_path: Path, workdir: Path, k: int) -> dict:
    """The ceiling: K stacked models of the workload's shape, one raw tf.function SGD step per call."""
    import numpy as np

    try:
        import tensorflow as tf
    except ImportError:  # a JAX- or PyTorch-only machine: no raw TensorFlow ceiling
        return {"ms_per_step": float("nan"), "cpu_ms_per_step": float("nan")}

    data = np.load(data_path)
    x = tf.constant(data["x_train"])
    y = tf.constant(data["y_train"].astype("int32"))
    batches = [
        (x[i : i + work.batch], y[i : i + work.batch]) for i in range(0, len(data["y_train"]), work.batch)
    ]
    best: tuple[float, float] | None = None
    for form in ("matmul", "einsum"):
        step = _raw_step(work, k, form, tuple(x.shape[1:]))
        for xb, yb in batches[:5]:
            step(xb, yb)
        timings = []
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            for xb, yb in batches:
                step(xb, yb)
            timings.append(
                (
                    (time.perf_counter() - start) / len(batches),
                    (time.process_time() - start_cpu) / len(batches),
                )
            )
        ms = min(timings)
        best = ms if best is None or ms[0] < best[0] else best
    return {"ms_per_step": 1000 * best[0], "cpu_ms_per_step": 1000 * best[1]}


def _raw_step(work: Workload, k: int, form: str, shape: tuple[int, ...]):
    import tensorflow as tf

    units, classes = work.model.get("units", 100), 10

    def var(*s):
        return tf.Variable(tf.random.normal(s, stddev=0.05))

    if work.model["name"] == "mlp":
        inputs = 1
        for d in shape:
            inputs *= d
        weights = [var(k, inputs, units), var(k, 1, units), var(k, units, classes), var(k, 1, classes)]
    else:
        f1, f2 = work.model["filters"]
        flat = (shape[0] // 4) * (shape[1] // 4) * f2
        weights = [var(3, 3, shape[2], k * f1), var(k * f1), var(3, 3, f1, k * f2), var(k * f2)]
        weights += [var(k, flat, units), var(k, 1, units), var(k, units, classes), var(k, 1, classes)]

    def dense(h, w, b, first=False):
        if form == "einsum":
            return tf.einsum("bi,kio->kbo" if first else "kbi,kio->kbo", h, w) + b
        if first:
            h = tf.broadcast_to(h[None], (k, *h.shape))
        return tf.matmul(h, w) + b

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            if work.model["name"] == "mlp":
                h = tf.nn.relu(dense(tf.reshape(xb, (-1, weights[0].shape[1])), weights[0], weights[1], True))
                out = dense(h, weights[2], weights[3])
            else:
                h = tf.nn.max_pool2d(
                    tf.nn.relu(tf.nn.conv2d(xb, weights[0], 1, "SAME") + weights[1]), 2, 2, "VALID"
                )
                # Each branch's own channels, one convolution each (a grouped tf.nn.conv2d has no
                # gradient on some CPUs; the two cost the same where both run, see StackedConv2D).
                own = zip(tf.split(h, k, axis=-1), tf.split(weights[2], k, axis=-1), strict=True)
                h = tf.concat([tf.nn.conv2d(x, w, 1, "SAME") for x, w in own], axis=-1)
                h = tf.nn.max_pool2d(tf.nn.relu(h + weights[3]), 2, 2, "VALID")
                b, hh, ww, _ = h.shape
                h = tf.reshape(
                    tf.transpose(tf.reshape(h, (-1, hh, ww, k, weights[2].shape[-1] // k)), (3, 0, 1, 2, 4)),
                    (k, -1, weights[4].shape[1]),
                )
                h = tf.nn.relu(dense(h, weights[4], weights[5]))
                out = dense(h, weights[6], weights[7])
            labels = tf.broadcast_to(yb[None], (k, tf.shape(yb)[0]))
            loss = tf.reduce_sum(
                tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, out), axis=1)
            )
        for w, g in zip(weights, tape.gradient(loss, weights), strict=True):
            w.assign_sub(0.01 * g)
        return loss

    return step


def child(mode: str, workload: str, k: int, data_path: str, workdir: str, overrides: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT))
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    work = replace(WORKLOADS[workload], **json.loads(overrides))
    path, folder = Path(data_path), Path(workdir)
    if mode == "plain":
        out = run_plain(work, path, folder)
    elif mode == "raw":
        out = run_raw(work, path, folder, k)
    else:
        out = run_sweeplab(work, path, folder, k)
    print(json.dumps(out))


# --- the parent ---------------------------------------------------------------------------------


def _run_child(mode: str, work: Workload, k: int, data: Path, tmp: Path, overrides: dict, tag: str) -> dict:
    workdir = tmp / f"{work.name}-{mode}-{k}-{tag}"
    workdir.mkdir()
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        work.name,
        str(k),
        str(data),
        str(workdir),
        json.dumps(overrides),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{work.name} {mode} K={k} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def largest_delta(fused: dict, solo: dict) -> float:
    worst = 0.0
    for a, b in zip(fused["val_accuracy"], solo["val_accuracy"], strict=True):
        worst = max([worst, *(abs(x - y) for x, y in zip(a, b, strict=False))])
        if len(a) != len(b):
            worst = max(worst, 1.0)  # a different epoch count is a different trial
    return worst


def measure(work: Workload, ks: list[int], repeats: int, overrides: dict, tmp: Path) -> list[dict]:
    data = tmp / f"{work.name}.npz"
    make_data(work, data)
    n = len(configs(work))
    runs: dict[str, list[dict]] = {}
    for repeat in range(repeats):
        plan = [("plain", 1), ("solo", 1)] + [("fused", k) for k in ks if k > 1] + [("raw", k) for k in ks]
        for mode, k in plan:  # interleaved: every repeat runs every mode once
            out = _run_child(mode if mode != "solo" else "fused", work, k, data, tmp, overrides, str(repeat))
            runs.setdefault(f"{mode}-{k}", []).append(out)
            label = f"{out['seconds']:.1f} s ({out['cpu']:.1f} s CPU)" if "seconds" in out else ""
            label += f" {out['ms_per_step']:.2f} ms/step" if "ms_per_step" in out else ""
            print(f"  [{work.name}] repeat {repeat} {mode} K={k}: {label}", file=sys.stderr, flush=True)

    def tpm(key: str, clock: str = "seconds") -> float:
        return 60 * n / statistics.mean(r[clock] for r in runs[key])

    solo = runs["solo-1"][0]
    plain_ms = statistics.mean(r["ms_per_step"] for r in runs["plain-1"])
    rows = []
    for k in ks:
        fused_key = "solo-1" if k == 1 else f"fused-{k}"
        raw_ms = statistics.mean(r["ms_per_step"] for r in runs[f"raw-{k}"])
        # The issue's ceiling: K trials' steps in one raw stacked step, against plain fit's step.
        ceiling = k * plain_ms / raw_ms
        rows.append(
            {
                "workload": work.name,
                "k": k,
                "plain_tpm": tpm("plain-1"),
                "solo_tpm": tpm("solo-1"),
                "fused_tpm": tpm(fused_key),
                "plain_cpu_tpm": tpm("plain-1", "cpu"),
                "fused_cpu_tpm": tpm(fused_key, "cpu"),
                "plain_ms_per_step": plain_ms,
                "raw_ms_per_step": raw_ms,
                "ceiling_speedup": ceiling,
                "max_delta_val_accuracy": max(largest_delta(r, solo) for r in runs[fused_key]),
            }
        )
    return rows


def table(work: Workload, rows: list[dict]) -> str:
    lines = [
        f"({work.name}) {work.title}: {len(configs(work))} configs, up to {work.epochs} epochs, "
        f"{work.train} + {work.val} samples; plain fit {rows[0]['plain_ms_per_step']:.2f} ms/step",
        "| K | trials/min plain | solo | fused | fused / plain | fused / solo | fused / plain, CPU time "
        "| raw ms/step | ceiling (K x plain step / raw step) | fused / ceiling | max abs delta val acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = r["fused_tpm"] / r["plain_tpm"]
        cells = [
            str(r["k"]),
            f"{r['plain_tpm']:.1f}",
            f"{r['solo_tpm']:.1f}",
            f"{r['fused_tpm']:.1f}",
            f"{speedup:.2f}x",
            f"{r['fused_tpm'] / r['solo_tpm']:.2f}x",
            f"{r['fused_cpu_tpm'] / r['plain_cpu_tpm']:.2f}x",
            f"{r['raw_ms_per_step']:.2f}",
            f"{r['ceiling_speedup']:.1f}x",
            f"{speedup / r['ceiling_speedup']:.2f}",
            f"{r['max_delta_val_accuracy']:.4f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--ks", nargs="+", type=int, default=KS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--configs", type=int, help="configs per workload (default: 24; 12 for c)")
    parser.add_argument("--epochs", type=int, help="epochs budget per trial (default: the workload's)")
    parser.add_argument("--train-size", type=int, help="28x28 workloads: training samples")
    parser.add_argument("--val-size", type=int, help="28x28 workloads: validation samples")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, workload, k, data, workdir, overrides = args.child
        child(mode, workload, int(k), data, workdir, overrides)
        return
    ks = sorted(set(args.ks) | {1})
    all_rows = []
    for name in args.workloads:
        overrides = {
            key: value
            for key, value in (
                ("configs", args.configs),
                ("epochs", args.epochs),
                ("train", args.train_size if WORKLOADS[name].image else None),
                ("val", args.val_size if WORKLOADS[name].image else None),
            )
            if value is not None
        }
        work = replace(WORKLOADS[name], **overrides)
        with tempfile.TemporaryDirectory() as tmp:
            rows = measure(work, ks, args.repeats, overrides, Path(tmp))
        all_rows += rows
        print(table(work, rows), flush=True)
        print(flush=True)
    print(f"{os.cpu_count()} CPU cores, {args.repeats} repeat(s), modes interleaved in fresh processes")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"rows": all_rows, "workloads": [asdict(WORKLOADS[w]) for w in args.workloads]}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
