"""Shared fixtures: each test gets its own working directory and a real SQLite MLflow store.

Creating an MLflow database runs its migrations (seconds), so one is made per session and
copied for each test. A test that leaves an MLflow run RUNNING fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def _template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory, as a user's project folder would be."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def tracking_uri(workdir: Path, _template_db: Path) -> Iterator[str]:
    """A real, migrated SQLite MLflow store in the working directory (`sqlite:///.../mlflow.db`)."""
    db = workdir / "mlflow.db"
    shutil.copy(_template_db, db)
    uri = f"sqlite:///{db}"
    yield uri
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    running = [
        run.info.run_name
        for exp in client.search_experiments()
        for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    ]
    assert not running, f"test left MLflow runs RUNNING: {running}"


def sweep_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `sweep` CLI (`python -m sweeps`) in a subprocess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
