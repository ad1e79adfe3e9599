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
Every sweep is a real `sweeps.run(...)` with full MLflow tracking into a temporary folder.

    python bench/search_efficiency.py              # 12 trials per search, seeds 0 1 2
    python bench/search_efficiency.py --trials 6 --seeds 0
    python bench/search_efficiency.py --only "grid (seeds)" tpe "tpe (per-opt lr)"
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
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


def methods(trials: int, seed: int) -> dict[str, dict]:
    searched = {**BASE, "space": SPACE, "budget": {"trials": trials}}
    return {
        # The grid is fixed; its seed is the training seed.
        "grid (seeds)": {
            **BASE,
            "train": {**BASE["train"], "seed": seed},
            "space": SEEDS_GRID,
            "engine": {"name": "optuna", "sampler": "grid"},
            "budget": {"trials": len(OPTIMIZERS)},
        },
        "random": {**searched, "engine": {"name": "optuna", "sampler": "random", "seed": seed}},
        "tpe": {**searched, "engine": {"name": "optuna", "sampler": "tpe", "seed": seed}},
        "tpe (per-opt lr)": {
            **searched,
            "space": PER_OPTIMIZER,
            "engine": {"name": "optuna", "sampler": "tpe", "seed": seed},
        },
        "tpe+hyperband": {
            **searched,
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


def measure(spec: dict, folder: Path) -> tuple[float, float, float, int]:
    """(best val accuracy, epochs to reach it, all epochs, trials) of one search."""
    frame = trials_of(spec, folder)
    frame = frame[frame["state"].isin(["complete", "pruned"])].reset_index(drop=True)
    epochs = frame["epochs_run"].fillna(0).cumsum()
    best_index = frame["value"].idxmax()
    return (
        float(frame.loc[best_index, "value"]),
        float(epochs.loc[best_index]),
        float(epochs.iloc[-1]),
        len(frame),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", help="Run only these searches (names as in the table).")
    args = parser.parse_args()
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    rows: dict[str, list[tuple[float, float, float, int]]] = {}
    for seed in args.seeds:
        for name, spec in methods(args.trials, seed).items():
            if args.only and name not in args.only:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                rows.setdefault(name, []).append(measure(spec, Path(tmp)))
            print(f"  seed {seed} {name}: {rows[name][-1]}", file=sys.stderr)
    print(
        f"digits, MLP(100), up to {EPOCHS} epochs, {args.trials} trials per search "
        f"(grid: its 6 configs), seeds {args.seeds}; mean over seeds"
    )
    print("| search | best val accuracy | epochs to reach it | epochs in all | trials |")
    print("| --- | --- | --- | --- | --- |")
    for name, results in rows.items():
        best, to_best, total, trials = (statistics.mean(values) for values in zip(*results, strict=True))
        print(f"| {name} | {best:.4f} | {to_best:.0f} | {total:.0f} | {trials:.0f} |")


if __name__ == "__main__":
    main()
