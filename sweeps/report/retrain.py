"""Retrain the best config on train+validation, test it once, register it.

The sweep chose the config and its epoch count on the validation split; with both chosen,
the validation data is more training data. Training runs for the best trial's best epoch
(no early stopping is possible without held-out data), the test split is touched exactly
once, and the model goes to the Model Registry under the sweep's name.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeps.errors import ReportError

if TYPE_CHECKING:
    from experiments.data import Dataset
    from sweeps.report.build import Report


def merged_splits(data: Dataset) -> Dataset:
    """Train and validation as one training split. The validation split stays as Keras'
    validation data (now in-sample, so never reported): `train` needs some."""
    return replace(
        data,
        x_train=np.concatenate([data.x_train, data.x_val]),
        y_train=np.concatenate([data.y_train, data.y_val]),
    )


def retrain_best(report: Report) -> dict[str, Any]:
    """Retrain, test and register the report's best config; returns the record MLflow now holds."""
    import keras

    from experiments.metrics import compile_args
    from experiments.streams import require_arrays
    from experiments.training import train
    from sweeps.running.runner import load_data, pip_requirements
    from sweeps.running.trial import train_config
    from sweeps.spec.space import describe
    from tracking.query import find_retrain
    from tracking.registry import log_retrain

    best = report.best
    if best is None:
        raise ReportError(f"sweep {report.sweep!r} has no complete trial to retrain")
    epochs = int(best["best_epoch"])
    spec = report.spec
    data = load_data(spec)
    require_arrays(data, "--retrain")
    if data.x_test is None or data.y_test is None:
        raise ReportError(f"dataset {spec.dataset.name!r} has no test split: --retrain evaluates on one")
    merged = merged_splits(data)
    config = report.best_config()
    with tempfile.TemporaryDirectory() as tmp:
        # Monitoring the training loss with patience = epochs: EarlyStopping never fires, and the
        # weights kept (restored and checkpointed) depend on training data only.
        job = replace(
            train_config(spec, config, str(Path(tmp) / "model.keras")),
            epochs=epochs,
            patience=epochs,
            monitor="loss",
            monitor_mode="min",
        )
        result = train(job, merged)
        if result.checkpoint_path is None:
            raise ReportError(f"retraining the best config diverged (loss: {result.history.get('loss')})")
        # Compiled afresh: a loss or metric of the user's own is not in Keras's registry.
        model = keras.saving.load_model(result.checkpoint_path, compile=False)
        model.compile(**compile_args(job.task, job.loss, job.metrics))
    scores = model.evaluate(data.x_test, data.y_test, batch_size=job.batch_size, verbose=0, return_dict=True)
    test = {f"test_{key}": float(value) for key, value in scores.items()}
    trial = int(best["trial"])
    run_id = log_retrain(
        report.tracking_uri,
        sweep=report.sweep,
        parent_run_id=report.parent_run_id,
        source_run_id=str(best["run_id"]),
        run_name=f"retrain trial-{trial:03d} {describe(config)}",
        params={
            **config,
            "epochs": epochs,
            "source_trial": trial,
            "dataset": spec.dataset.name,
            "seed": spec.train.seed,
            "train_on": "train+validation",
            "train_samples": len(merged.y_train),
            "test_samples": len(data.y_test),
        },
        history={k: v for k, v in result.history.items() if not k.startswith("val_")},
        metrics={**test, "train_seconds": result.train_seconds},
        model=model,
        example=data.x_test[:5],
        pip_requirements=pip_requirements(),
    )
    found = find_retrain(report.tracking_uri, report.experiment_id, str(best["run_id"]))
    assert found is not None and found["run_id"] == run_id, "the retrain run just logged is not in the store"
    return found
