"""The sweep's best model as an MLflow 3 logged model.

It is the best trial's checkpoint, so it belongs to that trial's run: the run's page lists it
among its logged models, the experiment's Models tab shows it with the trial's metrics (the
summary and, at the best epoch, the per-epoch ones: the checkpoint's own scores), and the
sweep's parent run lists it too. Requirements are given explicitly: inferring them costs
seconds per call.
"""

from __future__ import annotations

import tempfile

from mlflow.entities import LoggedModelOutput, Metric, Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from tracking import tags

MODEL_NAME = "best_model"
SUMMARY = ("best_epoch", "stopped_epoch", "epochs_run", "train_seconds")


def _validation_dataset(run: Run) -> tuple[str | None, str | None]:
    """(name, digest) of the run's validation input, which its val_* metrics were scored on."""
    for item in run.inputs.dataset_inputs if run.inputs else []:
        if any(t.key == MLFLOW_DATASET_CONTEXT and t.value == "validation" for t in item.tags):
            return item.dataset.name, item.dataset.digest
    return None, None


def model_metrics(client: MlflowClient, run: Run, model_id: str) -> list[Metric]:
    """The trial's summary metrics and its per-epoch metrics at the best epoch, for the model."""
    objective = f"best_{run.data.params.get('objective', '')}"
    best_epoch = int(run.data.metrics.get("best_epoch", 0))
    name, digest = _validation_dataset(run)
    found: list[Metric] = []
    for key in run.data.metrics:
        if key.startswith("system/"):
            continue
        history = client.get_metric_history(run.info.run_id, key)
        if key in (objective, *SUMMARY):
            points = [m for m in history if m.step == 0]
        else:
            points = [m for m in history if m.step == best_epoch]
        for m in points[-1:]:
            on_validation = key.startswith(("val_", "best_val_"))
            found.append(
                Metric(
                    key,
                    m.value,
                    m.timestamp,
                    m.step,
                    model_id=model_id,
                    dataset_name=name if on_validation else None,
                    dataset_digest=digest if on_validation else None,
                    run_id=run.info.run_id,
                )
            )
    return found


def log_best_model(
    client: MlflowClient,
    tracking_uri: str,
    parent_run_id: str,
    trial_run_id: str,
    number: int,
    pip_requirements: list[str],
) -> str:
    """Log the trial's checkpoint as a logged model of its run; returns the model's id."""
    import keras
    import mlflow
    import numpy as np

    run = client.get_run(trial_run_id)
    run_tags = run.data.tags
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(trial_run_id, "checkpoint/best.keras", tmp)
        model = keras.saving.load_model(path, compile=False)  # to predict: no loss or metrics needed
        example = np.zeros((1, *model.inputs[0].shape[1:]), dtype="float32")
        signature = mlflow.models.infer_signature(example, model.predict(example, verbose=0))
        logged = client.create_logged_model(
            run.info.experiment_id,
            name=MODEL_NAME,
            source_run_id=trial_run_id,
            tags={
                tags.SWEEP: run_tags.get(tags.SWEEP, ""),
                tags.TRIAL: str(number),
                tags.ENGINE: run_tags.get(tags.ENGINE, ""),
            },
            params=dict(run.data.params),
        )
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.keras.log_model(
            model, model_id=logged.model_id, pip_requirements=pip_requirements, signature=signature
        )
    best_epoch = int(run.data.metrics.get("best_epoch", 0))
    client.log_outputs(trial_run_id, [LoggedModelOutput(logged.model_id, step=best_epoch)])
    client.log_batch(trial_run_id, metrics=model_metrics(client, run, logged.model_id))
    client.log_outputs(parent_run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id
