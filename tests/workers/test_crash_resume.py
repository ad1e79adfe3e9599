"""A worker killed mid-trial (real SIGKILL), or stopped with SIGTERM, and the sweep resumed."""

from __future__ import annotations

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
from tracking import tags

SLOW_TRIALS = {
    **TINY,
    "name": "crashy",
    # Long enough trials (~30 epochs of digits) that a signal lands mid-trial.
    "train": {"epochs": 30, "batch_size": 16},
    "space": {**TINY["space"], "patience": 30, "learning_rate": {"low": 1e-4, "high": 1e-3, "log": True}},
    "budget": {"trials": 3, "retries": 1},
}


def start(workdir: Path, uri: str) -> subprocess.Popen[str]:
    (workdir / "spec.yaml").write_text(yaml.safe_dump(SLOW_TRIALS))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--tracking-uri", uri],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_running_trial(client: MlflowClient, number: int, process: subprocess.Popen[str]) -> str:
    """The run id of trial `number` once it is training (has logged an epoch)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        exp = client.get_experiment_by_name("crashy")
        if exp is not None:
            for run in client.search_runs([exp.experiment_id], f"tags.`{tags.TRIAL}` = '{number}'"):
                if run.info.status == "RUNNING" and client.get_metric_history(run.info.run_id, "loss"):
                    return run.info.run_id
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never started")


def study(workdir: Path) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(workdir / "optuna.journal"))
    return optuna.load_study(study_name="crashy", storage=optuna.storages.JournalStorage(backend))


def rerun(workdir: Path, uri: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sweeps", "run", "spec.yaml", "--tracking-uri", uri],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume(tracking_uri: str, workdir: Path) -> None:
    client = MlflowClient(tracking_uri)
    process = start(workdir, tracking_uri)
    killed_run = wait_for_running_trial(client, 1, process)
    finished_before = {
        r.info.run_id: r.data.metrics for r in trial_runs(client, "crashy") if r.info.status == "FINISHED"
    }
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert client.get_run(killed_run).info.status == "RUNNING"  # what a dead worker leaves

    result = rerun(workdir, tracking_uri)
    assert result.returncode == 0, result.stderr

    trials = [t for t in study(workdir).trials if t.state != optuna.trial.TrialState.WAITING]
    runs = trial_runs(client, "crashy")
    assert sorted(int(r.data.tags[tags.TRIAL]) for r in runs) == [t.number for t in trials]
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for run_id, metrics in finished_before.items():
        assert client.get_run(run_id).data.metrics == metrics  # finished trials untouched

    killed = client.get_run(killed_run)
    assert killed.info.status == "KILLED"
    assert killed.data.tags[tags.STATE] == "failed"
    assert killed.data.tags[tags.REASON] == "worker_lost"
    by_number = {t.number: t for t in trials}
    assert by_number[1].state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retried) == 1 and retried[0].params == by_number[1].params
    counted = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(counted) == 3  # the killed trial did not use up the budget


@pytest.mark.slow
def test_sigterm_records_the_trial_as_interrupted(tracking_uri: str, workdir: Path) -> None:
    client = MlflowClient(tracking_uri)
    process = start(workdir, tracking_uri)
    run_id = wait_for_running_trial(client, 0, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "error: interrupted; trial 0 was recorded as interrupted (its run KILLED, failed in the study, "
        "not counted). Run the same command again to continue the sweep."
    )

    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[tags.STATE] == "interrupted"
    (trial,) = study(workdir).trials
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["interrupted"]
    exp = client.get_experiment_by_name("crashy")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert parent.info.status == "KILLED"
