"""The KerasTuner engine's bookkeeping with a stand-in runner: no training, no MLflow.

What KerasTuner proposes, how each tuner spends the budget, failures, Hyperband's rounds
and the project's resume. Training and recording through the real `TrialRunner` are
covered end to end in `test_kerastuner_cli.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from sweeps.engines.kerastuner_engine import KT_CONTINUES_TAG, KT_TRIAL_ID_TAG, KerasTunerEngine
from sweeps.engines.registry import make_engine
from sweeps.errors import SpecError, SweepError, SweepFailed
from sweeps.running.trial import TrialFailed, TrialOutcome
from sweeps.spec.schema import load_spec

BASE: dict[str, Any] = {
    "name": "kt",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "units": 16},
    "train": {"epochs": 3},
    "objective": {"metric": "val_accuracy"},
    "space": {
        "optimizer": {"choices": ["sgd", "momentum", "nesterov", "adam"]},
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "momentum": {"low": 0.5, "high": 0.99},
        "patience": {"low": 0, "high": 3},
    },
    "engine": {"name": "kerastuner", "tuner": "random", "seed": 0},
    "budget": {"trials": 4},
}


def make_spec(**overrides: Any):
    return load_spec(BASE, overrides)


class FakeRunner:
    """Records each call as `TrialRunner` would be called; `score(config)` gives the value,
    or raises (TrialFailed, KeyboardInterrupt) to stand for a failed or interrupted trial."""

    def __init__(self, score: Callable[[Mapping[str, Any]], float] | None = None) -> None:
        self.score = score or (lambda config: float(config["learning_rate"]))
        self.calls: list[dict[str, Any]] = []
        self.abandoned: list[tuple[str, str]] = []

    def __call__(self, number: int, config: Mapping[str, Any], callbacks=(), pruning=None, **kwargs: Any):
        run_id = f"run-{len(self.calls)}"
        self.calls.append({"number": number, "config": dict(config), "run_id": run_id, **kwargs})
        if kwargs.get("on_run"):
            kwargs["on_run"](run_id)
        value = self.score(config)
        if kwargs.get("keep_checkpoint"):
            Path(kwargs["keep_checkpoint"]).write_text("weights")
        return TrialOutcome(number, dict(config), "complete", value, None, run_id)  # type: ignore[arg-type]

    def abandon(self, run_id: str, reason: str) -> None:
        self.abandoned.append((run_id, reason))


def run(
    spec, folder: Path, runner: FakeRunner | None = None
) -> tuple[KerasTunerEngine, FakeRunner, str, list]:
    runner = runner or FakeRunner()
    engine = make_engine(spec, None, folder)
    assert isinstance(engine, KerasTunerEngine)
    reported: list = []
    try:
        reason = engine.optimize(runner, reported.append)  # type: ignore[arg-type]
    finally:
        engine.close()
    return engine, runner, reason, reported


@pytest.mark.parametrize("tuner", ["random", "bayesian"])
def test_each_trial_goes_through_the_runner(tmp_path: Path, tuner: str) -> None:
    engine, runner, reason, reported = run(make_spec(**{"engine.tuner": tuner}), tmp_path)
    assert reason == "budget"
    assert [c["number"] for c in runner.calls] == [0, 1, 2, 3]
    assert engine.counts() == {"complete": 4, "pruned": 0, "failed": 0}
    assert len(reported) == 4 and all(isinstance(o, TrialOutcome) for o in reported)
    for call in runner.calls:
        config = call["config"]
        assert ("momentum" in config) == (config["optimizer"] in ("momentum", "nesterov"))
        assert set(config) >= {"optimizer", "learning_rate", "patience", "dropout"}
        assert config["dropout"] == 0.0  # a default, fixed: not a KerasTuner hyperparameter
        assert call["params"] == {"sampler": tuner, "tuner": tuner}
        assert call["tags"] == {KT_TRIAL_ID_TAG: f"{call['number']:04d}"}
        assert "epochs" not in call and "initial_weights" not in call and "keep_checkpoint" not in call
    best = engine.best()
    top = max(runner.calls, key=lambda c: c["config"]["learning_rate"])
    assert best is not None
    assert (best.number, best.config, best.run_id) == (top["number"], top["config"], top["run_id"])
    assert best.value == pytest.approx(top["config"]["learning_rate"])


def test_minimize_picks_the_lowest(tmp_path: Path) -> None:
    engine, runner, _, _ = run(make_spec(**{"objective.metric": "val_loss"}), tmp_path)
    best = engine.best()
    assert best is not None
    assert best.value == pytest.approx(min(c["config"]["learning_rate"] for c in runner.calls))


def test_bayesian_optimization_goes_past_its_random_start(tmp_path: Path) -> None:
    # Two hyperparameters: 6 random points, then the Gaussian process proposes the 7th.
    spec = make_spec(
        **{
            "engine.tuner": "bayesian",
            "space": {
                "optimizer": "adam",
                "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
                "dropout": {"low": 0.0, "high": 0.5},
            },
            "budget.trials": 7,
        }
    )
    engine, runner, reason, _ = run(spec, tmp_path, FakeRunner(lambda c: -abs(c["dropout"] - 0.3)))
    assert reason == "budget" and engine.counted() == 7
    for call in runner.calls:
        assert 1e-4 <= call["config"]["learning_rate"] <= 1e-1
        assert 0.0 <= call["config"]["dropout"] <= 0.5


def test_same_seed_same_configs(tmp_path: Path) -> None:
    first = run(make_spec(), tmp_path / "a")[1].calls
    second = run(make_spec(), tmp_path / "b")[1].calls
    other = run(make_spec(**{"engine.seed": 5}), tmp_path / "c")[1].calls
    assert [c["config"] for c in first] == [c["config"] for c in second]
    assert [c["config"] for c in first] != [c["config"] for c in other]


def test_grid_walks_every_combination_once_with_momentum_only_where_it_applies(tmp_path: Path) -> None:
    spec = make_spec(
        **{
            "engine.tuner": "grid",
            "space": {
                "optimizer": {"choices": ["adam", "momentum"]},
                "momentum": {"choices": [0.5, 0.9]},
                "learning_rate": {"choices": [0.01, 0.1]},
            },
            "budget.trials": 20,
        }
    )
    engine, runner, reason, _ = run(spec, tmp_path)
    assert reason == "exhausted"
    configs = [c["config"] for c in runner.calls]
    points = {(c["optimizer"], c.get("momentum"), c["learning_rate"]) for c in configs}
    assert len(configs) == len(points) == 6
    assert points == {
        (o, m, lr) for o, m in [("adam", None), ("momentum", 0.5), ("momentum", 0.9)] for lr in (0.01, 0.1)
    }


def test_grid_resumes_where_it_stopped(tmp_path: Path) -> None:
    raw = {
        "engine.tuner": "grid",
        "space": {
            "optimizer": {"choices": ["adam", "sgd", "rmsprop"]},
            "learning_rate": {"choices": [0.01, 0.1]},
        },
    }
    _, first, reason, _ = run(make_spec(**raw, **{"budget.trials": 2}), tmp_path)
    assert reason == "budget"
    engine, second, reason, _ = run(make_spec(**raw, **{"budget.trials": 10}), tmp_path)
    assert reason == "exhausted"
    assert [c["number"] for c in second.calls] == [2, 3, 4, 5]
    seen = [(c["config"]["optimizer"], c["config"]["learning_rate"]) for c in first.calls + second.calls]
    assert len(set(seen)) == 6
    assert engine.counted() == 6


def test_grid_rejects_ranges(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="space.learning_rate: the grid tuner needs a list of values"):
        make_engine(make_spec(**{"engine.tuner": "grid"}), None, tmp_path)


def test_hyperband_rounds_continue_earlier_trials(tmp_path: Path) -> None:
    # max_epochs 3, factor 3: bracket 1 trains 3 configs for 1 epoch, then the best of them
    # from epoch 1 to 3; bracket 0 trains 2 configs for 3 epochs.
    spec = make_spec(**{"engine.tuner": "hyperband", "budget.trials": 6})
    engine, runner, reason, _ = run(spec, tmp_path)
    assert reason == "budget"
    calls = runner.calls
    assert [c["number"] for c in calls] == list(range(6))
    rounds = [
        (c["params"]["hyperband_bracket"], c["params"]["hyperband_round"], c["initial_epoch"], c["epochs"])
        for c in calls
    ]
    assert rounds == [(1, 0, 0, 1)] * 3 + [(1, 1, 1, 3)] + [(0, 0, 0, 3)] * 2
    best_first = max(calls[:3], key=lambda c: c["config"]["learning_rate"])
    continued = calls[3]
    assert continued["config"] == best_first["config"]
    assert continued["params"]["continues_trial"] == best_first["number"]
    assert continued["tags"] == {KT_TRIAL_ID_TAG: "0003", KT_CONTINUES_TAG: f"{best_first['number']:04d}"}
    assert continued["initial_weights"] == best_first["keep_checkpoint"]
    assert Path(continued["initial_weights"]).is_file()
    project = tmp_path / "kerastuner" / "kt"
    assert Path(continued["initial_weights"]).parent == project / f"trial_{best_first['number']:04d}"
    # Only trials a later round may continue keep a checkpoint in the project.
    assert [("keep_checkpoint" in c) for c in calls] == [True] * 3 + [False] * 3
    for call in calls:
        assert call["params"]["epochs"] == call["epochs"]
        assert call["params"]["initial_epoch"] == call["initial_epoch"]
        assert call["params"]["sampler"] == call["params"]["tuner"] == "hyperband"


def test_failed_trials_do_not_use_up_the_budget(tmp_path: Path) -> None:
    def score(config: Mapping[str, Any]) -> float:
        if config["optimizer"] == "sgd":
            raise TrialFailed("exception", "RuntimeError: sgd is broken")
        return 1.0

    spec = make_spec(**{"budget.max_failures": 50})
    engine, runner, reason, reported = run(spec, tmp_path, FakeRunner(score))
    failed = sum(c["config"]["optimizer"] == "sgd" for c in runner.calls)
    assert reason == "budget" and failed > 0
    assert engine.counts() == {"complete": 4, "pruned": 0, "failed": failed}
    assert reported.count(None) == failed
    record = json.loads((tmp_path / "kerastuner" / "kt" / "trial_0000" / "sweeplab.json").read_text())
    assert record["number"] == 0 and record["kt_trial_id"] == "0000"


def test_too_many_failures_in_a_row_stop_the_sweep(tmp_path: Path) -> None:
    def score(config: Mapping[str, Any]) -> float:
        raise TrialFailed("nan_loss", "loss became NaN or infinite at epoch 1")

    expected = r"after 2 failed trials in a row \(budget.max_failures=2\); last: nan_loss: loss became NaN"
    with pytest.raises(SweepFailed, match=expected):
        run(make_spec(**{"budget.max_failures": 2}), tmp_path, FakeRunner(score))
    # Both failures were saved before the sweep stopped: a re-run does not repeat them.
    engine, runner, reason, _ = run(make_spec(), tmp_path)
    assert reason == "budget"
    assert engine.counts() == {"complete": 4, "pruned": 0, "failed": 2}
    assert [c["number"] for c in runner.calls] == [2, 3, 4, 5]


def test_an_error_that_is_not_the_trials_stops_the_sweep(tmp_path: Path) -> None:
    def score(config: Mapping[str, Any]) -> float:
        raise OSError("the MLflow store is gone")

    with pytest.raises(OSError, match="the MLflow store is gone"):
        run(make_spec(), tmp_path, FakeRunner(score))
    # Not counted as a failed trial: the next run tries that trial again.
    engine, runner, reason, _ = run(make_spec(), tmp_path)
    assert reason == "budget" and engine.counts()["failed"] == 0
    assert [c["number"] for c in runner.calls] == [0, 1, 2, 3]


def test_a_second_run_continues_the_project(tmp_path: Path) -> None:
    _, first, _, _ = run(make_spec(**{"budget.trials": 2}), tmp_path)
    engine, second, reason, _ = run(make_spec(**{"budget.trials": 4}), tmp_path)
    assert reason == "budget"
    assert [c["number"] for c in second.calls] == [2, 3]
    configs = [json.dumps(c["config"], sort_keys=True) for c in first.calls + second.calls]
    assert len(set(configs)) == 4
    best = engine.best()
    assert best is not None and best.run_id in {c["run_id"] for c in first.calls + second.calls}
    # Nothing left to do: a third run starts no trial.
    _, third, reason, _ = run(make_spec(**{"budget.trials": 4}), tmp_path)
    assert reason == "budget" and third.calls == []


def test_hyperband_resumes_mid_bracket(tmp_path: Path) -> None:
    spec = {"engine.tuner": "hyperband"}
    _, first, _, _ = run(make_spec(**spec, **{"budget.trials": 2}), tmp_path)
    _, second, _, _ = run(make_spec(**spec, **{"budget.trials": 4}), tmp_path)
    calls = first.calls + second.calls
    assert [c["number"] for c in calls] == [0, 1, 2, 3]
    assert [(c["initial_epoch"], c["epochs"]) for c in calls] == [(0, 1)] * 3 + [(1, 3)]
    assert Path(calls[3]["initial_weights"]).is_file()


def test_an_interrupted_trial_is_run_again_and_its_run_closed(tmp_path: Path) -> None:
    def score(config: Mapping[str, Any]) -> float:
        if len(interrupting.calls) == 2:
            raise KeyboardInterrupt
        return 1.0

    interrupting = FakeRunner(score)
    with pytest.raises(KeyboardInterrupt):
        run(make_spec(), tmp_path, interrupting)
    engine, runner, reason, _ = run(make_spec(), tmp_path)
    assert reason == "budget"
    assert runner.abandoned == [("run-1", "worker_lost")]
    # KerasTuner retries the interrupted trial first, with its id and values.
    assert [c["number"] for c in runner.calls] == [1, 2, 3]
    assert runner.calls[0]["config"] == interrupting.calls[1]["config"]
    assert engine.counts() == {"complete": 4, "pruned": 0, "failed": 0}


def test_changed_spec_is_refused_on_resume(tmp_path: Path) -> None:
    run(make_spec(**{"budget.trials": 1}), tmp_path)
    expected = r"was started with tuner = \"random\", but the spec now says \"bayesian\""
    with pytest.raises(SweepError, match=expected):
        make_engine(make_spec(**{"engine.tuner": "bayesian"}), None, tmp_path)
    with pytest.raises(SweepError, match="was started with space = "):
        make_engine(make_spec(**{"space.patience": 2}), None, tmp_path)
    with pytest.raises(SweepError, match="was started with objective = "):
        make_engine(make_spec(**{"objective.metric": "val_loss"}), None, tmp_path)
    engine = make_engine(make_spec(**{"train.epochs": 5, "budget.trials": 9}), None, tmp_path)  # fine
    engine.close()  # type: ignore[attr-defined]


def test_one_process_at_a_time(tmp_path: Path) -> None:
    engine = make_engine(make_spec(), None, tmp_path)
    try:
        with pytest.raises(SweepError, match="has the KerasTuner project .* open"):
            make_engine(make_spec(), None, tmp_path)
    finally:
        engine.close()  # type: ignore[attr-defined]
    make_engine(make_spec(), None, tmp_path).close()  # type: ignore[attr-defined]


def test_an_optuna_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="is an Optuna storage"):
        make_engine(make_spec(), "journal:x.journal", tmp_path)
