"""The tracking server stops answering mid-sweep (a real `mlflow server` behind a TCP proxy
that is cut): the sweep stops, says which store failed and what was and was not recorded,
and a later run, with the server back, leaves both stores consistent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, sweep_cli
from tests.faults.conftest import TINY, journal_study, runs_by_role, write_spec
from tests.faults.proxy import Proxy
from tracking import tags

SLOW = {
    **TINY,
    "name": "cut",
    # Trials of ten seconds or more (full digits, batch 4, 40 epochs): the cut lands mid-trial.
    "dataset": {"name": "digits", "validation_split": 0.25, "seed": 7},
    "train": {"epochs": 40, "batch_size": 4},
    "space": {"optimizer": "sgd", "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}, "patience": 40},
    "budget": {"trials": 3},
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Proxy]:
    """`mlflow server` on SQLite, reached through a proxy the test can cut."""
    backend = Proxy(0)  # only to pick a free port
    port = backend.port
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
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
        stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "mlflow server did not start"
        time.sleep(0.5)
    proxy = Proxy(port).start()
    proxy.direct = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield proxy
    proxy.stop()
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.slow
def test_tracking_server_cut_mid_sweep(server: Proxy, workdir: Path) -> None:
    write_spec(workdir, SLOW)
    uri = f"http://127.0.0.1:{server.port}"
    direct = MlflowClient(server.direct)  # type: ignore[attr-defined]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--tracking-uri", uri],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while True:  # cut the server while trial 1 trains
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "trial 1 never started"
        running = [r for r in runs_by_role(direct, "cut", tags.ROLE_TRIAL) if r.data.tags[tags.TRIAL] == "1"]
        if running and direct.get_metric_history(running[0].info.run_id, "loss"):
            break
        time.sleep(0.3)
    server.stop()
    started = time.monotonic()
    _, stderr = process.communicate(timeout=300)
    assert time.monotonic() - started < 120, "the sweep took minutes to notice"
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    message = stderr[stderr.index("error: ") :]
    assert message.startswith(f"error: the MLflow store {uri} failed mid-sweep (")
    print(message)
    assert "the sweep stopped" in message
    said = re.search(
        r"  recorded: the study holds (\d+) complete, (\d+) pruned, (\d+) failed trials\n", message
    )
    assert said, message
    assert (
        "  not recorded: the parent run's end status (FAILED): it stays RUNNING until the sweep is run again"
        in message
    )

    server.start()  # the server answers again: what the message said is what the stores hold
    (parent,) = runs_by_role(direct, "cut", tags.ROLE_SWEEP)
    assert parent.info.status == "RUNNING"
    study = journal_study(workdir / "optuna.journal", "cut")
    states = [t.state.name for t in study.trials]
    assert [states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")] == [int(n) for n in said.groups()]
    by_id = {r.info.run_id: r for r in runs_by_role(direct, "cut", tags.ROLE_TRIAL)}
    for trial in study.trials:  # the study counts no trial whose run MLflow lacks
        if trial.state.name == "COMPLETE":
            run = by_id[trial.user_attrs["run_id"]]
            assert run.info.status == "FINISHED" and run.data.tags[tags.STATE] == "complete"
        elif "run_id" not in trial.user_attrs:
            assert f"not recorded: trial {trial.number}: its run could not be created" in message

    again = sweep_cli("run", "spec.yaml", "--tracking-uri", uri, cwd=workdir, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "sweep cut: 3 complete" in again.stdout
    client = MlflowClient(uri)
    assert_consistent_remote(client, workdir)
    (parent,) = runs_by_role(client, "cut", tags.ROLE_SWEEP)
    assert parent.info.status == "FINISHED"


def assert_consistent_remote(client: MlflowClient, workdir: Path) -> None:
    trials = runs_by_role(client, "cut", tags.ROLE_TRIAL)
    assert not [r.info.run_name for r in trials if r.info.status == "RUNNING"]
    study = journal_study(workdir / "optuna.journal", "cut")
    by_id = {r.info.run_id: r for r in trials}
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    for trial in complete:
        assert by_id[trial.user_attrs["run_id"]].data.tags[tags.STATE] == "complete"
