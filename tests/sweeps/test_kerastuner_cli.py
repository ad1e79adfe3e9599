"""The KerasTuner engine end to end: real training, a real SQLite MLflow store, the real CLI.

The same spec with only `engine` changed runs on Optuna and on KerasTuner; both write their
trials, with the same columns, into the sweep's one experiment. A second `sweep run`
continues the KerasTuner project, and so does one after the first was SIGKILLed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.engines.kerastuner_engine import KT_CONTINUES_TAG, KT_TRIAL_ID_TAG
from sweeps.running.runner import run_sweep
from sweeps.spec.schema import load_spec
from tests.conftest import ROOT, sweep_cli
from tests.sweeps.test_cli_run import TINY, trial_runs
from tracking import tags

SIDE = {
    **TINY,
    "name": "side",
    "train": {"epochs": 2, "batch_size": 64},
    # Momentum for the SGD variants only: both engines must leave it out elsewhere.
    "space": {**TINY["space"], "momentum": {"low": 0.5, "high": 0.95}},
}
KT_ENGINE = {"name": "kerastuner", "tuner": "random", "seed": 3}
# What a KerasTuner trial run has that an Optuna one does not (hyperband adds its rounds).
KT_PARAMS = {"tuner"}
HYPERBAND_PARAMS = {"initial_epoch", "hyperband_bracket", "hyperband_round", "continues_trial"}
KT_TAGS = {KT_TRIAL_ID_TAG}


def cli(folder: Path, uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = sweep_cli("run", *args, "--tracking-uri", uri, cwd=folder)
    assert result.returncode == 0, result.stderr
    return result


def no_runs_left_running(client: MlflowClient) -> None:
    running = [
        r.info.run_name
        for e in client.search_experiments()
        for r in client.search_runs([e.experiment_id], "attributes.status = 'RUNNING'")
    ]
    assert not running, running


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory, _template_db: Path) -> tuple[Path, str, dict]:
    """`side` on Optuna, then on KerasTuner for 2 trials (both in this process, to save
    startups), then `sweep run --trials 3` to continue it."""
    folder = tmp_path_factory.mktemp("side")
    shutil.copy(_template_db, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    optuna_result = run_sweep(load_spec({**SIDE, "budget": {"trials": 2}}), tracking_uri=uri)
    kt_spec = {**SIDE, "engine": KT_ENGINE, "budget": {"trials": 2}}
    (folder / "kt.yaml").write_text(yaml.safe_dump(kt_spec))
    client = MlflowClient(uri)
    first = run_sweep(load_spec(kt_spec), tracking_uri=uri)  # the project goes beside the store
    before = {
        r.info.run_id: (r.data.tags[tags.TRIAL], r.data.metrics)
        for r in trial_runs(client, "side")
        if r.data.tags[tags.ENGINE] == "kerastuner"
    }
    second = cli(folder, uri, "kt.yaml", "--trials", "3")
    return folder, uri, {"optuna": optuna_result, "first": first, "second": second, "before": before}


def runs_by_engine(client: MlflowClient, sweep: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"optuna": [], "kerastuner": []}
    for run in trial_runs(client, sweep):
        out[run.data.tags[tags.ENGINE]].append(run)
    return out


def test_both_engines_share_the_experiment_with_a_parent_each(side_by_side) -> None:
    _, uri, results = side_by_side
    client = MlflowClient(uri)
    no_runs_left_running(client)
    assert [e.name for e in client.search_experiments() if e.name != "Default"] == ["side"]
    exp = client.get_experiment_by_name("side")
    parents = client.search_runs([exp.experiment_id], f"tags.`{tags.ROLE}` = 'sweep'")
    by_engine = {p.data.params["engine.name"]: p for p in parents}
    assert sorted(by_engine) == ["kerastuner", "optuna"] and len(parents) == 2
    assert by_engine["kerastuner"].data.params["engine.tuner"] == "random"
    assert "engine.sampler" not in by_engine["kerastuner"].data.params
    assert by_engine["kerastuner"].data.metrics["trials_complete"] == 3
    assert by_engine["optuna"].data.metrics["trials_complete"] == 2
    for engine, runs in runs_by_engine(client, "side").items():
        assert len(runs) == {"optuna": 2, "kerastuner": 3}[engine]
        for run in runs:
            assert run.data.tags[tags.PARENT] == by_engine[engine].info.run_id
    # The best model of each engine is a logged model of that engine's best trial (one more each
    # time a continued sweep finds a better one), and its parent run lists it.
    models = client.search_logged_models([exp.experiment_id])
    trial_of = {m.model_id: client.get_run(m.source_run_id).data.tags for m in models}
    assert {t[tags.PARENT] for t in trial_of.values()} == {p.info.run_id for p in parents}
    for parent in parents:
        listed = [o.model_id for o in client.get_run(parent.info.run_id).outputs.model_outputs]
        assert {trial_of[m][tags.PARENT] for m in listed} == {parent.info.run_id}
        assert parent.data.tags[tags.BEST_MODEL_TRIAL] in {trial_of[m][tags.TRIAL] for m in listed}


def test_trial_runs_have_the_same_columns(side_by_side) -> None:
    _, uri, _ = side_by_side
    client = MlflowClient(uri)
    runs = runs_by_engine(client, "side")

    def keys(engine: str, what: str) -> set[str]:
        found = {frozenset(k for k in getattr(r.data, what) if k != "momentum") for r in runs[engine]}
        assert len(found) == 1, found  # all trials of an engine alike
        return set(next(iter(found)))

    assert keys("kerastuner", "params") == keys("optuna", "params") | KT_PARAMS
    assert keys("kerastuner", "metrics") == keys("optuna", "metrics")
    kt_tags = {k for k in runs["kerastuner"][0].data.tags if not k.startswith("mlflow.")}
    optuna_tags = {k for k in runs["optuna"][0].data.tags if not k.startswith("mlflow.")}
    assert kt_tags == optuna_tags | KT_TAGS
    for run in runs["kerastuner"]:
        params, config = run.data.params, json.loads(run.data.tags[tags.CONFIG])
        assert params["engine"] == "kerastuner" and params["sampler"] == params["tuner"] == "random"
        assert run.data.tags[KT_TRIAL_ID_TAG] == f"{int(run.data.tags[tags.TRIAL]):04d}"
        with_momentum = config["optimizer"] in ("momentum", "nesterov")
        assert ("momentum" in config) == ("momentum" in params) == with_momentum
        assert params["optimizer"] == config["optimizer"]
        assert float(params["learning_rate"]) == config["learning_rate"]
        epochs_run = int(run.data.metrics["epochs_run"])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs_run + 1)), key
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"history.csv", "curves.png", "checkpoint"} <= files


def test_a_second_sweep_run_continues_the_project(side_by_side) -> None:
    folder, uri, results = side_by_side
    assert (results["first"].counts, results["first"].stop_reason) == (
        {"complete": 2, "pruned": 0, "failed": 0},
        "budget",
    )
    assert "sweep side: 3 complete, 0 pruned, 0 failed (stopped: budget)" in results["second"].stdout
    client = MlflowClient(uri)
    runs = runs_by_engine(client, "side")["kerastuner"]
    assert [r.data.tags[tags.TRIAL] for r in runs] == ["0", "1", "2"]
    assert {r.info.run_id: (r.data.tags[tags.TRIAL], r.data.metrics) for r in runs[:2]} == results["before"]
    project = folder / "kerastuner" / "side"
    assert sorted(p.name for p in project.glob("trial_*")) == ["trial_0000", "trial_0001", "trial_0002"]
    assert not list(project.glob("trial_*/checkpoint.keras"))  # only hyperband keeps weights


def test_hyperband_rounds_in_mlflow(tracking_uri: str, workdir: Path) -> None:
    """Bracket 1 of max_epochs 3: three configs for one epoch, then the best one continued
    from its checkpoint for epochs 2 and 3, logged at steps 2 and 3 of its own run."""
    spec = load_spec(
        {
            **SIDE,
            "name": "hb",
            "train": {"epochs": 3, "batch_size": 64},
            "engine": {"name": "kerastuner", "tuner": "hyperband", "seed": 0},
            "budget": {"trials": 4},
        }
    )
    result = run_sweep(spec, tracking_uri=tracking_uri)
    assert result.stop_reason == "budget" and result.counts["complete"] == 4
    client = MlflowClient(tracking_uri)
    runs = trial_runs(client, "hb")
    assert [r.data.tags[tags.TRIAL] for r in runs] == ["0", "1", "2", "3"]
    first_round, continued = runs[:3], runs[3]
    for run in first_round:
        assert run.data.params["epochs"] == "1" and run.data.params["initial_epoch"] == "0"
        assert (run.data.params["hyperband_bracket"], run.data.params["hyperband_round"]) == ("1", "0")
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1]
    params = continued.data.params
    assert (params["epochs"], params["initial_epoch"], params["hyperband_round"]) == ("3", "1", "1")
    assert set(params) - set(first_round[0].data.params) == {"continues_trial"}
    source = next(r for r in first_round if r.data.tags[tags.TRIAL] == params["continues_trial"])
    assert continued.data.tags[KT_CONTINUES_TAG] == source.data.tags[KT_TRIAL_ID_TAG]
    assert json.loads(continued.data.tags[tags.CONFIG]) == json.loads(source.data.tags[tags.CONFIG])
    best_first = max(r.data.metrics["best_val_accuracy"] for r in first_round)
    assert source.data.metrics["best_val_accuracy"] == best_first
    steps = sorted(m.step for m in client.get_metric_history(continued.info.run_id, "val_accuracy"))
    assert steps == list(range(2, 2 + int(continued.data.metrics["epochs_run"])))
    assert 2 <= continued.data.metrics["best_epoch"] <= 3
    # Continued from the first round's weights, not from scratch: its first epoch (2) starts
    # where epoch 1 of the source ended.
    first_loss = {m.step: m.value for m in client.get_metric_history(continued.info.run_id, "loss")}[2]
    source_loss = client.get_metric_history(source.info.run_id, "loss")[0].value
    assert first_loss < source_loss
    kept = sorted(p.parent.name for p in (workdir / "kerastuner" / "hb").glob("trial_*/checkpoint.keras"))
    assert kept == ["trial_0000", "trial_0001", "trial_0002"]  # the last round's is not needed
    assert result.best_run_id in {r.info.run_id for r in runs}


def _start(folder: Path, uri: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", "kt.yaml", "--tracking-uri", uri],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}: {process.communicate()}")
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_sigkilled_sweep_resumes(tracking_uri: str, workdir: Path) -> None:
    # Trials of a dozen full epochs: a trial of two epochs took under a second, short enough
    # that trial 1 ended before the poll saw it training, once trial 0's record was seen.
    spec = {
        **SIDE,
        "name": "killed",
        "engine": KT_ENGINE,
        "budget": {"trials": 3},
        "train": {"epochs": 12, "batch_size": 16},
        "space": {**SIDE["space"], "patience": 12},
    }
    (workdir / "kt.yaml").write_text(yaml.safe_dump(spec))
    client = MlflowClient(tracking_uri)
    record = workdir / "kerastuner" / "killed" / "trial_0001" / "sweeplab.json"

    def first_trial_recorded() -> bool:
        runs = trial_runs(client, "killed") if client.get_experiment_by_name("killed") else []
        return any(r.data.tags[tags.TRIAL] == "0" and r.info.status == "FINISHED" for r in runs)

    def second_trial_training() -> bool:
        return record.exists() and json.loads(record.read_text()).get("state") == "running"

    process = _start(workdir, tracking_uri)
    try:
        _wait_for(first_trial_recorded, process, "trial 0 was recorded")
        _wait_for(second_trial_training, process, "trial 1 started")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    killed = json.loads(record.read_text())["run_id"]
    assert client.get_run(killed).info.status == "RUNNING"

    result = run_sweep(load_spec(spec), tracking_uri=tracking_uri)  # the re-run, in this process
    assert (result.counts, result.stop_reason) == ({"complete": 3, "pruned": 0, "failed": 0}, "budget")
    runs = trial_runs(client, "killed")
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(r.data.tags[tags.TRIAL] for r in done) == ["0", "1", "2"]
    # The run the kill left behind is closed; KerasTuner ran its trial again, same id and config.
    closed = client.get_run(killed)
    assert closed.info.status == "KILLED" and closed.data.tags[tags.REASON] == "worker_lost"
    again = next(r for r in done if r.data.tags[tags.TRIAL] == "1")
    assert json.loads(again.data.tags[tags.CONFIG]) == json.loads(closed.data.tags[tags.CONFIG])
    assert len(runs) == 4
