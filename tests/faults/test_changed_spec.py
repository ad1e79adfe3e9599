"""A sweep remembers its search: a changed spec stops before either store is written, a
budget change continues, and `--restart` starts afresh, keeping the old sweep whole."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tests.faults.conftest import TINY, assert_consistent, journal_study, runs_by_role, snapshot, write_spec
from tracking import tags


def _journal_lines(folder: Path) -> int:
    return len((folder / "optuna.journal").read_text().splitlines())


def test_changed_search_exits_2_with_the_differences_and_touches_nothing(sweep_dir: Path) -> None:
    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    before, lines = snapshot(uri, "tiny"), _journal_lines(sweep_dir)
    changed = {
        **TINY,
        "train": {**TINY["train"], "epochs": 2},
        "space": {"optimizer": {"choices": ["sgd", "adam", "rmsprop"]}},
        "budget": {"trials": 5},  # allowed, and not listed
    }
    write_spec(sweep_dir, changed)
    result = sweep_cli("run", "spec.yaml", cwd=sweep_dir, timeout=60)
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert err.startswith("error: sweep 'tiny' (optuna) was started with a different search")
    assert "  space.optimizer.choices: [sgd, adam] -> [sgd, adam, rmsprop]\n" in err
    assert "  train.epochs: 1 -> 2\n" in err
    assert "budget" not in err.split("nothing was written")[0]
    assert "new `name`" in err and "sweep run spec.yaml --restart" in err
    assert "Traceback" not in err and "dynamic value space" not in err
    assert snapshot(uri, "tiny") == before  # no run added, none reopened or re-closed
    assert _journal_lines(sweep_dir) == lines  # not one write to the study


@pytest.mark.slow
def test_budget_and_description_changes_continue_the_sweep(sweep_dir: Path) -> None:
    write_spec(sweep_dir, {**TINY, "description": "now with a longer budget", "budget": {"trials": 3}})
    result = sweep_cli("run", "spec.yaml", cwd=sweep_dir)
    assert result.returncode == 0, result.stderr
    assert "sweep tiny: 3 complete" in result.stdout
    assert len(journal_study(sweep_dir / "optuna.journal", "tiny").trials) == 3


@pytest.mark.slow
def test_restart_keeps_the_old_sweep_and_starts_a_new_one(sweep_dir: Path) -> None:
    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    client = MlflowClient(uri)
    (old_parent,) = runs_by_role(client, "tiny", tags.ROLE_SWEEP)
    old_trials = {r.info.run_id for r in runs_by_role(client, "tiny", tags.ROLE_TRIAL)}
    write_spec(sweep_dir, {**TINY, "space": {"optimizer": {"choices": ["rmsprop"]}}, "budget": {"trials": 1}})

    result = sweep_cli("run", "spec.yaml", "--restart", cwd=sweep_dir)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("restarted:")]
    archived = line.rsplit(" ", 1)[-1]
    assert archived.startswith("tiny@")

    kept = client.get_run(old_parent.info.run_id)
    assert kept.data.tags[tags.ROLE] == tags.ROLE_RESTARTED and kept.data.tags[tags.ARCHIVED_AS] == archived
    assert kept.info.run_name == archived and kept.info.status == "FINISHED"
    (new_parent,) = runs_by_role(client, "tiny", tags.ROLE_SWEEP)
    assert new_parent.info.run_id != old_parent.info.run_id and new_parent.info.status == "FINISHED"
    new_trials = [r for r in runs_by_role(client, "tiny", tags.ROLE_TRIAL) if r.info.run_id not in old_trials]
    assert [r.data.params["optimizer"] for r in new_trials] == ["rmsprop"]
    assert all(r.data.tags[tags.PARENT] == new_parent.info.run_id for r in new_trials)
    assert new_parent.data.metrics["trials_total"] == 1  # totals of the new search only

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep_dir / "optuna.journal"))
    )
    old_study = optuna.load_study(study_name=archived, storage=storage)
    assert sorted(t.params["optimizer"] for t in old_study.trials) == ["adam", "sgd"]
    assert [t.params["optimizer"] for t in journal_study(sweep_dir / "optuna.journal", "tiny").trials] == [
        "rmsprop"
    ]
    assert_consistent(uri, sweep_dir / "optuna.journal", "tiny")

    again = sweep_cli("run", "spec.yaml", cwd=sweep_dir, timeout=60)  # the restarted sweep is the memory now
    assert again.returncode == 0, again.stderr
    assert "the budget is already spent (1 trials counted)" in again.stdout


def test_worker_with_the_budget_spent_says_so(sweep_dir: Path) -> None:
    result = sweep_cli("worker", "spec.yaml", cwd=sweep_dir, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "sweep tiny: the budget is already spent (2 trials counted); nothing to run "
        "(raise budget.trials to run more)"
    )
