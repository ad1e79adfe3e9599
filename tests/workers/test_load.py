"""Load on the embedded default stores (SQLite MLflow, journal-file Optuna): 4 local workers,
100 one-epoch trials, every one recorded in both stores, no error anywhere."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tests.sweeps.test_cli_run import TINY, trial_runs, write_spec
from tracking import tags

LOAD = {
    **TINY,
    "name": "load",
    "model": {"name": "mlp", "units": 8},
    "train": {"epochs": 1, "batch_size": 128},
    "budget": {"trials": 100},
}


@pytest.mark.slow
def test_four_local_workers_record_100_trials(tracking_uri: str, workdir: Path) -> None:
    write_spec(workdir, LOAD)
    result = sweep_cli(
        "run", "tiny.yaml", "--workers", "4", "--tracking-uri", tracking_uri, cwd=workdir, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "100 complete, 0 pruned, 0 failed" in result.stdout

    backend = optuna.storages.journal.JournalFileBackend(str(workdir / "optuna.journal"))
    study = optuna.load_study(study_name="load", storage=optuna.storages.JournalStorage(backend))
    assert len(study.trials) == 100
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({t.user_attrs["sweeplab_worker"]["pid"] for t in study.trials}) == 4

    client = MlflowClient(tracking_uri)
    runs = trial_runs(client, "load")
    assert sorted(int(r.data.tags[tags.TRIAL]) for r in runs) == list(range(100))
    assert all(r.info.status == "FINISHED" and r.data.tags[tags.STATE] == "complete" for r in runs)
    assert all("val_accuracy" in r.data.metrics and "best_val_accuracy" in r.data.metrics for r in runs)
    for log in (workdir / ".sweeplab" / "load").glob("worker-*.log"):
        text = log.read_text()
        assert "not recorded" not in text and "database is locked" not in text, text[-2000:]
