"""Any Keras task through the real CLI on small data: binary (val_auc) and regression (val_mae)
sweeps on both engines, a top-k objective, a loss and a metric of the user's own, streamed data,
the user's dataset functions and image folders, and the errors all of these get before any store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.report.build import build_report
from sweeps.report.files import write_report
from sweeps.running.runner import run_sweep
from sweeps.spec.schema import load_spec
from tests.conftest import ROOT, sweep_cli
from tests.experiments.test_sources import write_pngs
from tests.sweeps.test_cli_run import trial_runs
from tracking import tags

DIGITS = {
    "dataset": {"name": "digits", "validation_split": 0.25, "seed": 7, "train_size": 300},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 1, "batch_size": 64},
    "space": {"optimizer": {"choices": ["adam", "rmsprop"]}, "learning_rate": 0.01},
    "engine": {"name": "optuna", "sampler": "random", "seed": 3},
    "budget": {"trials": 2},
}


def builtin(name: str, **changes: Any) -> dict[str, Any]:
    """A built-in spec made small: fewer epochs and trials."""
    raw = load_spec(name).raw()
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return raw


def run_cli(folder: Path, spec: dict[str, Any], *args: str, env: dict[str, str] | None = None):
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return sweep_cli("run", "spec.yaml", *args, cwd=folder, env=env)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("binary")
    spec = builtin("breast_cancer_binary", train={"epochs": 3}, budget={"trials": 2})
    out = ok(run_cli(folder, spec))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    write_report(
        build_report(uri, "breast_cancer_binary"), folder / "report"
    )  # `sweep report` has its own tests
    return folder, uri, out


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """diabetes_regression with its task left to inference."""
    folder = tmp_path_factory.mktemp("regression")
    spec = builtin("diabetes_regression", train={"epochs": 3}, budget={"trials": 2})
    del spec["task"]
    spec["space"]["units"] = 16
    out = ok(run_cli(folder, spec))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    write_report(
        build_report(uri, "diabetes_regression"), folder / "report"
    )  # `sweep report` has its own tests
    return folder, uri, out


def test_a_binary_sweep_is_judged_by_val_auc(binary) -> None:
    folder, uri, out = binary
    assert "best: trial" in out and "val_auc" in out and "inferred" not in out  # the spec says binary
    client = MlflowClient(uri)
    runs = trial_runs(client, "breast_cancer_binary")
    assert len(runs) == 2
    for run in runs:
        assert run.data.params["task"] == "binary" and run.data.params["loss"] == "binary_crossentropy"
        epochs = int(run.data.metrics["epochs_run"])
        for key in ("loss", "accuracy", "auc", "val_loss", "val_accuracy", "val_auc"):
            assert len(client.get_metric_history(run.info.run_id, key)) == epochs, key
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_auc")}
        assert run.data.metrics["best_val_auc"] == pytest.approx(history[int(run.data.metrics["best_epoch"])])
    data = json.loads((folder / "report" / "report.json").read_text())
    assert data["objective"] == {"metric": "val_auc", "direction": "maximize"}
    values = [t["value"] for t in data["top"]]
    assert values == sorted(values, reverse=True)


def test_a_regression_sweep_is_judged_by_val_mae_smallest_first(regression) -> None:
    folder, uri, out = regression
    assert (
        out.count("task: regression, inferred from the training targets (float targets, 1 per sample)") == 1
    )
    data = json.loads((folder / "report" / "report.json").read_text())
    assert data["objective"] == {"metric": "val_mae", "direction": "minimize"}
    values = [t["value"] for t in data["top"]]
    assert values == sorted(values) and data["best"]["value"] == values[0]
    client = MlflowClient(uri)
    best = client.get_run(data["best"]["run_id"])
    assert best.data.metrics["best_val_mae"] == pytest.approx(values[0])
    assert best.data.params["metrics"] == '["mae", "rmse"]' and best.data.params["task"] == "regression"
    markdown = (folder / "report" / "report.md").read_text()
    assert "### Validation curves (val_mae) of the best trial per optimizer" in markdown
    assert "### Objective (val_mae) by trial" in markdown and "`val_mae` lower is better" in markdown
    assert "val_accuracy" not in markdown.split("## Where it came from")[0]
    best_yaml = load_spec(folder / "report" / "best.yaml")
    assert (best_yaml.task, best_yaml.objective.metric, best_yaml.objective.direction) == (
        "regression",
        "val_mae",
        "minimize",
    )
    path = client.download_artifacts(best.info.run_id, "history.csv", str(folder))
    columns = Path(path).read_text().splitlines()[0].split(",")
    assert columns == ["epoch", "loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse"]


@pytest.mark.parametrize("name", ["breast_cancer_binary", "diabetes_regression"])
def test_kerastuner_runs_the_binary_and_regression_specs(name: str, tracking_uri: str) -> None:
    raw = builtin(name, train={"epochs": 2}, budget={"trials": 2})
    spec = load_spec({**raw, "engine": {"name": "kerastuner", "tuner": "random", "seed": 0}})
    result = run_sweep(spec, tracking_uri=tracking_uri)
    assert result.counts["complete"] == 2 and result.metric == spec.objective.metric
    values = result.trials["value"].tolist()
    best = max(values) if spec.objective.direction == "maximize" else min(values)
    assert result.best_value == pytest.approx(best)


MINE = """
import keras

def smooth_ce(y_true, y_pred):
    # Cross-entropy against labels smoothed by 0.1.
    onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), 10)
    return keras.losses.categorical_crossentropy(onehot * 0.9 + 0.01, y_pred)

def agreement(y_true, y_pred):
    # Accuracy by another name: a score Keras cannot tell the direction of.
    labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
    return keras.ops.cast(keras.ops.argmax(y_pred, axis=-1) == labels, "float32")
"""


def test_a_top_k_objective_and_a_loss_and_a_metric_of_the_users_own(workdir: Path) -> None:
    """One sweep on a dataset function: the user's loss and metric as module:function, top-3
    accuracy as the objective."""
    (workdir / "mine.py").write_text(MINE)
    env = {"PYTHONPATH": f"{workdir}:{ROOT}"}
    spec = {
        **DIGITS,
        "name": "mine",
        "dataset": {"name": "tests.experiments.datasets:as_keras", "n": 300, "validation_split": 0.25},
        "train": {
            "epochs": 2,
            "batch_size": 64,
            "loss": "mine:smooth_ce",
            "metrics": ["accuracy", "top_3_accuracy", "mine:agreement"],
        },
        "objective": {"metric": "val_agreement"},
    }
    failed = run_cli(workdir, spec, env=env)
    assert failed.returncode == 2 and not (workdir / "mlflow.db").exists()
    assert failed.stderr.strip() == (  # found when the spec loads: TensorFlow is not even imported
        "error: spec spec.yaml: objective.direction: cannot tell whether 'val_agreement' is to be "
        "maximized or minimized from its name; give it (maximize or minimize)"
    )
    spec["objective"] = {"metric": "val_top_3_accuracy"}  # maximized: the name says so
    out = ok(run_cli(workdir, spec, env=env))
    assert out.count("task: classification, inferred from the training targets (integer class ids 0..9)") == 1
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = trial_runs(client, "mine")
    assert len(runs) == 2
    for run in runs:
        assert run.data.params["loss"] == "mine:smooth_ce"
        assert run.data.params["dataset"] == "tests.experiments.datasets:as_keras"
        best = int(run.data.metrics["best_epoch"])
        at_best = {
            key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}[best]
            for key in ("val_accuracy", "val_agreement", "val_top_3_accuracy")
        }
        assert run.data.metrics["best_val_top_3_accuracy"] == at_best["val_top_3_accuracy"]
        assert at_best["val_agreement"] == pytest.approx(at_best["val_accuracy"], abs=1e-6)
        assert 0 < at_best["val_accuracy"] <= at_best["val_top_3_accuracy"] <= 1
    experiment = client.get_experiment_by_name("mine")
    assert [m.name for m in client.search_logged_models([experiment.experiment_id])] == ["best_model"]


def test_a_sweep_over_streamed_tf_data(workdir: Path) -> None:
    spec = {
        **DIGITS,
        "name": "streamed",
        "dataset": {"name": "tests.experiments.datasets:streamed", "n": 256},
    }
    out = ok(run_cli(workdir, spec))
    assert "task: classification, inferred" in out
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = trial_runs(client, "streamed")
    assert [r.data.tags[tags.STATE] for r in runs] == ["complete", "complete"]
    assert all(0 <= r.data.metrics["best_val_accuracy"] <= 1 for r in runs)


def test_a_folder_of_generated_pngs_end_to_end(workdir: Path, tracking_uri: str) -> None:
    write_pngs(workdir / "pets", per_class=8)
    spec = {
        **DIGITS,
        "name": "pets",
        "dataset": {"name": "dir:pets", "image_size": 8, "color_mode": "grayscale", "validation_split": 0.25},
    }
    result = run_sweep(load_spec(spec), tracking_uri=tracking_uri)
    assert result.counts["complete"] == 2
    runs = trial_runs(MlflowClient(tracking_uri), "pets")
    assert all(r.data.params["task"] == "binary" for r in runs)  # two classes: labels 0 and 1
    assert all("best_val_auc" in r.data.metrics for r in runs)  # the binary task's objective


def test_the_grid_walks_each_choices_own_grid_on_both_engines(tracking_uri: str) -> None:
    space = {
        "optimizer": {
            "choices": {
                "sgd": {"learning_rate": {"choices": ["default", 0.1]}},
                "momentum": {"momentum": {"choices": [0.5, 0.9]}},
                "adam": {},
            }
        },
        "learning_rate": "default",
    }
    expected = {
        ("sgd", 0.01, None, True),
        ("sgd", 0.1, None, False),
        ("momentum", 0.01, 0.5, True),
        ("momentum", 0.01, 0.9, True),
        ("adam", 0.001, None, True),
    }
    spec = {**DIGITS, "name": "grid", "space": space, "budget": {"trials": 20}}
    for engine in ({"sampler": "grid"}, {"name": "kerastuner", "tuner": "grid"}):
        result = run_sweep(load_spec({**spec, "engine": engine}), tracking_uri=tracking_uri)
        assert result.counts["complete"] == 5
    client = MlflowClient(tracking_uri)
    for engine in ("optuna", "kerastuner"):
        runs = [r for r in trial_runs(client, "grid") if r.data.tags[tags.ENGINE] == engine]
        configs = [json.loads(r.data.tags[tags.CONFIG]) for r in runs]
        found = [
            (c["optimizer"], c["learning_rate"], c.get("momentum"), c.get("learning_rate_default", False))
            for c in configs
        ]
        assert len(found) == 5 and set(found) == expected, (engine, found)


def test_tpe_over_sub_spaces_logs_the_plain_names(tracking_uri: str) -> None:
    from tests.sweeps.test_sub_spaces import ISSUE_SPACE

    spec = {**DIGITS, "name": "tpe-sub", "space": ISSUE_SPACE, "engine": {"sampler": "tpe", "seed": 1}}
    result = run_sweep(load_spec({**spec, "budget": {"trials": 4}}), tracking_uri=tracking_uri)
    assert result.counts["complete"] == 4
    client = MlflowClient(tracking_uri)
    for run in trial_runs(client, "tpe-sub"):
        params, config = run.data.params, json.loads(run.data.tags[tags.CONFIG])
        assert not any("@" in key for key in [*params, *config])
        assert float(params["learning_rate"]) == config["learning_rate"] > 0
        default = params.get("learning_rate_default") == "True"
        if config["optimizer"] == "momentum":  # `learning_rate: default` in its sub-space
            assert default and config["learning_rate"] == 0.01
        elif config["optimizer"] == "sgd":
            assert default == (config["learning_rate"] == 0.01)
        else:
            assert not default
    experiment = client.get_experiment_by_name("tpe-sub")
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    assert not any("@" in key for key in parent.data.tags if key.startswith("best."))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"task": "regression", "objective": {"metric": "val_auc"}},
            "objective.metric: 'val_auc' is not a metric the compiled model logs for task regression; "
            "it logs: loss, mae, rmse, val_loss, val_mae, val_rmse",
        ),
        (
            {"objective": {"metric": "val_auc"}},
            "objective.metric: 'val_auc' is not a metric the compiled model logs for task classification; "
            "it logs: loss, accuracy, val_loss, val_accuracy (add the metric to train.metrics) (task "
            "classification was inferred from the data",
        ),
        (
            {"task": "binary"},
            "y_train: task binary needs labels 0 and 1; got 10 classes (0, 1, 2, 3, 4, ...) "
            "(for more classes use task: classification)",
        ),
    ],
)
def test_task_errors_exit_2_with_one_line_before_any_store(
    workdir: Path, spec: dict[str, Any], expected: str
) -> None:
    result = run_cli(workdir, {**DIGITS, "name": "bad", **spec})
    assert result.returncode == 2, (result.stdout, result.stderr)
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert expected in line, line
    assert "Traceback" not in result.stderr
    assert not (workdir / "mlflow.db").exists() and not (workdir / "optuna.journal").exists()


@pytest.mark.parametrize(
    ("spec", "files", "expected"),
    [
        (
            {"task": "classification", "dataset": {"name": "npz:floats.npz"}},
            {"floats.npz": {"x_train": np.zeros((20, 3)), "y_train": np.linspace(0, 1, 20)}},
            "y_train must hold integer class ids; got dtype float64 such as 0.0526316 at index 1 (task "
            "classification; for float targets use task: regression)",
        ),
        (
            {"dataset": {"name": "npz:nan.npz"}},
            {"nan.npz": {"x_train": np.zeros((20, 3)), "y_train": np.r_[np.zeros(19), np.nan]}},
            "y_train holds 1 NaN value (first at index [19]",
        ),
        ({"train": {"loss": "huberr"}}, {}, "train.loss: unknown Keras loss 'huberr'"),
        ({"train": {"metrics": ["accuracy", "aucc"]}}, {}, "train.metrics: unknown Keras metric 'aucc'"),
        ({"train": {"loss": "nowhere:loss"}}, {}, "train.loss: loss 'nowhere:loss': cannot import module"),
        (
            {
                "dataset": {"name": "tests.experiments.datasets:streamed"},
                "space": {"batch_size": {"choices": [16, 32]}},
            },
            {},
            "space.batch_size: the dataset streams its own batches; batch_size cannot be searched",
        ),
    ],
)
def test_what_the_data_decide_is_checked_before_any_store(
    workdir: Path, spec: dict[str, Any], files: dict[str, dict[str, np.ndarray]], expected: str
) -> None:
    from experiments.errors import DatasetError
    from sweeps.errors import SpecError
    from sweeps.running.runner import prepare

    for name, arrays in files.items():
        np.savez(workdir / name, **arrays)
    with pytest.raises((SpecError, DatasetError)) as info:
        prepare(load_spec({**DIGITS, "name": "bad", **spec}))
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert not list(workdir.glob("mlflow.db*")) and not (workdir / "optuna.journal").exists()
