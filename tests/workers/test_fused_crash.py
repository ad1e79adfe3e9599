"""A worker killed (real SIGKILL) while it trains a pack, and the sweep resumed: every trial of
the pack is failed, retried and its run closed, as a single killed trial's would be."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT
from tests.sweeps.test_cli_run import TINY, trial_runs
from tests.workers.test_crash_resume import rerun, study
from tracking import tags

PACKED = {
    **TINY,
    "name": "crashy",
    # Long enough packs (~30 epochs of digits) that the kill lands mid-pack.
    "train": {"epochs": 30, "batch_size": 16, "fuse": 3},
    "space": {**TINY["space"], "patience": 30, "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}},
    "budget": {"trials": 3, "retries": 1},
}


def wait_for_running_pack(client: MlflowClient, process: subprocess.Popen[str]) -> list[str]:
    """The run ids of the first pack's three trials once each has logged an epoch."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        exp = client.get_experiment_by_name("crashy")
        if exp is not None:
            runs = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'trial'")
            training = [
                r.info.run_id
                for r in runs
                if r.info.status == "RUNNING" and client.get_metric_history(r.info.run_id, "loss")
            ]
            if len(training) == 3:
                return training
        time.sleep(0.2)
    raise AssertionError("the pack never started")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_sigkill_during_a_pack_then_resume(
    backend: str, tracking_uri: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (CI installs torch==2.13.0)")
    monkeypatch.setenv("KERAS_BACKEND", backend)  # for both commands
    epochs = 30 if backend == "tensorflow" else 8  # a PyTorch epoch takes longer on a CPU
    (workdir / "spec.yaml").write_text(
        yaml.safe_dump({**PACKED, "train": {**PACKED["train"], "epochs": epochs}})
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--tracking-uri", tracking_uri],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient(tracking_uri)
    killed = wait_for_running_pack(client, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert all(client.get_run(run_id).info.status == "RUNNING" for run_id in killed)

    result = rerun(workdir, tracking_uri)
    assert result.returncode == 0, result.stderr[-3000:]

    trials = [t for t in study(workdir).trials if t.state != optuna.trial.TrialState.WAITING]
    runs = trial_runs(client, "crashy")
    assert sorted(int(r.data.tags[tags.TRIAL]) for r in runs) == [t.number for t in trials]
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for run_id in killed:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED"
        assert run.data.tags[tags.STATE] == "failed" and run.data.tags[tags.REASON] == "worker_lost"
    by_number = {t.number: t for t in trials}
    first = [by_number[n] for n in (0, 1, 2)]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in first)
    for trial in first:  # each killed trial retried once, with its own config
        (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
        assert retry.params == trial.params and retry.state == optuna.trial.TrialState.COMPLETE
    assert len([t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]) == 3
