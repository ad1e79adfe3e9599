"""What the Optuna engine does for workers sharing a study, on real Optuna storages: each
process samples with its own seed, and on an RDB storage a trial whose worker stopped beating
(another machine died) is failed and its run closed, while a trial that beats is left alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from sweeps.engines import optuna_engine
from sweeps.engines.liveness import WORKER_ATTR
from sweeps.engines.optuna_engine import OptunaEngine
from sweeps.spec.schema import load_spec

BASE: dict[str, Any] = {
    "name": "shared",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 2},
    "objective": {"metric": "val_accuracy"},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam"]},
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
    },
    "engine": {"name": "optuna", "sampler": "random", "seed": 3},
    "budget": {"trials": 6},
}


class Closer:
    """The one part of `TrialRunner` that `recover` calls: closing a lost trial's run."""

    def __init__(self) -> None:
        self.abandoned: list[tuple[str, str]] = []

    def abandon(self, run_id: str, reason: str) -> None:
        self.abandoned.append((run_id, reason))


def _first_configs(engine: OptunaEngine, n: int) -> list[dict[str, Any]]:
    configs = []
    for _ in range(n):
        trial = engine.ask()
        configs.append(engine.spec.space.suggest(trial))
        engine.study.tell(trial, 0.5)
    return configs


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_processes_on_one_study_do_not_propose_the_same_configs(tmp_path: Path, sampler: str) -> None:
    spec = load_spec({**BASE, "engine": {**BASE["engine"], "sampler": sampler}})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = _first_configs(OptunaEngine(spec, storage, tmp_path), 3)
    second = _first_configs(OptunaEngine(spec, storage, tmp_path), 3)
    assert not any(config in first for config in second)
    # The first process of a study keeps the spec's seed: a one-worker sweep repeats exactly.
    again = _first_configs(OptunaEngine(spec, f"sqlite:///{tmp_path / 'again.db'}", tmp_path), 3)
    assert again == first


@pytest.fixture
def quick_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optuna_engine, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(optuna_engine, "GRACE_SECONDS", 2)
    monkeypatch.setattr("sweeps.engines.liveness.HEARTBEAT_SECONDS", 1)


def _remote_trial(engine: OptunaEngine, run_id: str) -> optuna.Trial:
    """A trial started by a worker on another machine (its pid means nothing here)."""
    trial = engine.ask()
    trial.set_user_attr(WORKER_ATTR, {"host": "another-machine", "pid": 1, "started": 0.0})
    trial.set_user_attr("run_id", run_id)
    return trial


def test_a_trial_whose_worker_stopped_beating_is_failed_and_its_run_closed(
    tmp_path: Path, quick_heartbeats: None
) -> None:
    spec = load_spec(BASE)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    elsewhere = OptunaEngine(spec, storage, tmp_path)
    lost, alive = _remote_trial(elsewhere, "run-lost"), _remote_trial(elsewhere, "run-alive")
    lost_beat = elsewhere._heartbeat(lost)
    alive_beat = elsewhere._heartbeat(alive)
    assert lost_beat is not None and alive_beat is not None
    lost_beat.stop()  # that machine died: its heartbeat stops, its trial stays RUNNING
    time.sleep(3.5)

    here, closer = OptunaEngine(spec, storage, tmp_path), Closer()
    here.recover(closer)  # type: ignore[arg-type]
    states = {t.number: t.state.name for t in here.study.get_trials()}
    assert states == {lost.number: "FAIL", alive.number: "RUNNING"}
    assert closer.abandoned == [("run-lost", "worker_lost")]
    assert here.room(closer, time.monotonic()) == spec.budget.trials - 1  # type: ignore[arg-type]
    alive_beat.stop()


def test_a_trial_told_while_the_budget_is_counted_is_not_given_out_again(tmp_path: Path) -> None:
    """Workers tell trials outside the sweep's lock: one told while another worker counts
    the budget must be in one of its counts (done or running), never in neither."""
    spec = load_spec(BASE)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    other, here = OptunaEngine(spec, storage, tmp_path), OptunaEngine(spec, storage, tmp_path)
    told, running = other.ask(), other.ask()
    read, to_tell = here.study._storage.get_all_trials, [told]

    def read_then_other_worker_tells(*args: Any, **kwargs: Any) -> list:
        trials = read(*args, **kwargs)
        states = kwargs.get("states")
        if to_tell and (states is None or optuna.trial.TrialState.COMPLETE in states):
            other.study.tell(to_tell.pop(), 0.5)  # lands right after the read that counts finished trials
        return trials

    here.study._storage.get_all_trials = read_then_other_worker_tells  # type: ignore[method-assign]
    assert here.room(Closer(), time.monotonic()) == spec.budget.trials - 2  # type: ignore[arg-type]
    assert {t.number: t.state.name for t in other.study.get_trials()} == {
        told.number: "COMPLETE",
        running.number: "RUNNING",
    }
