"""Pruned and NaN trials through the real CLI: recorded, counted, and the sweep goes on."""

from __future__ import annotations

from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tests.sweeps.test_cli_run import TINY, trial_runs, write_spec
from tracking import tags

ROOT = Path(__file__).parents[2]


def test_pruned_trials_stop_early_and_stay_in_mlflow(tracking_uri: str, workdir: Path) -> None:
    spec = {
        **TINY,
        "name": "pruned",
        "train": {"epochs": 4, "batch_size": 64},
        # Slow optimizers next to fast ones, so the median pruner has something to cut.
        "space": {
            "optimizer": {"choices": ["sgd", "adam"]},
            "learning_rate": {"low": 1e-4, "high": 3e-2, "log": True},
            "patience": 4,
        },
        "engine": {
            "name": "optuna",
            "sampler": "random",
            "seed": 1,
            "pruner": {"name": "median", "startup_trials": 2, "warmup_epochs": 0},
        },
        "budget": {"trials": 6},
    }
    write_spec(workdir, spec)
    result = sweep_cli("run", "tiny.yaml", "--tracking-uri", tracking_uri, cwd=workdir)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(
        study_name="pruned",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(workdir / "optuna.journal"))
        ),
    )
    pruned_numbers = {t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED}
    assert pruned_numbers, [(t.number, t.state, t.params) for t in study.trials]
    assert len(study.trials) == 6  # pruned trials use up the budget

    client = MlflowClient(tracking_uri)
    for run in trial_runs(client, "pruned"):
        number = int(run.data.tags[tags.TRIAL])
        epochs_run = int(run.data.metrics["epochs_run"])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
        assert sorted(steps) == list(range(1, epochs_run + 1))
        assert run.info.status == "FINISHED"
        if number in pruned_numbers:
            assert run.data.tags[tags.STATE] == "pruned"
            # Pruned at the epoch it stopped; that may be the last one (4) when the trials it is
            # compared with were told to the study only then (tells wait for their runs' writes).
            assert run.data.metrics["pruned_epoch"] == epochs_run <= 4
        else:
            assert run.data.tags[tags.STATE] == "complete"

    exp = client.get_experiment_by_name("pruned")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    m = parent.data.metrics
    assert m["trials_pruned"] == len(pruned_numbers)
    assert m["epochs_budget"] == 6 * 4
    assert m["epochs_saved"] == m["epochs_budget"] - m["epochs_trained"] > 0
    assert "epochs saved by early stopping and pruning" in result.stdout


NAN_BUILDER = '''
import keras
from keras import ops


class Poison(keras.layers.Layer):
    """Turns every output into NaN: a model that diverges on its first batch."""

    def call(self, x):
        return x * ops.log(ops.zeros_like(x) - 1.0)


def build(input_shape, num_classes, dropout, **options):
    layers = [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(num_classes)]
    if dropout > 0.25:
        layers.append(Poison())
    layers.append(keras.layers.Softmax())
    return keras.Sequential(layers)
'''


def test_nan_loss_fails_the_trial_at_once_and_the_sweep_goes_on(tracking_uri: str, workdir: Path) -> None:
    (workdir / "poisoned.py").write_text(NAN_BUILDER)
    spec = {
        **TINY,
        "name": "nan",
        "model": {"name": "poisoned:build"},
        "train": {"epochs": 3, "batch_size": 64},
        "space": {**TINY["space"], "patience": 3},
        "budget": {"trials": 3, "max_failures": 10},
    }
    write_spec(workdir, spec)
    result = sweep_cli(
        "run",
        "tiny.yaml",
        "--tracking-uri",
        tracking_uri,
        cwd=workdir,
        env={"PYTHONPATH": f"{workdir}:{ROOT}"},
    )
    assert result.returncode == 0, result.stderr
    runs = trial_runs(MlflowClient(tracking_uri), "nan")
    failed = [r for r in runs if r.data.tags[tags.STATE] == "failed"]
    complete = [r for r in runs if r.data.tags[tags.STATE] == "complete"]
    assert len(complete) == 3 and failed
    for run in failed:
        assert run.info.status == "FAILED"
        assert run.data.tags[tags.REASON] == "nan_loss"
        assert "NaN" in run.data.tags[tags.ERROR]
        assert run.data.metrics["epochs_run"] == 1  # no more epochs were spent
        assert float(run.data.params["dropout"]) > 0.25
    assert "failed" in result.stdout
