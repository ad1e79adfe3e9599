"""How fast each way of searching finds a good config, in epochs trained.

On the offline `digits` dataset (the seeds' MLP, 20 epochs at most, early stopping on
val_loss), with the same trial budget for every search and 3 seeds each:

  grid (seeds)      the seeds' way: the six optimizers at Keras's default learning rates, one
                    grid sweep over a sub-space per optimizer (`learning_rate: default`)
  random            Optuna RandomSampler
  tpe               Optuna TPESampler, one learning-rate range shared by all optimizers
  tpe (per-opt lr)  TPESampler over a learning-rate range per optimizer (sub-spaces)
  tpe+hyperband     TPESampler with the HyperbandPruner
  kt-bayesian       KerasTuner BayesianOptimization
  kt-hyperband      KerasTuner Hyperband

For each: the best validation accuracy reached, and the epochs trained (all trials, in the
order they ran, pruned ones counted for the epochs they ran) up to the trial that reached it.
With `--fuse K` the Optuna searches train K trials at a time (`train.fuse`); the grid always
runs one trial at a time (the seeds' way). The table's wall seconds are the search's (from
when the sweep's stores are open and its data loaded): until a trial within 0.5 points of the
grid's best was recorded (the trial ended: its patience ran out or its epochs); until the
first epoch of any trial within 0.5 points was logged (that trial's value is then at least as
good: it ends at its best epoch's weights); and in all; and the whole sweep's (`sweeps.run`,
store creation and the best model's logging included). Every sweep is a real `sweeps.run(...)`
with full MLflow tracking into a temporary folder.

    python bench/search_efficiency.py              # 12 trials per search, seeds 0 1 2
    python bench/search_efficiency.py --trials 6 --seeds 0
    python bench/search_efficiency.py --fuse 6 --only "grid (seeds)" tpe "tpe (per-opt lr)"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OPTIMIZERS = ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]
EPOCHS = 20
BASE = {
    "dataset": {"name": "digits", "validation_split": 0.2, "seed": 42},
    "model": {"name": "mlp", "units": 100},
    "train": {"epochs": EPOCHS, "batch_size": 32, "monitor": "val_loss"},
    "objective": {"metric": "val_accuracy", "direction": "maximize"},
}
SPACE = {
    "optimizer": {"choices": OPTIMIZERS},
    "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "patience": {"low": 1, "high": 5},
}
# The seeds' grid: every optimizer at its own Keras default learning rate, dropout 0, patience 2.
SEEDS_GRID = {
    "optimizer": {"choices": {name: {} for name in OPTIMIZERS}},
    "learning_rate": "default",
    "dropout": 0.0,
    "patience": 2,
}


def _log_range(low: float, high: float) -> dict:
    return {"learning_rate": {"low": low, "high": high, "log": True}}


# The same search with each optimizer's learning rate in its own range (as fashion_mnist_optimizers).
PER_OPTIMIZER = {
    **SPACE,
    "optimizer": {
        "choices": {
            "sgd": _log_range(1e-3, 3e-1),
            "momentum": _log_range(1e-4, 1e-1),
            "nesterov": _log_range(1e-4, 1e-1),
            "rmsprop": _log_range(1e-5, 1e-2),
            "adagrad": _log_range(1e-4, 3e-1),
            "adam": _log_range(1e-5, 1e-2),
        }
    },
}


def methods(trials: int, seed: int, fuse: int = 1) -> dict[str, dict]:
    searched = {**BASE, "space": SPACE, "budget": {"trials": trials}}
    fused = {**searched, "train": {**BASE["train"], "fuse": fuse}}
    return {
        # The grid is fixed; its seed is the training seed.
        "grid (seeds)": {
            **BASE,
            "train": {**BASE["train"], "seed": seed},
            "space": SEEDS_GRID,
            "engine": {"name": "optuna", "sampler": "grid"},
            "budget": {"trials": len(OPTIMIZERS)},
        },
        "random": {**fused, "engine": {"name": "optuna", "sampler": "random", "seed": seed}},
        "tpe": {**fused, "engine": {"name": "optuna", "sampler": "tpe", "seed": seed}},
        "tpe (per-opt lr)": {
            **fused,
            "space": PER_OPTIMIZER,
            "engine": {"name": "optuna", "sampler": "tpe", "seed": seed},
        },
        "tpe+hyperband": {
            **fused,
            "engine": {
                "name": "optuna",
                "sampler": "tpe",
                "seed": seed,
                "pruner": {"name": "hyperband", "min_epochs": 2},
            },
        },
        "kt-bayesian": {**searched, "engine": {"name": "kerastuner", "tuner": "bayesian", "seed": seed}},
        "kt-hyperband": {**searched, "engine": {"name": "kerastuner", "tuner": "hyperband", "seed": seed}},
    }


def trials_of(spec: dict, folder: Path):
    """The trials of one real sweep, in the order they ran."""
    import sweeps

    os.chdir(folder)
    uri = f"sqlite:///{folder}/mlflow.db"
    return sweeps.run({**spec, "name": "bench"}, tracking_uri=uri).trials.sort_values("trial")


# (clock, value) of each trial, as it is recorded; (clock, val_accuracy) of each epoch, as it
# is logged; the clock when the search itself began
RECORDED: list[tuple[float, float]] = []
EPOCH_LOGS: list[tuple[float, float]] = []
SEARCH_BEGAN: list[float] = []


def record_times() -> None:
    """Note when the search begins (the stores open and the data loaded), when each trial's
    result reaches the tracker and when each epoch's metrics do (solo and fused trials alike)."""
    from sweeps.running.runner import Sweep
    from sweeps.running.trial import TrialRunner
    from tracking.callbacks import EpochLogger

    original_record, original_work, original_epoch = TrialRunner.record, Sweep.work, EpochLogger.on_epoch_end

    def record(self, recorder, number, config, result, pruning, started):
        RECORDED.append((time.perf_counter(), float(result.best_value)))
        return original_record(self, recorder, number, config, result, pruning, started)

    def work(self, *args, **kwargs):
        SEARCH_BEGAN.append(time.perf_counter())
        return original_work(self, *args, **kwargs)

    def on_epoch_end(self, epoch, logs=None):
        if logs and "val_accuracy" in logs:
            EPOCH_LOGS.append((time.perf_counter(), float(logs["val_accuracy"])))
        return original_epoch(self, epoch, logs)

    TrialRunner.record = record
    Sweep.work = work
    EpochLogger.on_epoch_end = on_epoch_end


def measure(spec: dict, folder: Path) -> tuple[float, float, float, int, list, float, float, list]:
    """(best val accuracy, epochs to reach it, all epochs, trials, (seconds searching, value) of
    each recorded trial, seconds searching in all, seconds of the whole sweep, (seconds
    searching, val accuracy) of each epoch) of one search."""
    RECORDED.clear()
    EPOCH_LOGS.clear()
    SEARCH_BEGAN.clear()
    start = time.perf_counter()
    frame = trials_of(spec, folder)
    end = time.perf_counter()
    began = SEARCH_BEGAN[0]
    frame = frame[frame["state"].isin(["complete", "pruned"])].reset_index(drop=True)
    epochs = frame["epochs_run"].fillna(0).cumsum()
    best_index = frame["value"].idxmax()
    timeline = [(t - began, v) for t, v in RECORDED]
    return (
        float(frame.loc[best_index, "value"]),
        float(epochs.loc[best_index]),
        float(epochs.iloc[-1]),
        len(frame),
        timeline,
        end - began,
        end - start,
        [(t - began, v) for t, v in EPOCH_LOGS],
    )


def seconds_to(timeline: list[tuple[float, float]], target: float) -> float:
    """When the first trial at or above `target` was recorded (inf: never)."""
    return min((t for t, v in timeline if v >= target - 1e-9), default=float("inf"))


def mean_reach(timelines: list[list[tuple[float, float]]], grid: list[tuple]) -> str:
    """Mean seconds until within 0.5 points of the grid's best of the same seed."""
    reach = [seconds_to(t, g[0] - 0.005) for t, g in zip(timelines, grid, strict=True)]
    return f"{statistics.mean(reach):.1f}" if all(x < float("inf") for x in reach) else "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fuse", type=int, default=1, help="train.fuse of the Optuna searches")
    parser.add_argument(
        "--only", nargs="+", help="Run only these searches (names as in the table; the grid always runs)."
    )
    args = parser.parse_args()
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    record_times()
    rows: dict[str, list[tuple]] = {}
    for seed in args.seeds:
        for name, spec in methods(args.trials, seed, args.fuse).items():
            if args.only and name not in args.only and not name.startswith("grid"):
                continue
            with tempfile.TemporaryDirectory() as tmp:
                rows.setdefault(name, []).append(measure(spec, Path(tmp)))
            best, to_best, total, trials, _, seconds, whole, _ = rows[name][-1]
            print(
                f"  seed {seed} {name}: best {best:.4f}, {to_best:.0f}/{total:.0f} epochs, "
                f"{seconds:.1f} s searching, {whole:.1f} s in all",
                file=sys.stderr,
            )
    print(
        f"digits, MLP(100), up to {EPOCHS} epochs, {args.trials} trials per search "
        f"(grid: its 6 configs, one at a time), Optuna searches with train.fuse {args.fuse}, "
        f"seeds {args.seeds}; mean over seeds"
    )
    print(
        "| search | best val accuracy | epochs to reach it | epochs in all | trials "
        "| seconds searching until a trial within 0.5 points of the grid's best was recorded "
        "| until an epoch within 0.5 points was | seconds searching in all | seconds of the whole sweep |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    grid = rows["grid (seeds)"]
    for name, results in rows.items():
        best, to_best, total, trials = (statistics.mean(r[i] for r in results) for i in range(4))
        # Against the grid of the same seed: the first recorded trial within 0.5 points of its best.
        reached, epoch_reached = (mean_reach([r[i] for r in results], grid) for i in (4, 7))
        seconds, whole = (statistics.mean(r[i] for r in results) for i in (5, 6))
        cells = [
            name,
            f"{best:.4f}",
            f"{to_best:.0f}",
            f"{total:.0f}",
            f"{trials:.0f}",
            reached,
            epoch_reached,
            f"{seconds:.1f}",
            f"{whole:.1f}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
