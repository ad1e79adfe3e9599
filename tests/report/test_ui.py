"""`sweep ui`: the MLflow server it starts lists the sweep's runs with their params and metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from tests.conftest import ROOT
from tests.report.conftest import SWEEP, Swept
from tracking import tags


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as reply:
        text = reply.read().decode()
    return json.loads(text) if text.startswith("{") else text


def wait_until_serving(base: str, process: subprocess.Popen[str], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            request(f"{base}/health")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"sweep ui did not answer on {base} within {timeout} s")


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM to `sweep ui` alone (as `kill` or a service manager sends it): the MLflow server it
    started must go with it, leaving no process of its group behind."""
    process.terminate()
    process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("processes of `sweep ui` outlived it")


def test_ui_serves_the_sweeps_runs(swept: Swept) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "ui", "--tracking-uri", swept.uri, "--port", str(port)],
        cwd=swept.folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_serving(base, process)
        experiment = request(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={SWEEP}")
        experiment_id = experiment["experiment"]["experiment_id"]
        found = request(
            f"{base}/api/2.0/mlflow/runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.`{tags.ROLE}` = 'trial'",
                "max_results": 100,
            },
        )
    finally:
        stop(process)
    runs = found["runs"]
    assert len(runs) == 5
    for run in runs:
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert {"optimizer", "learning_rate", "dropout", "patience", "sampler", "dataset"} <= set(params)
        assert {
            "best_val_accuracy",
            "best_epoch",
            "stopped_epoch",
            "epochs_run",
            "train_seconds",
            "val_accuracy",
            "val_loss",
        } <= set(metrics)
        assert run["info"]["run_name"].startswith("trial-") and params["optimizer"] in run["info"]["run_name"]
