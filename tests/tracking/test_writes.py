"""The tracker's queued writes on a real SQLite store: what piles up while its writer is busy
goes as one write, and nothing is lost or reordered past a run's end."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from mlflow.entities import Metric

from tracking.runs import SweepTracker


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SweepTracker:
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    tracker = SweepTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "writes")
    tracker.open({"engine.name": "optuna"}, "name: writes\n")
    return tracker


def _spy(tracker: SweepTracker, calls: list[tuple[str, str, list[int]]]) -> None:
    """Note each store call the writer makes (the real client still makes it)."""
    client = tracker.client
    log_batch, set_terminated = client.log_batch, client.set_terminated

    def logged(run_id, metrics=(), params=(), tags=(), **kwargs):
        calls.append(("log_batch", run_id, [m.step for m in metrics]))
        return log_batch(run_id, metrics, params, tags, **kwargs)

    def terminated(run_id, *args, **kwargs):
        calls.append(("set_terminated", run_id, []))
        return set_terminated(run_id, *args, **kwargs)

    client.log_batch, client.set_terminated = logged, terminated


def test_epochs_queued_behind_a_busy_writer_go_as_one_write_per_run_before_its_end(
    tracker: SweepTracker,
) -> None:
    recorders = [tracker.trial(n, {"optimizer": "adam"}, {}, f"trial {n}") for n in range(2)]
    tracker.drain()
    calls: list[tuple[str, str, list[int]]] = []
    _spy(tracker, calls)
    busy = threading.Event()
    tracker.submit("a long plot", busy.wait, to_mlflow=False)
    for epoch in range(1, 6):
        for recorder in recorders:
            tracker.stream(recorder.run_id, [Metric("loss", 1.0 / epoch, 0, epoch)])
    for recorder in recorders:
        recorder.fail("exception", "stopped by the test")
    busy.set()
    tracker.drain()
    for recorder in recorders:
        own = [(name, steps) for name, run_id, steps in calls if run_id == recorder.run_id]
        assert own[0] == ("log_batch", [1, 2, 3, 4, 5])  # the five epochs, one write
        assert own[-1][0] == "set_terminated"
        history = tracker.client.get_metric_history(recorder.run_id, "loss")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5]


def test_summaries_queued_together_keep_every_point_in_one_write(tracker: SweepTracker) -> None:
    calls: list[tuple[str, str, list[int]]] = []
    _spy(tracker, calls)
    busy = threading.Event()
    tracker.submit("a long plot", busy.wait, to_mlflow=False)
    for done in range(1, 4):
        best = {"number": done - 1, "value": 0.5 + done / 10, "config": {"optimizer": "sgd"}}
        tracker.summarize({"complete": done}, best, "val_accuracy")
    busy.set()
    tracker.drain()
    parent = [steps for name, run_id, steps in calls if name == "log_batch" and run_id == tracker.run_id]
    assert len(parent) == 1 and sorted(set(parent[0])) == [1, 2, 3]
    history = tracker.client.get_metric_history(tracker.run_id, "best_val_accuracy")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, pytest.approx(0.6)),
        (2, pytest.approx(0.7)),
        (3, pytest.approx(0.8)),
    ]
    assert tracker.client.get_run(tracker.run_id).data.tags["sweeplab.best_trial"] == "2"
