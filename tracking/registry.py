"""What a report writes back to MLflow: its files on the sweep's parent run, and the retrained
best model as a run of its own, registered in the Model Registry under the sweep's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from tracking import tags
from tracking.provenance import provenance_tags
from tracking.runs import _now, _param_value

REPORT_ARTIFACT_DIR = "report"


def log_report(tracking_uri: str, parent_run_id: str, folder: Path, note: str) -> str:
    """Upload a written report under `report/` of the parent run (over an older one's files),
    and make `note` (Markdown) the run's description, which the MLflow UI shows on its page."""
    client = MlflowClient(tracking_uri)
    client.log_artifacts(parent_run_id, str(folder), REPORT_ARTIFACT_DIR)
    client.set_tag(parent_run_id, MLFLOW_RUN_NOTE, note)
    return REPORT_ARTIFACT_DIR


def log_retrain(
    tracking_uri: str,
    *,
    sweep: str,
    parent_run_id: str,
    source_run_id: str,
    run_name: str,
    params: Mapping[str, Any],
    history: Mapping[str, Sequence[float]],
    metrics: Mapping[str, float],
    model: Any,
    example: Any,
    pip_requirements: list[str],
) -> str:
    """Record a retrained best model: a run nested under the sweep's parent (so the UI shows it
    with the trials), its per-epoch history (step = epoch) and final metrics, and the model,
    logged with a signature and explicit requirements and registered under the sweep's name.
    Returns the new run's id.
    """
    import mlflow

    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    run_tags = {
        tags.PARENT: parent_run_id,
        tags.ROLE: tags.ROLE_RETRAIN,
        tags.SWEEP: sweep,
        tags.SOURCE_RUN: source_run_id,
        **provenance_tags(),
    }
    run = client.create_run(parent.info.experiment_id, run_name=run_name, tags=run_tags)
    run_id = run.info.run_id
    status = "FAILED"
    try:
        now = _now()
        steps = [
            Metric(key, float(value), now, epoch)
            for key, values in history.items()
            for epoch, value in enumerate(values, start=1)
        ]
        client.log_batch(
            run_id,
            metrics=steps + [Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, _param_value(v)) for k, v in params.items()],
        )
        signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.keras.log_model(
                model,
                name="model",
                signature=signature,
                pip_requirements=pip_requirements,
                registered_model_name=sweep,
            )
        version = str(info.registered_model_version)
        description = (
            f"Best config of sweep {sweep!r} (trial run {source_run_id}), retrained on train+validation; "
            + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test_"))
        )
        client.update_model_version(sweep, version, description=description)
        for key, value in {tags.SWEEP: sweep, tags.SOURCE_RUN: source_run_id, "retrain_run": run_id}.items():
            client.set_model_version_tag(sweep, version, key, value)
        client.set_tag(run_id, tags.REGISTERED_MODEL, f"{sweep}/{version}")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    return run_id
