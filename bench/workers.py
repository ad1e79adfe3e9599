"""Trials per minute with 1, 2 and 4 local workers on the embedded default stores.

The load test's sweep (one-epoch MLP(8) trials on the offline digits, SQLite MLflow,
journal-file Optuna) run through the real CLI, `sweep run --workers N`, in a fresh folder
each time. Wall time covers everything a user waits for: worker start-up (imports, data),
the trials, and closing the sweep. Run:

    python bench/workers.py                  # 40 trials for each of 1, 2, 4 workers
    python bench/workers.py --trials 100 --workers 1 4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = {
    "name": "load",
    "dataset": {"name": "digits", "validation_split": 0.25, "seed": 7},
    "model": {"name": "mlp", "units": 8},
    "train": {"epochs": 1, "batch_size": 128},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]},
        "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "patience": {"low": 0, "high": 2},
    },
    "engine": {"name": "optuna", "sampler": "random", "seed": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    print(f"{args.trials} one-epoch trials, {os.cpu_count()} CPU cores")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            spec = {**SPEC, "budget": {"trials": args.trials}}
            (Path(tmp) / "spec.yaml").write_text(yaml.safe_dump(spec))
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--workers", str(workers)],
                cwd=tmp,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - start
            if result.returncode != 0:
                sys.exit(result.stderr[-3000:])
            print(f"  {workers} worker(s): {seconds:6.1f} s, {args.trials / seconds * 60:5.1f} trials/min")


if __name__ == "__main__":
    main()
