"""`sweep run` end to end: the real CLI in a subprocess, writing to a real SQLite MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import sweep_cli
from tracking import tags

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "validation_split": 0.25, "seed": 7},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 3, "batch_size": 64},
    "objective": {"metric": "val_accuracy"},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]},
        "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "patience": {"low": 0, "high": 2},
    },
    "engine": {"name": "optuna", "sampler": "random", "seed": 3},
    "budget": {"trials": 3},
}


def write_spec(folder: Path, spec: dict, name: str = "tiny.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_runs(client: MlflowClient, sweep: str) -> list:
    exp = client.get_experiment_by_name(sweep)
    runs = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'trial'")
    return sorted(runs, key=lambda r: int(r.data.tags[tags.TRIAL]))


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    """One real 3-trial sweep shared by the layout checks below (each would cost seconds)."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = write_spec(folder, TINY)
    result = sweep_cli("run", str(spec), cwd=folder)
    return folder, f"sqlite:///{folder / 'mlflow.db'}", result


def test_run_succeeds_and_summarizes(finished_sweep) -> None:
    folder, _, result = finished_sweep
    assert result.returncode == 0, result.stderr
    assert "sweep tiny: 3 complete" in result.stdout
    assert "best: trial" in result.stdout
    assert "sweep ui" in result.stdout
    assert (folder / "mlflow.db").exists() and (folder / "optuna.journal").exists()


def test_parent_run_layout(finished_sweep) -> None:
    _, uri, _ = finished_sweep
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["engine.sampler"] == "random"
    assert parent.data.metrics["trials_complete"] == 3
    assert "best_val_accuracy" in parent.data.metrics
    best_config = json.loads(parent.data.tags[tags.BEST_CONFIG])
    assert parent.data.tags["best.optimizer"] == best_config["optimizer"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "spec.yaml" in artifacts
    # The best model: a logged model of the best trial's run, with that trial's metrics (the
    # summary, and the epoch metrics at its best epoch), listed by the parent run too.
    (model,) = client.search_logged_models([exp.experiment_id])
    best = client.get_run(model.source_run_id)
    assert model.name == "best_model" and model.status == "READY"
    assert (
        best.data.tags[tags.TRIAL]
        == parent.data.tags[tags.BEST_TRIAL]
        == parent.data.tags[tags.BEST_MODEL_TRIAL]
    )
    assert [o.model_id for o in best.outputs.model_outputs] == [model.model_id]
    assert [o.model_id for o in parent.outputs.model_outputs] == [model.model_id]
    metrics = {m.key: m for m in model.metrics}
    assert metrics["best_val_accuracy"].value == best.data.metrics["best_val_accuracy"]
    assert metrics["best_val_accuracy"].dataset_name == "digits"
    epoch = int(best.data.metrics["best_epoch"])
    assert metrics["val_accuracy"].step == epoch and metrics["val_accuracy"].value == pytest.approx(
        best.data.metrics["best_val_accuracy"]
    )
    assert not any(key.startswith("system/") for key in metrics)
    # Its description: the summary, best first, with a link to the best trial's run.
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(
        "**Sweep `tiny`: finished**, 3 of 3 trials (3 complete).  \n**Best: val_accuracy = "
    )
    assert (
        f"(#/experiments/{exp.experiment_id}/runs/{best.info.run_id}?workflowType=machine_learning)" in note
    )


def test_experiment_opens_on_the_trials(finished_sweep) -> None:
    """What the MLflow UI reads: the kind, the description, and the view of the trials."""
    _, uri, _ = finished_sweep
    exp = MlflowClient(uri).get_experiment_by_name("tiny")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "maximize `val_accuracy` on `digits`" in exp.tags["mlflow.note.content"]
    envelope = json.loads(exp.tags["mlflow.sharedViewState.sweeplab-trials"])
    state = json.loads(envelope["state"])
    assert state["searchFilter"] == "tags.`sweeplab.role` = 'trial'"
    assert state["orderByKey"] == "metrics.`best_val_accuracy`" and state["orderByAsc"] is False
    # The optimizer first, then the spec file's order (its keys sorted).
    searched = [f"params.`{name}`" for name in sorted(TINY["space"], key=lambda n: (n != "optimizer", n))]
    assert state["selectedColumns"][:5] == ["metrics.`best_val_accuracy`", *searched]


def test_trial_runs_layout(finished_sweep) -> None:
    _, uri, _ = finished_sweep
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tiny")
    (parent,) = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    runs = trial_runs(client, "tiny")
    assert [r.data.tags[tags.TRIAL] for r in runs] == ["0", "1", "2"]
    digests = set()
    for run in runs:
        data = run.data
        assert run.info.status == "FINISHED"
        assert data.tags[tags.PARENT] == parent.info.run_id
        assert data.tags[tags.STATE] == "complete"
        assert run.info.run_name.startswith(
            f"trial-{int(data.tags[tags.TRIAL]):03d} {data.params['optimizer']} lr="
        )
        for key in (
            "optimizer",
            "learning_rate",
            "dropout",
            "patience",
            "engine",
            "sampler",
            "seed",
            "dataset",
            "model",
        ):
            assert key in data.params, key
        assert ("momentum" in data.params) == (data.params["optimizer"] in ("momentum", "nesterov"))
        epochs_run = int(data.metrics["epochs_run"])
        assert 1 <= epochs_run <= 3
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs_run + 1)), key
        assert 1 <= data.metrics["best_epoch"] <= epochs_run
        stopped = data.metrics["stopped_epoch"]
        assert stopped == 0 or stopped == epochs_run
        assert data.metrics["train_seconds"] > 0
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_accuracy")}
        assert data.metrics["best_val_accuracy"] == pytest.approx(history[int(data.metrics["best_epoch"])])
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "curves.png", "checkpoint"} <= files
        # The data it trained and was validated on, as MLflow dataset inputs, the same for every trial.
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert sorted(inputs) == ["training", "validation"]
        assert {d.name for d in inputs.values()} == {"digits"} and inputs["training"].source_type == "local"
        digests.add((inputs["training"].digest, inputs["validation"].digest))
        # Its description: the config, state and value in one line.
        note = data.tags["mlflow.note.content"]
        value = data.metrics["best_val_accuracy"]
        assert note.startswith(f"optimizer={data.params['optimizer']}, ") and "\n" not in note
        assert f": complete, val_accuracy {value:.4f} at epoch {int(data.metrics['best_epoch'])} of " in note
    assert len(digests) == 1 and len({*next(iter(digests))}) == 2


def test_checkpoint_scores_its_logged_value(finished_sweep, tmp_path: Path) -> None:
    import keras

    from experiments.data import load_dataset

    _, uri, _ = finished_sweep
    client = MlflowClient(uri)
    data = load_dataset("digits", validation_split=0.25, seed=7)
    for run in trial_runs(client, "tiny"):
        path = client.download_artifacts(run.info.run_id, "checkpoint/best.keras", str(tmp_path))
        model = keras.saving.load_model(path)
        _, accuracy = model.evaluate(data.x_val, data.y_val, verbose=0)
        assert accuracy == pytest.approx(run.data.metrics["best_val_accuracy"], abs=1e-6)


def test_history_csv_matches_metrics(finished_sweep, tmp_path: Path) -> None:
    import pandas as pd

    _, uri, _ = finished_sweep
    client = MlflowClient(uri)
    run = trial_runs(client, "tiny")[0]
    path = client.download_artifacts(run.info.run_id, "history.csv", str(tmp_path))
    frame = pd.read_csv(path)
    assert list(frame["epoch"]) == list(range(1, int(run.data.metrics["epochs_run"]) + 1))
    logged = [
        m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_loss"), key=lambda m: m.step)
    ]
    assert list(frame["val_loss"]) == pytest.approx(logged)


def test_second_run_continues_the_study(finished_sweep) -> None:
    folder, uri, _ = finished_sweep
    client = MlflowClient(uri)
    before = {r.info.run_id: r.data.metrics for r in trial_runs(client, "tiny")}
    result = sweep_cli("run", "tiny.yaml", "--trials", "5", cwd=folder)
    assert result.returncode == 0, result.stderr
    runs = trial_runs(client, "tiny")
    assert [r.data.tags[tags.TRIAL] for r in runs] == ["0", "1", "2", "3", "4"]
    assert {r.info.run_id: r.data.metrics for r in runs[:3]} == before
    exp = client.get_experiment_by_name("tiny")
    parents = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert len(parents) == 1 and parents[0].data.metrics["trials_complete"] == 5


def test_failing_trial_is_recorded_and_the_sweep_goes_on(tracking_uri: str, workdir: Path) -> None:
    (workdir / "fragile.py").write_text(
        "import keras\n"
        "def build(input_shape, num_classes, dropout, **options):\n"
        "    if dropout > 0.25:\n"
        "        raise RuntimeError(f'dropout {dropout:.2f} is too much for this model')\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    spec = {
        **TINY,
        "name": "fragile",
        "model": {"name": "fragile:build"},
        "train": {"epochs": 1, "batch_size": 64},
        "budget": {"trials": 3, "max_failures": 10},
    }
    write_spec(workdir, spec)
    result = sweep_cli(
        "run",
        "tiny.yaml",
        "--tracking-uri",
        tracking_uri,
        cwd=workdir,
        env={"PYTHONPATH": f"{workdir}:{Path(__file__).parents[2]}"},
    )
    assert result.returncode == 0, result.stderr
    client = MlflowClient(tracking_uri)
    runs = trial_runs(client, "fragile")
    failed = [r for r in runs if r.info.status == "FAILED"]
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert len(done) == 3 and failed, [r.data.params.get("dropout") for r in runs]
    for run in failed:
        assert run.data.tags[tags.STATE] == "failed"
        assert "RuntimeError: dropout" in run.data.tags[tags.ERROR]
        assert float(run.data.params["dropout"]) > 0.25


@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        (["run", "nope.yaml"], {}, "error: spec: no such file: nope.yaml"),
        (["run", "quikstart"], {}, "did you mean 'quickstart'"),
        (["run", "bad.yaml"], {"bad.yaml": "name: [unclosed\n"}, "malformed YAML at line"),
        (
            ["run", "bad.yaml"],
            {"bad.yaml": yaml.safe_dump({**TINY, "space": {"optimizer": "adamw"}})},
            "space.optimizer: unknown optimizer 'adamw'",
        ),
        (
            ["run", "bad.yaml"],
            {"bad.yaml": yaml.safe_dump({**TINY, "dataset": {"name": "npz:missing.npz"}})},
            "missing.npz",
        ),
        (["run", "--trials", "0"], {}, "Invalid value for '--trials'"),
        (
            ["run", "tiny.yaml", "--tracking-uri", "just/a/folder"],
            {"tiny.yaml": yaml.safe_dump(TINY)},
            "is not a URI",
        ),
        (["frobnicate"], {}, "No such command 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    workdir: Path, args: list[str], files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (workdir / name).write_text(text)
    result = sweep_cli(*args, cwd=workdir)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "mlflow.db").exists()


def test_list_shows_builtins_and_sweeps(finished_sweep) -> None:
    folder, _, _ = finished_sweep
    result = sweep_cli("list", cwd=folder)
    assert result.returncode == 0, result.stderr
    for name in ("quickstart", "fashion_mnist_optimizers", "mnist_patience", "cifar10_alexnet", "tiny"):
        assert name in result.stdout
