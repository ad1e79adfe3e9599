"""The UI's view of a sweep written from its spec, the URLs to it, and the run descriptions."""

from __future__ import annotations

import json
import time

from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient

from sweeps.running.views import sweep_view
from sweeps.spec.schema import parse_spec
from tracking import tags
from tracking.dashboard import find_sweep, run_url, trials_url, ui_base, view_state, view_tag_value
from tracking.notes import NOTE_LIMIT, SweepNotes, sweep_note, trial_note

SPEC = {
    "name": "lossy",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp"},
    "objective": {"metric": "val_loss"},
    "space": {
        "optimizer": {"choices": ["sgd", "adam"]},
        "learning_rate": 0.01,
        "dropout": {"low": 0.0, "high": 0.5},
        "units": {"choices": [8, 16]},
    },
}


def test_view_follows_the_spec_objective_direction_and_searched_params() -> None:
    view = sweep_view(parse_spec(SPEC))
    state = view_state(view)
    assert state["orderByKey"] == "metrics.`best_val_loss`" and state["orderByAsc"] is True  # minimize
    params = ["params.`optimizer`", "params.`dropout`", "params.`units`"]  # learning_rate is fixed
    assert state["selectedColumns"][:4] == ["metrics.`best_val_loss`", *params]
    assert state["columnOrder"][1:5] == ["metrics.`best_val_loss`", *params]
    scatter, parallel = state["compareRunCharts"]
    assert scatter["xaxis"] == {"key": "dropout", "type": "PARAM"}  # the first searched range instead
    assert scatter["yaxis"] == {"key": "best_val_loss", "type": "METRIC"}
    assert parallel["selectedParams"] == ["optimizer", "dropout", "units"]
    assert {c["metricSectionId"] for c in state["compareRunCharts"]} == {
        state["compareRunSections"][0]["uuid"]
    }
    envelope = json.loads(view_tag_value(view, now_ms=1))
    assert envelope["createdAt"] == 1 and json.loads(envelope["state"]) == state


def test_urls_for_a_database_store_and_a_tracking_server() -> None:
    assert ui_base("sqlite:////tmp/mlflow.db", "0.0.0.0", 5001) == "http://127.0.0.1:5001"
    assert ui_base("https://mlflow.example.com/") == "https://mlflow.example.com"
    assert trials_url("http://h:1", "7") == (
        "http://h:1/#/experiments/7/runs?workflowType=machine_learning&viewStateShareKey=sweeplab-trials"
    )
    assert (
        run_url("http://h:1", "7", "abc")
        == "http://h:1/#/experiments/7/runs/abc?workflowType=machine_learning"
    )


def test_trial_note_is_one_line() -> None:
    config = {"optimizer": "adam", "learning_rate": 0.0031622, "patience": 2}
    assert trial_note(config, "complete", "val_loss", 0.123456, 4, 6) == (
        "optimizer=adam, learning_rate=0.003162, patience=2: complete, val_loss 0.1235 at epoch 4 of 6"
    )
    assert trial_note(config, "failed", "val_loss", float("nan"), reason="nan_loss") == (
        "optimizer=adam, learning_rate=0.003162, patience=2: failed (nan_loss)"
    )


def _row(trial: int, optimizer: str, value: float, state: str = "complete") -> dict:
    return {"trial": trial, "run_id": f"r{trial}", "state": state, "value": value, "optimizer": optimizer}


def test_sweep_note_ranks_optimizers_in_the_objectives_direction() -> None:
    view = sweep_view(parse_spec(SPEC))  # val_loss: lower is better
    rows = [_row(0, "sgd", 0.5), _row(1, "adam", 0.2), _row(2, "sgd", 0.4), _row(3, "adam", 9.0, "pruned")]
    best = {"number": 1, "value": 0.2, "config": {"optimizer": "adam"}, "run_id": "r1"}
    counts = {"complete": 3, "pruned": 1, "failed": 0}
    note = sweep_note(view, "5", "RUNNING", counts, best, rows, budget=10)
    lines = note.splitlines()
    assert lines[0] == "**Sweep `lossy`: running**, 4 of 10 trials (3 complete, 1 pruned).  "
    assert lines[1].startswith("**Best: val_loss = 0.2000**, [trial 1](#/experiments/5/runs/r1?workflowType=")
    table = [line for line in lines if line.startswith("| adam") or line.startswith("| sgd")]
    assert table[0].startswith("| adam | 1 | 0.2000 | 0.2000 |")  # the pruned trial is not counted
    assert table[1].startswith("| sgd | 2 | 0.4000 | 0.4500 |")
    huge = sweep_note(view, "5", "RUNNING", counts, best, rows, report_section="x" * 2 * NOTE_LIMIT)
    assert len(huge) == NOTE_LIMIT


def test_notes_pick_up_trials_other_workers_finish(tracking_uri: str) -> None:
    """Each update reads only trials that ended since the last; one ended elsewhere is found."""
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("notes")
    parent = client.create_run(experiment, tags={tags.ROLE: tags.ROLE_SWEEP}).info.run_id
    view = sweep_view(parse_spec({**SPEC, "name": "notes"}))
    notes = SweepNotes(client, experiment, parent, view, budget=3)

    def trial(number: int, optimizer: str, value: float) -> None:
        run = client.create_run(
            experiment,
            run_name=f"trial-{number:03d}",
            tags={tags.ROLE: tags.ROLE_TRIAL, tags.PARENT: parent, tags.TRIAL: str(number)},
        )
        client.log_param(run.info.run_id, "objective", "val_loss")
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("best_val_loss", value, int(time.time() * 1000), 0)],
            tags=[RunTag(tags.STATE, "complete"), RunTag(tags.CONFIG, json.dumps({"optimizer": optimizer}))],
        )
        client.set_terminated(run.info.run_id)

    trial(0, "sgd", 0.5)
    trial(1, "adam", 0.3)
    notes.update({"complete": 2}, None)
    assert len(notes.rows) == 2
    trial(2, "adam", 0.1)  # by another worker, after the last update
    note = notes.update({"complete": 3}, None)
    assert "| adam | 2 | 0.1000 | 0.2000 |" in note
    notes.finish("FINISHED")
    assert client.get_run(parent).data.tags["mlflow.note.content"].startswith("**Sweep `notes`: finished**")
    client.set_terminated(parent)
    assert find_sweep(client, None).name == "notes" and find_sweep(client, "notes").name == "notes"
    assert find_sweep(client, "absent") is None and find_sweep(client, "Default") is None  # no parent run
