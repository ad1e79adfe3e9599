"""A config that fails in a way repeating cannot change (seeded NaN loss, a model that
cannot be built) is not trained again: a fixed space stops, a grid counts the point done."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, sweep_cli
from tests.faults.conftest import TINY, assert_consistent, journal_study, runs_by_role, write_spec
from tracking import tags

DIVERGES = {
    **TINY,
    "name": "diverges",
    "space": {"optimizer": "sgd", "learning_rate": 1.0e30},
    "budget": {"trials": 3},
}

PICKY_BUILDER = """
import keras


def build(input_shape, num_classes, dropout, **options):
    if dropout > 0.25:
        raise ValueError(f"dropout {dropout} does not fit this model")
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax")])
"""


def test_a_fixed_config_with_nan_loss_is_trained_once(tracking_uri: str, workdir: Path) -> None:
    write_spec(workdir, DIVERGES)
    result = sweep_cli("run", "spec.yaml", "--tracking-uri", tracking_uri, cwd=workdir)
    assert result.returncode == 1, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: stopped after trial 0: nan_loss: loss became NaN")
    assert "not run again" in message
    study = journal_study(workdir / "optuna.journal", "diverges")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]
    (run,) = runs_by_role(MlflowClient(tracking_uri), "diverges", tags.ROLE_TRIAL)
    assert run.info.status == "FAILED" and run.data.tags[tags.REASON] == "nan_loss"
    assert_consistent(tracking_uri, workdir / "optuna.journal", "diverges")

    again = sweep_cli("run", "spec.yaml", "--tracking-uri", tracking_uri, cwd=workdir)
    assert again.returncode == 1
    assert "(in an earlier run)" in again.stderr
    assert len(journal_study(workdir / "optuna.journal", "diverges").trials) == 1  # not trained again


@pytest.mark.slow
def test_a_grid_point_whose_model_cannot_be_built_counts_as_done(tracking_uri: str, workdir: Path) -> None:
    (workdir / "picky.py").write_text(PICKY_BUILDER)
    spec = {
        **TINY,
        "name": "grid",
        "model": {"name": "picky:build"},
        "space": {"optimizer": "adam", "dropout": {"choices": [0.0, 0.5]}},
        "engine": {"name": "optuna", "sampler": "grid"},
        "budget": {"trials": 5},
    }
    write_spec(workdir, spec)
    env = {"PYTHONPATH": f"{workdir}:{ROOT}"}
    result = sweep_cli("run", "spec.yaml", "--tracking-uri", tracking_uri, cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    assert "sweep grid: 1 complete, 0 pruned, 1 failed (stopped: budget)" in result.stdout
    study = journal_study(workdir / "optuna.journal", "grid")
    assert sorted((t.params["dropout"], t.state.name) for t in study.trials) == [
        (0.0, "COMPLETE"),
        (0.5, "FAIL"),
    ]
    failed = [
        r
        for r in runs_by_role(MlflowClient(tracking_uri), "grid", tags.ROLE_TRIAL)
        if r.info.status == "FAILED"
    ]
    assert [r.data.tags[tags.REASON] for r in failed] == ["model_error"]
    assert "ValueError: dropout 0.5 does not fit this model" in failed[0].data.tags[tags.ERROR]
    assert_consistent(tracking_uri, workdir / "optuna.journal", "grid")


@pytest.mark.slow
def test_kerastuner_stops_a_fixed_config_after_its_nan_loss(tracking_uri: str, workdir: Path) -> None:
    write_spec(workdir, {**DIVERGES, "engine": {"name": "kerastuner", "tuner": "random"}})
    result = sweep_cli("run", "spec.yaml", "--tracking-uri", tracking_uri, cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert "error: stopped after trial 0: nan_loss" in result.stderr
    (run,) = runs_by_role(MlflowClient(tracking_uri), "diverges", tags.ROLE_TRIAL)
    assert run.data.tags[tags.REASON] == "nan_loss"
