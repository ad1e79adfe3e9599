"""The notebook path: `sweeps.run(...)` in-process, and `sweep run` with no spec (the quickstart)."""

from __future__ import annotations

from pathlib import Path

import sweeps
from tests.conftest import sweep_cli
from tests.sweeps.test_cli_run import TINY


def test_run_returns_best_config_value_and_trials(tracking_uri: str) -> None:
    result = sweeps.run(TINY, trials=2, tracking_uri=tracking_uri, train__epochs=1, space__patience=0)
    assert result.best_config is not None and result.best_config["patience"] == 0
    assert 0.0 <= result.best_value <= 1.0
    frame = result.trials
    assert list(frame["trial"]) == [0, 1]
    assert {"optimizer", "learning_rate", "dropout", "patience", "value", "best_epoch", "state"} <= set(
        frame.columns
    )
    assert frame["value"].max() == result.best_value
    assert result.totals["epochs_trained"] == 2  # 2 trials x 1 epoch


def test_default_command_runs_the_quickstart_offline(workdir: Path) -> None:
    result = sweep_cli("run", "--trials", "2", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "sweep quickstart: 2 complete" in result.stdout
    assert (workdir / "mlflow.db").exists()
    assert (
        "the trials in the MLflow UI: http://127.0.0.1:5000/#/experiments/1/runs?"
        "workflowType=machine_learning&viewStateShareKey=sweeplab-trials\n(served by: sweep ui quickstart)\n"
    ) in result.stdout
