"""What every fault test shares: a tiny spec, and the state of both stores read back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tracking import tags

# One short trial: 1 epoch of an MLP(8) on 300 digit images.
TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"name": "digits", "train_size": 300, "val_size": 100, "seed": 1},
    "model": {"name": "mlp", "units": 8},
    "train": {"epochs": 1, "batch_size": 64},
    "space": {"optimizer": {"choices": ["sgd", "adam"]}},
    "engine": {"name": "optuna", "sampler": "random", "seed": 0},
    "budget": {"trials": 2},
}


def write_spec(folder: Path, spec: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def journal_study(path: Path, name: str) -> optuna.Study:
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))


def runs_by_role(client: MlflowClient, sweep: str, role: str) -> list:
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], f"tags.`{tags.ROLE}` = '{role}'")


def snapshot(uri: str, sweep: str) -> dict[str, tuple[str, int | None, str | None]]:
    """Every run of the sweep's experiment: status, end time and state tag, by run id."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return {r.info.run_id: (r.info.status, r.info.end_time, r.data.tags.get(tags.STATE)) for r in runs}


def assert_consistent(uri: str, journal: Path, sweep: str) -> None:
    """No run RUNNING; every trial the study counts has exactly one finished run, and the
    study counts nothing MLflow lacks."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)
    every = client.search_runs([experiment.experiment_id])
    assert not [r.info.run_name for r in every if r.info.status == "RUNNING"]
    trial_runs = runs_by_role(client, sweep, tags.ROLE_TRIAL)
    study = journal_study(journal, sweep)
    counted = [
        t
        for t in study.trials
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    by_id = {r.info.run_id: r for r in trial_runs}
    for trial in counted:
        run = by_id[trial.user_attrs["run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags[tags.STATE] in ("complete", "pruned")
        assert int(run.data.tags[tags.TRIAL]) == trial.number
    for parent in {r.data.tags[tags.PARENT] for r in trial_runs}:
        numbers = [int(r.data.tags[tags.TRIAL]) for r in trial_runs if r.data.tags[tags.PARENT] == parent]
        assert len(numbers) == len(set(numbers)), f"a trial recorded twice under parent {parent}"


@pytest.fixture(scope="session")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A finished 2-trial sweep of TINY (sgd, adam) and its `sweep run`; tests work on copies."""
    folder = tmp_path_factory.mktemp("swept")
    write_spec(folder, TINY)
    result = sweep_cli("run", "spec.yaml", cwd=folder, env={"TF_CPP_MIN_LOG_LEVEL": ""})
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.fixture
def sweep_dir(swept: tuple[Path, Any], tmp_path: Path) -> Path:
    """The finished sweep's folder, copied (its artifact paths point at the original)."""
    folder = tmp_path / "copy"
    shutil.copytree(swept[0], folder)
    return folder
