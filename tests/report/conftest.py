"""One real, small sweep for the whole folder (each run costs seconds), and its report."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import sweep_cli

SWEEP = "tiny-report"
SPEC = {
    "name": SWEEP,
    "dataset": {"name": "digits", "validation_split": 0.25, "seed": 7},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 3, "batch_size": 64},
    "objective": {"metric": "val_accuracy"},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "rmsprop", "adam"]},
        "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "patience": {"low": 0, "high": 2},
    },
    "engine": {"name": "optuna", "sampler": "random", "seed": 3},
    "budget": {"trials": 5},
}


@dataclass(frozen=True)
class Swept:
    folder: Path
    uri: str


@dataclass(frozen=True)
class Reported:
    folder: Path  # the report's folder
    uri: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="package")
def swept(tmp_path_factory: pytest.TempPathFactory, _template_db: Path) -> Swept:
    """A finished 5-trial sweep on digits, run by the real CLI into a SQLite store."""
    folder = tmp_path_factory.mktemp("report-sweep")
    shutil.copy(_template_db, folder / "mlflow.db")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(SPEC))
    result = sweep_cli("run", "tiny.yaml", cwd=folder)
    assert result.returncode == 0, result.stderr
    return Swept(folder, f"sqlite:///{folder / 'mlflow.db'}")


@pytest.fixture(scope="package")
def reported(swept: Swept) -> Reported:
    """`sweep report --retrain` on that sweep, as a user would run it."""
    result = sweep_cli("report", SWEEP, "--retrain", "--top", "3", "--out", "report", cwd=swept.folder)
    assert result.returncode == 0, result.stderr
    return Reported(swept.folder / "report", swept.uri, result)
