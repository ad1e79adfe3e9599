"""The many-machine setup, on one machine: Optuna on PostgreSQL, MLflow behind a real
`mlflow server` (itself on PostgreSQL), three `sweep worker` processes sharing one budget."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.sweeps.test_cli_run import TINY, trial_runs
from tracking import tags

PG = os.environ.get("SWEEPLAB_TEST_POSTGRES", f"postgresql://{getpass.getuser()}@127.0.0.1:5432")


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/test", autocommit=True) as connection:
        connection.execute(sql)


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases: Optuna's and the MLflow server's."""
    names = [f"sweeplab_{uuid.uuid4().hex[:8]}_{role}" for role in ("optuna", "mlflow")]
    for name in names:
        _admin(f"CREATE DATABASE {name}")
    yield tuple(f"{PG}/{name}" for name in names)  # type: ignore[misc]
    for name in names:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(databases: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            databases[1],
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "mlflow server did not start"
        time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_three_workers_share_one_budget(
    databases: tuple[str, str], mlflow_server: str, workdir: Path
) -> None:
    spec = {**TINY, "name": "shared", "train": {"epochs": 1, "batch_size": 64}, "budget": {"trials": 9}}
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stores = ["--storage", databases[0], "--tracking-uri", mlflow_server]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeps", "worker", "spec.yaml", *stores],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-3000:]
    # The coordinating command closes the sweep: the budget is spent, so it only finishes it.
    closing = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", "spec.yaml", *stores],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert closing.returncode == 0, closing.stderr[-3000:]
    assert "9 complete" in closing.stdout, closing.stdout

    study = optuna.load_study(study_name="shared", storage=databases[0])
    assert len(study.trials) == 9  # one budget across the workers, not 9 each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    workers_seen = {t.user_attrs["sweeplab_worker"]["pid"] for t in study.trials}
    assert len(workers_seen) > 1

    client = MlflowClient(mlflow_server)
    runs = trial_runs(client, "shared")
    assert sorted(int(r.data.tags[tags.TRIAL]) for r in runs) == list(range(9))  # exactly one run each
    assert {r.info.run_id for r in runs} == {t.user_attrs["run_id"] for t in study.trials}
    assert all(r.info.status == "FINISHED" for r in runs)
    exp = client.get_experiment_by_name("shared")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"history.csv", "curves.png"}
