"""`sweep report`, `--retrain`, `best.yaml` and `sweep compare` end to end, through the real CLI on
a real sweep (see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from sweeps.spec.schema import load_spec
from sweeps.spec.space import Fixed
from tests.conftest import sweep_cli
from tests.report.conftest import SPEC, SWEEP, Reported, Swept
from tracking import tags

PNG = b"\x89PNG\r\n\x1a\n"


def trial_runs(client: MlflowClient, sweep: str) -> list:
    experiment = client.get_experiment_by_name(sweep)
    return client.search_runs([experiment.experiment_id], f"tags.`{tags.ROLE}` = 'trial'")


def best_run(client: MlflowClient, sweep: str):
    runs = trial_runs(client, sweep)
    return max(runs, key=lambda r: (r.data.metrics["best_val_accuracy"], -int(r.data.tags[tags.TRIAL])))


@pytest.fixture(scope="module")
def rerun(reported: Reported) -> Swept:
    """`sweep run best.yaml`, as the report tells a user to, in the same store."""
    result = sweep_cli("run", str(reported.folder / "best.yaml"), cwd=reported.folder.parent)
    assert result.returncode == 0, result.stderr
    return Swept(reported.folder.parent, reported.uri)


def test_report_writes_the_four_files(reported: Reported) -> None:
    folder = reported.folder
    for name in ("report.md", "report.html", "report.json", "best.yaml"):
        assert (folder / name).stat().st_size > 0, name
        assert f"report/{name}" in reported.result.stdout
    assert "logged as artifacts of the sweep's parent run" in reported.result.stdout


def test_report_json_matches_the_runs(reported: Reported) -> None:
    data = json.loads((reported.folder / "report.json").read_text())
    client = MlflowClient(reported.uri)
    best = best_run(client, SWEEP)
    assert data["sweep"] == SWEEP and data["status"] == "FINISHED"
    assert data["objective"] == {"metric": "val_accuracy", "direction": "maximize"}
    assert data["counts"] == {"complete": 5, "pruned": 0, "failed": 0, "running": 0}
    assert data["best"]["run_id"] == best.info.run_id
    assert data["best"]["value"] == pytest.approx(best.data.metrics["best_val_accuracy"])
    assert data["best"]["config"] == json.loads(best.data.tags[tags.CONFIG])
    assert data["best"]["best_epoch"] == int(best.data.metrics["best_epoch"])
    assert [t["rank"] for t in data["top"]] == [1, 2, 3]
    values = [t["value"] for t in data["top"]]
    assert values == sorted(values, reverse=True) and values[0] == data["best"]["value"]
    assert len(data["trials"]) == 5 and len(data["expected_best"]) == 5
    assert data["expected_best"][-1]["mean"] <= data["best"]["value"]
    assert set(data["importance"]["values"]) <= {"optimizer", "learning_rate", "dropout", "patience"}
    assert sum(data["importance"]["values"].values()) == pytest.approx(1.0)
    optimizers = {row["optimizer"]: row for row in data["optimizers"]}
    assert sum(row["trials"] for row in optimizers.values()) == 5
    assert optimizers[data["best"]["config"]["optimizer"]]["best"] == data["best"]["value"]
    provenance = data["provenance"]
    assert provenance["sampler"] == "random" and provenance["engine_seed"] == 3
    assert provenance["dataset"]["name"] == "digits" and provenance["versions_from"].startswith(
        "as the sweep"
    )
    assert {"python", "mlflow", "optuna", "keras"} <= set(provenance["versions"])
    assert "name: tiny-report" in provenance["spec_yaml"]
    for name, path in data["plots"].items():
        assert (reported.folder / path).read_bytes().startswith(PNG), name
    assert {
        "objective_by_trial",
        "learning_rate",
        "validation_curves",
        "other_params",
        "importance",
        "expected_best",
    } <= set(data["plots"])


def test_report_markdown_reads_as_a_report(reported: Reported) -> None:
    text = (reported.folder / "report.md").read_text()
    data = json.loads((reported.folder / "report.json").read_text())
    for heading in (
        "## Best config",
        "## Top 3 of 5 complete trials",
        "## Optimizers compared",
        "## Plots",
        "## Expected best score by budget",
        "## Where it came from",
    ):
        assert heading in text, heading
    assert f"val_accuracy = {data['best']['value']:.4f}" in text
    assert data["best"]["run_id"] in text and f"sweep ui {SWEEP} --tracking-uri" in text
    assert "sweep run best.yaml" in text
    for path in data["plots"].values():
        assert f"]({path})" in text


def test_best_yaml_is_the_best_config_alone(reported: Reported) -> None:
    data = json.loads((reported.folder / "report.json").read_text())
    spec = load_spec(reported.folder / "best.yaml")
    assert spec.name == f"{SWEEP}-best" and spec.budget.trials == 1
    assert all(isinstance(p, Fixed) for p in spec.space.params.values())
    assert spec.space.fixed() == data["best"]["config"]
    assert spec.dataset.model_dump() == load_spec(SPEC).dataset.model_dump()
    assert spec.train == load_spec(SPEC).train


def test_best_yaml_reproduces_the_best_trial(rerun: Swept, reported: Reported) -> None:
    """Training on CPU is deterministic for the same seed, split and config, so the re-run gives
    the same validation accuracy. The tolerance is half a validation sample (0.5 / 360): any
    different prediction fails, float noise in the metric does not."""
    from experiments.data import load_dataset

    n_val = len(load_dataset("digits", validation_split=0.25, seed=7).y_val)
    client = MlflowClient(rerun.uri)
    original = best_run(client, SWEEP)
    (again,) = trial_runs(client, f"{SWEEP}-best")
    assert json.loads(again.data.tags[tags.CONFIG]) == json.loads(original.data.tags[tags.CONFIG])
    assert again.data.metrics["best_val_accuracy"] == pytest.approx(
        original.data.metrics["best_val_accuracy"], abs=0.5 / n_val
    )
    assert again.data.metrics["best_epoch"] == original.data.metrics["best_epoch"]


def test_report_is_logged_on_the_parent_run(reported: Reported) -> None:
    client = MlflowClient(reported.uri)
    experiment = client.get_experiment_by_name(SWEEP)
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    files = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{n}" for n in ("report.md", "report.html", "report.json", "best.yaml", "plots")} <= files
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "report/plots")}
    assert "report/plots/expected_best.png" in plots
    note = parent.data.tags["mlflow.note.content"]  # the sweep's summary, now saying where the report is
    assert note.startswith(f"**Sweep `{SWEEP}`: finished**, 5 of 5 trials (5 complete).")
    assert (
        f"#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts/report/report.html"
        in note
    )
    assert str(reported.folder.resolve()) in note


def test_retrain_registers_the_model_with_test_metrics(reported: Reported) -> None:
    client = MlflowClient(reported.uri)
    data = json.loads((reported.folder / "report.json").read_text())
    retrain = data["retrain"]
    (version,) = client.search_model_versions(f"name='{SWEEP}'")
    assert str(version.version) == retrain["version"] and version.status == "READY"
    assert version.tags[tags.SOURCE_RUN] == data["best"]["run_id"]
    mlflow.set_tracking_uri(reported.uri)
    info = mlflow.models.get_model_info(f"models:/{SWEEP}/{version.version}")
    assert info.signature is not None and tuple(info.signature.inputs.inputs[0].shape) == (-1, 8, 8, 1)
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.info.run_id == retrain["run_id"]
    assert run.data.tags[tags.ROLE] == tags.ROLE_RETRAIN and run.data.tags[tags.SWEEP] == SWEEP
    assert run.data.tags[tags.PARENT] == data["parent_run_id"]
    assert run.data.tags[tags.SOURCE_RUN] == data["best"]["run_id"]
    assert 0 < run.data.metrics["test_accuracy"] <= 1 and run.data.metrics["test_loss"] > 0
    assert retrain["test"]["test_accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
    assert int(run.data.params["epochs"]) == data["best"]["best_epoch"] == retrain["epochs"]
    assert int(run.data.params["train_samples"]) == 1438  # train + validation: digits less its test tail
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == list(range(1, retrain["epochs"] + 1))
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"models:/{SWEEP}/{version.version}/requirements.txt")
    )
    assert {line.split("==")[0] for line in requirements.read_text().split()} >= {"keras", "tensorflow"}
    assert "test_accuracy" in (reported.folder / "report.md").read_text()


def test_compare_prints_sweeps_side_by_side_and_writes_csv(rerun: Swept) -> None:
    result = sweep_cli("compare", SWEEP, f"{SWEEP}-best", "--csv", "compare.csv", cwd=rerun.folder)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header[:3] == ["sweep", "status", "engine"] and {"trials", "best", "epochs"} <= set(header)
    frame = pd.read_csv(rerun.folder / "compare.csv")
    assert list(frame["sweep"]) == [SWEEP, f"{SWEEP}-best"]
    assert list(frame["trials"]) == [5, 1] and list(frame["engine"]) == ["optuna", "optuna"]
    client = MlflowClient(rerun.uri)
    spent = sum(int(r.data.metrics["epochs_run"]) for r in trial_runs(client, SWEEP))
    assert frame.loc[0, "epochs"] == spent
    assert frame.loc[0, "best"] == pytest.approx(best_run(client, SWEEP).data.metrics["best_val_accuracy"])


def test_unknown_sweep_is_one_line_listing_the_store(swept: Swept) -> None:
    result = sweep_cli("report", "tiny-reprt", cwd=swept.folder)
    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: no sweep 'tiny-reprt'") and f"did you mean '{SWEEP}'" in line
    assert "sweeps there: " in line and SWEEP in line.split("sweeps there: ")[1].split(", ")


def test_report_without_a_store_creates_none(workdir: Path) -> None:
    result = sweep_cli("report", "quickstart", cwd=workdir)
    assert result.returncode == 2
    assert "error: no MLflow store at" in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "mlflow.db").exists()
