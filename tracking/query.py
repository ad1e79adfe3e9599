"""Stored runs back as pandas DataFrames: trials of a sweep, and the sweeps in a store."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tracking import tags

SUMMARY_METRICS = ("best_epoch", "stopped_epoch", "epochs_run", "train_seconds", "trial_seconds")


def _all_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def trial_runs(client: MlflowClient, sweep: str) -> list[Run]:
    """Every trial run of a sweep (any engine, any state), oldest trial first."""
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return []
    runs = _all_runs(client, experiment.experiment_id, f"tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}'")
    return sorted(runs, key=lambda r: (int(r.data.tags.get(tags.TRIAL, -1)), r.info.start_time))


def trial_row(run: Run) -> dict[str, Any]:
    """One trial as a flat row: identity, state, config (exact types), value and summary."""
    t, m = run.data.tags, run.data.metrics
    objective = run.data.params.get("objective", "")
    row: dict[str, Any] = {
        "trial": int(t.get(tags.TRIAL, -1)),
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "state": t.get(tags.STATE, ""),
        "status": run.info.status,
        "engine": t.get(tags.ENGINE, run.data.params.get("engine", "")),
        "parent_run_id": t.get(tags.PARENT, ""),
        "value": m.get(f"best_{objective}"),
    }
    row.update(json.loads(t.get(tags.CONFIG, "{}")))
    row.update({key: m.get(key) for key in SUMMARY_METRICS})
    row["reason"] = t.get(tags.REASON, "")
    row["error"] = t.get(tags.ERROR, "")
    return row


def trials_frame(tracking_uri: str, sweep: str, parent: str | None = None) -> pd.DataFrame:
    """A sweep's trials, one row each, in trial order; with `parent`, only those nested under
    that parent run (one engine's, since a restart: the current search's)."""
    client = MlflowClient(tracking_uri)
    runs = trial_runs(client, sweep)
    if parent is not None:
        runs = [run for run in runs if run.data.tags.get(tags.PARENT) == parent]
    return pd.DataFrame([trial_row(run) for run in runs])


def sweeps_frame(tracking_uri: str) -> pd.DataFrame:
    """The sweeps in a store: name, status, trials, best value, and when it started."""
    client = MlflowClient(tracking_uri)
    rows = []
    for experiment in client.search_experiments():
        parents = client.search_runs(
            [experiment.experiment_id],
            f"tags.`{tags.ROLE}` = '{tags.ROLE_SWEEP}'",
            max_results=1,
        )
        if not parents:
            continue
        parent = parents[0]
        metrics = parent.data.metrics
        objective = parent.data.params.get("objective.metric", "")
        rows.append(
            {
                "sweep": experiment.name,
                "status": parent.info.status,
                "engine": parent.data.params.get("engine.name", ""),
                "trials": int(metrics.get("trials_total", 0)),
                "objective": objective,
                "best": metrics.get(f"best_{objective}"),
                "started": pd.to_datetime(parent.info.start_time, unit="ms"),
            }
        )
    return pd.DataFrame(rows, columns=["sweep", "status", "engine", "trials", "objective", "best", "started"])


@dataclass(frozen=True)
class StoredSweep:
    """A sweep as MLflow holds it, finished or still running: what a report is built from.

    The same spec run by two engines shares the experiment, each engine with its own parent
    run and trials, so a stored sweep is one parent run and the trials nested under it.
    """

    name: str
    engine: str
    experiment_id: str
    parent: Run
    spec_yaml: str | None  # the parent run's spec.yaml artifact
    trials: pd.DataFrame  # `trial_row`s, plus each trial's `config` as a dict


def parent_runs(client: MlflowClient, sweep: str) -> list[Run]:
    """The sweep's parent runs, oldest first: one per engine that ran it."""
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return []
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.`{tags.ROLE}` = '{tags.ROLE_SWEEP}'",
        order_by=["attributes.start_time ASC"],
    )


def read_text_artifact(client: MlflowClient, run_id: str, path: str) -> str | None:
    """A small text artifact of a run, or None when the run has no such file."""
    folder = str(Path(path).parent) if "/" in path else None
    if path not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text(encoding="utf-8")


def load_sweeps(tracking_uri: str, sweep: str) -> list[StoredSweep]:
    """Each engine's run of a sweep (parent run, spec and trials); empty when the store has none."""
    client = MlflowClient(tracking_uri)
    parents = parent_runs(client, sweep)
    trials = trial_runs(client, sweep) if parents else []
    stored = []
    for parent in parents:
        rows = [
            {**trial_row(run), "config": json.loads(run.data.tags.get(tags.CONFIG, "{}"))}
            for run in trials
            if run.data.tags.get(tags.PARENT) == parent.info.run_id
        ]
        stored.append(
            StoredSweep(
                name=sweep,
                engine=parent.data.tags.get(tags.ENGINE, parent.data.params.get("engine.name", "")),
                experiment_id=parent.info.experiment_id,
                parent=parent,
                spec_yaml=read_text_artifact(client, parent.info.run_id, "spec.yaml"),
                trials=pd.DataFrame(rows),
            )
        )
    return stored


def metric_histories(tracking_uri: str, run_ids: list[str], key: str) -> dict[str, list[tuple[int, float]]]:
    """Per-step values of one metric for a few runs: (step, value) in step order."""
    client = MlflowClient(tracking_uri)
    history = client.get_metric_history
    return {run_id: sorted((m.step, m.value) for m in history(run_id, key)) for run_id in run_ids}


def find_retrain(tracking_uri: str, experiment_id: str, source_run_id: str) -> dict[str, Any] | None:
    """The newest finished retrain of a trial (`sweep report --retrain`): its run, test metrics,
    epochs and the model version it registered; None if the trial was never retrained."""
    client = MlflowClient(tracking_uri)
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{tags.ROLE}` = '{tags.ROLE_RETRAIN}' and tags.`{tags.SOURCE_RUN}` = '{source_run_id}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    registered = run.data.tags.get(tags.REGISTERED_MODEL)  # NAME/VERSION
    name, _, version = registered.rpartition("/") if registered else (None, None, None)
    params = run.data.params
    return {
        "run_id": run.info.run_id,
        "model_name": name,
        "version": version,
        "model_uri": f"models:/{registered}" if registered else None,
        "epochs": int(params["epochs"]),
        "train_samples": int(params["train_samples"]),
        "test_samples": int(params["test_samples"]),
        "source_run_id": source_run_id,
        "test": {k: v for k, v in sorted(run.data.metrics.items()) if k.startswith("test_")},
    }
