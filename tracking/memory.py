"""The sweep's memory in MLflow: the spec its parent run was started with, read without
writing, and the parent run set aside when the sweep is started again from scratch."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow.entities import Run, RunTag
from mlflow.tracking import MlflowClient

from tracking import tags
from tracking.query import parent_runs, read_text_artifact
from tracking.store import sqlite_path

__all__ = ["StoredParent", "archive_parent", "stored_parent"]


@dataclass(frozen=True)
class StoredParent:
    run_id: str
    status: str
    spec_yaml: str | None  # None for a parent run that recorded no spec.yaml


def _engine_of(run: Run) -> str | None:
    return run.data.tags.get(tags.ENGINE, run.data.params.get("engine.name"))


def stored_parent(tracking_uri: str, sweep: str, engine: str) -> StoredParent | None:
    """The parent run `engine` opened for `sweep`, with its spec.yaml; None when there is none.

    Only reads: a SQLite store that does not exist yet is not created.
    """
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        return None
    client = MlflowClient(tracking_uri)
    for run in parent_runs(client, sweep):
        if _engine_of(run) == engine:
            text = read_text_artifact(client, run.info.run_id, "spec.yaml")
            return StoredParent(run.info.run_id, run.info.status, text)
    return None


def archive_parent(tracking_uri: str, run_id: str, archived_as: str) -> None:
    """Set a parent run aside, kept whole: renamed `archived_as` and no longer the sweep's
    parent run (its role becomes `restarted`), so the sweep opens a new one. A parent or trial
    run still RUNNING (its process died) is closed as KILLED, as a resumed sweep would."""
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    open_trials = client.search_runs(
        [run.info.experiment_id],
        f"tags.`{tags.PARENT}` = '{run_id}' and attributes.status = 'RUNNING'",
    )
    for trial in open_trials:
        client.set_terminated(trial.info.run_id, status="KILLED")
    client.log_batch(
        run_id,
        tags=[RunTag(tags.ROLE, tags.ROLE_RESTARTED), RunTag(tags.ARCHIVED_AS, archived_as)],
    )
    client.update_run(run_id, name=archived_as)
    if run.info.status == "RUNNING":
        client.set_terminated(run_id, status="KILLED")
