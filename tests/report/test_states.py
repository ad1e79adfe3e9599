"""A report of a sweep still running, with pruned, failed and running trials and a loss to
minimize, written through the tracker's own API (no training: each trial is seconds otherwise)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from mlflow.entities import Metric

from sweeps.report.build import build_report
from sweeps.report.files import write_report
from sweeps.running.runner import spec_params
from sweeps.spec.schema import load_spec
from sweeps.spec.space import Fixed
from tracking.runs import SweepTracker

SPEC = {
    "name": "states",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "units": 8},
    "train": {"epochs": 4},
    "objective": {"metric": "val_loss"},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "adam"]},
        "learning_rate": {"low": 1e-3, "high": 1e-1, "log": True},
        "momentum": {"low": 0.5, "high": 0.99},
        "dropout": {"low": 0.0, "high": 0.5},
    },
    "engine": {"name": "optuna", "sampler": "random"},
    "budget": {"trials": 10},
}

# (state, config as drawn, fixed patience included; per-epoch val_loss): minimized, so trial 1 is best.
TRIALS: list[tuple[str, dict[str, Any], list[float]]] = [
    (
        "complete",
        {"optimizer": "adam", "learning_rate": 0.01, "dropout": 0.1, "patience": 2},
        [0.9, 0.6, 0.5, 0.55],
    ),
    (
        "complete",
        {"optimizer": "momentum", "learning_rate": 0.05, "momentum": 0.9, "dropout": 0.3, "patience": 2},
        [0.8, 0.4, 0.3],
    ),
    ("pruned", {"optimizer": "sgd", "learning_rate": 0.002, "dropout": 0.4, "patience": 2}, [1.9, 1.8]),
    ("failed", {"optimizer": "adam", "learning_rate": 0.09, "dropout": 0.0, "patience": 2}, []),
    (
        "complete",
        {"optimizer": "sgd", "learning_rate": 0.03, "dropout": 0.2, "patience": 2},
        [1.2, 0.9, 0.8, 0.7],
    ),
    ("running", {"optimizer": "adam", "learning_rate": 0.004, "dropout": 0.25, "patience": 2}, [1.0]),
]


def record(
    tracker: SweepTracker, number: int, state: str, config: dict[str, Any], losses: list[float]
) -> str:
    """One trial as `TrialRunner` records it: per-epoch metrics, then summary and state."""
    recorder = tracker.trial(
        number, config, {"engine": "optuna", "objective": "val_loss"}, f"trial-{number:03d}"
    )
    epochs = list(range(1, len(losses) + 1))
    per_epoch = [Metric("val_loss", v, 0, e) for e, v in zip(epochs, losses, strict=True)]
    tracker.submit("epochs", tracker.client.log_batch, recorder.run_id, per_epoch)
    if state == "failed":
        recorder.fail("exception", "RuntimeError: the loss exploded")
    elif state != "running":
        best = int(np.argmin(losses))
        result = SimpleNamespace(
            history={"val_loss": losses, "loss": losses},
            epochs=epochs,
            best_epoch=best + 1,
            stopped_epoch=len(losses) if len(losses) < 4 else 0,
            best_value=losses[best],
            epochs_run=len(losses),
            train_seconds=0.5 * len(losses),
        )
        recorder.finish(result, "val_loss", {"trial_seconds": result.train_seconds + 0.2}, state=state)
    return recorder.run_id


@pytest.fixture
def running_sweep(tracking_uri: str):
    """A sweep caught mid-way: parent RUNNING, one trial still training."""
    spec = load_spec(SPEC)
    tracker = SweepTracker(tracking_uri, "states")
    tracker.open(spec_params(spec), spec.to_yaml())
    run_ids = [record(tracker, n, state, config, losses) for n, (state, config, losses) in enumerate(TRIALS)]
    tracker.drain()
    yield tracking_uri, spec, run_ids
    tracker.client.set_terminated(run_ids[-1], status="KILLED")
    tracker.close("KILLED")


def test_report_ranks_complete_trials_only_and_lists_the_others(running_sweep, workdir: Path) -> None:
    uri, spec, run_ids = running_sweep
    report = build_report(uri, "states")
    assert report.status == "RUNNING"
    assert report.counts() == {"complete": 3, "pruned": 1, "failed": 1, "running": 1}
    assert list(report.ranked["trial"]) == [1, 0, 4]  # val_loss ascending
    assert list(report.ranked["value"]) == [0.3, 0.5, 0.7]
    assert report.best_config() == TRIALS[1][1]
    assert list(report.optimizers["optimizer"]) == ["momentum", "adam", "sgd"]
    assert "momentum" not in report.importances  # conditional: only momentum trials have it
    assert set(report.importances) <= {"optimizer", "learning_rate", "dropout"}
    assert report.expected["mean"].iloc[0] == pytest.approx(0.5)  # n=1: the mean
    assert report.expected["mean"].iloc[-1] < 0.5  # more trials, lower expected best loss
    assert set(report.curves) == {run_ids[0], run_ids[1], run_ids[4]}  # best per optimizer
    assert report.curves[run_ids[1]] == [(1, 0.8), (2, 0.4), (3, 0.3)]

    files = write_report(report, workdir / "out")
    text = files.markdown.read_text()
    assert "Sweep still running" in text
    for section in ("### Failed trials (1)", "### Pruned trials (1)", "### Running trials (1)"):
        assert section in text, section
    assert "RuntimeError: the loss exploded" in text and run_ids[5] in text
    data = json.loads(files.json.read_text())
    assert data["counts"]["running"] == 1 and data["best"]["trial"] == 1
    states = {t["trial"]: t["state"] for t in data["trials"]}
    assert states == {0: "complete", 1: "complete", 2: "pruned", 3: "failed", 4: "complete", 5: "running"}
    assert data["trials"][5]["value"] is None and data["trials"][5]["best_epoch"] is None
    best = load_spec(files.best_yaml)
    assert all(isinstance(p, Fixed) for p in best.space.params.values())
    assert best.space.fixed() == TRIALS[1][1]  # momentum included: the best is an SGD variant
    assert best.objective.direction == "minimize"
    assert set(data["plots"]) >= {"objective_by_trial", "learning_rate", "validation_curves", "expected_best"}


def test_report_of_a_sweep_with_no_complete_trial(tracking_uri: str, workdir: Path) -> None:
    spec = load_spec({**SPEC, "name": "nothing-yet"})
    tracker = SweepTracker(tracking_uri, "nothing-yet")
    tracker.open(spec_params(spec), spec.to_yaml())
    record(tracker, 0, "failed", TRIALS[3][1], [])
    tracker.close("FAILED")
    report = build_report(tracking_uri, "nothing-yet")
    files = write_report(report, workdir / "out")
    assert report.best is None and files.best_yaml is None and not (workdir / "out" / "best.yaml").exists()
    assert "No trial has completed yet" in files.markdown.read_text()
    data = json.loads(files.json.read_text())
    assert data["best"] is None and data["counts"]["failed"] == 1 and data["plots"] == {}


def test_same_spec_by_two_engines_is_two_sweeps(tracking_uri: str) -> None:
    """Each engine has its own parent run in the shared experiment: a report picks one."""
    from sweeps.errors import ReportError
    from sweeps.report.compare import compare_frame

    for engine in ("optuna", "kerastuner"):
        raw = {**SPEC, "name": "twice", "engine": {"name": engine}}
        spec = load_spec(raw)
        tracker = SweepTracker(tracking_uri, "twice")
        tracker.open(spec_params(spec), spec.to_yaml())
        record(tracker, 0, "complete", TRIALS[0][1], [0.9, 0.7] if engine == "optuna" else [0.6])
        tracker.close()
    with pytest.raises(ReportError, match="several engines .*optuna, kerastuner.*--engine"):
        build_report(tracking_uri, "twice")
    assert build_report(tracking_uri, "twice", engine="kerastuner").best["value"] == 0.6
    assert build_report(tracking_uri, "twice", engine="optuna").best["value"] == 0.7
    frame = compare_frame(tracking_uri, ["twice"])
    assert list(frame["engine"]) == ["optuna", "kerastuner"] and list(frame["best"]) == [0.7, 0.6]


def test_compare_of_an_unknown_sweep_names_the_known(running_sweep) -> None:
    from sweeps.errors import ReportError
    from sweeps.report.compare import compare_frame

    uri, _, _ = running_sweep
    with pytest.raises(ReportError, match=r"no sweep 'state' .*did you mean 'states'.*sweeps there: states"):
        compare_frame(uri, ["states", "state"])
