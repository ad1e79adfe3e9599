"""The KerasTuner engine: KerasTuner's oracles choose the configs, sweeplab runs and records them.

`SweepTuner` is a `keras_tuner.Tuner` whose `run_trial` hands the config to the sweep's
`TrialRunner` (train with `experiments.train`, record a nested MLflow run) and returns the
objective value; KerasTuner keeps its own search loop, trial states and project files.

How the spec maps onto KerasTuner:

- `engine.tuner`: random | bayesian | hyperband | grid -> that tuner's oracle, with
  `keras_tuner.Objective(objective.metric, "max"/"min")` and `engine.seed` (+1: KerasTuner
  reads seed 0 as "no seed").
- `budget.trials`: completed trials, as with Optuna (a failed trial does not use up the
  budget). KerasTuner's `max_trials` counts failed trials too, so it is left unset and the
  budget is checked before each trial. For hyperband every round of a config is a trial of
  its own (a new KerasTuner trial id, `tuner/epochs` epochs in all), and brackets go on
  (`hyperband_iterations` unbounded) until the budget is spent.
- `budget.max_failures`: failed trials in a row in this run, as with Optuna; KerasTuner's
  `max_consecutive_failed_trials` is off, because it raises before the failed trial's state
  is saved, and a resumed sweep would then run that trial again.
- `budget.timeout`: seconds of this run; checked before each trial.
- Resume: the project lives in `<local dir>/kerastuner/<sweep name>` and is reloaded
  (`overwrite=False`); finished trials are not run again, a trial that was running when the
  process died is run again under the same trial id (KerasTuner's retry of ongoing trials),
  and its MLflow run left RUNNING is closed as KILLED.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from sweeps.engines.base import BestTrial, OnTrial
from sweeps.engines.kerastuner_space import check_grid, config_from_values, declare
from sweeps.engines.repeats import exhausted, is_deterministic
from sweeps.errors import SweepError, SweepFailed, TrialFailed

if TYPE_CHECKING:
    from sweeps.running.trial import TrialOutcome, TrialRunner
    from sweeps.spec.schema import Spec

__all__ = ["KT_CONTINUES_TAG", "KT_TRIAL_ID_TAG", "KerasTunerEngine", "SweepTuner", "make_oracle"]

KT_TRIAL_ID_TAG = "sweeplab.kt_trial_id"  # KerasTuner's own trial id ("0000", "0001", ...)
KT_CONTINUES_TAG = "sweeplab.kt_continues"  # hyperband: the trial id this round continues
PROJECT_FILE = "sweeplab.json"  # in the project: what it was started with
RECORD_FILE = "sweeplab.json"  # in each trial_<id>/: number, config, MLflow run id, state
CHECKPOINT_FILE = "checkpoint.keras"  # in trial_<id>/: hyperband's weights for the next round
HYPERBAND_FACTOR = 3
_IDLE_LIMIT = 100  # oracle answers without a trial before the search is taken as finished
_FAILED = (TrialStatus.FAILED, TrialStatus.INVALID)


class _Stop(Exception):
    """Ends KerasTuner's search loop from `pre_create_trial`, with sweeplab's reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ResumableGridSearchOracle(keras_tuner.oracles.GridSearchOracle):
    """KerasTuner's grid oracle, with the two queues it walks the grid by kept in its state.

    `GridSearchOracle` saves neither, so a reloaded grid search finds nothing to do and stops
    after the first run.
    """

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        ordered, memory, nexts = [], self._ordered_ids._memory, self._ordered_ids._next_index
        index = nexts[None]
        while index is not None:
            ordered.append(memory[index])
            index = nexts[index]
        state["ordered_ids"] = ordered
        state["populate_next"] = list(self._populate_next)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._ordered_ids = type(self._ordered_ids)()
        for trial_id in state.get("ordered_ids", []):
            self._ordered_ids.insert(trial_id)
        self._populate_next = list(state.get("populate_next", []))


def make_oracle(spec: Spec, hp: keras_tuner.HyperParameters) -> keras_tuner.Oracle:
    """The oracle `engine.tuner` names, over the declared hyperparameters."""
    common: dict[str, Any] = {
        "objective": keras_tuner.Objective(spec.objective.metric, str(spec.objective.direction)[:3]),
        "hyperparameters": hp,
        "seed": None if spec.engine.seed is None else spec.engine.seed + 1,
        "max_retries_per_trial": 0,
        "max_consecutive_failed_trials": None,  # sweeplab counts failures (see the module doc)
    }
    match spec.engine.tuner:
        case "random":
            return keras_tuner.oracles.RandomSearchOracle(max_trials=None, **common)
        case "bayesian":
            return keras_tuner.oracles.BayesianOptimizationOracle(max_trials=None, **common)
        case "grid":
            return ResumableGridSearchOracle(max_trials=None, **common)
        case "hyperband":
            return keras_tuner.oracles.HyperbandOracle(
                max_epochs=spec.train.epochs, factor=HYPERBAND_FACTOR, hyperband_iterations=None, **common
            )
    raise SweepError(f"engine.tuner: unknown tuner {spec.engine.tuner!r}")


class SweepTuner(keras_tuner.Tuner):
    """KerasTuner's search loop, with each trial run by the engine (through `TrialRunner`)."""

    def __init__(
        self, engine: KerasTunerEngine, oracle: keras_tuner.Oracle, directory: Path, name: str
    ) -> None:
        self.engine = engine
        super().__init__(oracle=oracle, directory=str(directory), project_name=name, overwrite=False)

    def run_trial(self, trial: keras_tuner.engine.trial.Trial, runner: TrialRunner) -> float:
        """A failed trial raises `FailedTrialError`; any other error is not the trial's but the
        sweep's (a store that cannot be written, a bug), so it ends the search as it would
        with Optuna, instead of KerasTuner counting it as one more failed trial."""
        try:
            return self.engine._run_trial(trial, runner)
        except keras_tuner.errors.FailedTrialError:
            raise
        except Exception as exc:
            raise keras_tuner.errors.FatalError(f"{type(exc).__name__}: {exc}") from exc

    def pre_create_trial(self) -> None:
        self.engine._before_trial()

    def on_trial_end(self, trial: keras_tuner.engine.trial.Trial) -> None:
        super().on_trial_end(trial)  # the oracle ends the trial; the project is saved
        self.engine._after_trial(trial)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename, so a process killed mid-write leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class KerasTunerEngine:
    """A KerasTuner project named after the sweep, created or reloaded under `local_dir`.

    One process at a time: the project is locked while it is open (KerasTuner keeps its
    state in plain files, and runs several workers only through its own gRPC chief).
    """

    def __init__(self, spec: Spec, storage: str | None, local_dir: Path) -> None:
        if storage:
            raise SweepError(
                f"--storage {storage!r} is an Optuna storage; the kerastuner engine keeps its "
                f"state in {local_dir / 'kerastuner' / spec.name}"
            )
        self.spec = spec
        self.tuner_name = str(spec.engine.tuner)
        if self.tuner_name == "grid":
            check_grid(spec.space)
        hp = declare(spec.space)
        self.project_dir = local_dir / "kerastuner" / spec.name
        self.project_dir.mkdir(parents=True, exist_ok=True)
        self._lock: IO[str] | None = self._acquire_lock()
        try:
            self._check_project()
            # KerasTuner prints "Reloading Tuner from ..." on stdout, under sweeplab's display.
            with contextlib.redirect_stdout(io.StringIO()):
                self.tuner = SweepTuner(self, make_oracle(spec, hp), self.project_dir.parent, spec.name)
            self.oracle = self.tuner.oracle
            self.oracle.verbose = 0  # KerasTuner's own per-trial tables
            self.tuner.save()  # so a run killed in its first trial is still reloaded
        except BaseException:
            self.close()
            raise
        self._records = self._load_records()
        self._outcomes: dict[str, TrialOutcome] = {}
        self._errors: dict[str, str] = {}
        self._on_trial: OnTrial | None = None
        self._started = time.monotonic()
        self._failures = 0
        self._idle = 0

    # -- project files ---------------------------------------------------------------------

    def _acquire_lock(self) -> IO[str]:
        handle = (self.project_dir / ".lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SweepError(
                f"another `sweep run` has the KerasTuner project {self.project_dir} open; the "
                "kerastuner engine runs a sweep in one process (use engine optuna for several workers)"
            ) from None
        return handle

    def close(self) -> None:
        """Let another process open the project (also done when `optimize` returns)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _project_meta(self) -> dict[str, Any]:
        spec = self.spec
        meta: dict[str, Any] = {
            "tuner": self.tuner_name,
            "objective": {"metric": spec.objective.metric, "direction": spec.objective.direction},
            "space": spec.space.to_dict(),
        }
        if self.tuner_name == "hyperband":
            meta["max_epochs (train.epochs)"] = spec.train.epochs
        return meta

    def _check_project(self) -> None:
        """A reloaded project must be searching the same thing: KerasTuner would keep its
        stored space and objective and silently ignore the spec's."""
        path = self.project_dir / PROJECT_FILE
        meta = json.loads(json.dumps(self._project_meta()))  # as stored: JSON keys are strings
        if not path.exists():
            _write_json(path, meta)
            return
        stored = json.loads(path.read_text())
        for key, value in meta.items():
            if stored.get(key) != value:
                raise SweepError(
                    f"the KerasTuner project {self.project_dir} was started with {key} = "
                    f"{json.dumps(stored.get(key))}, but the spec now says {json.dumps(value)}; "
                    "rename the sweep, or delete that folder to start it over"
                )

    def _record_path(self, trial_id: str) -> Path:
        return self.project_dir / f"trial_{trial_id}" / RECORD_FILE

    def _record(self, trial_id: str, **fields: Any) -> None:
        record = {**self._records.get(trial_id, {}), **fields}
        self._records[trial_id] = record
        _write_json(self._record_path(trial_id), record)

    def _load_records(self) -> dict[str, dict[str, Any]]:
        records = {}
        for trial_id in self.oracle.trials:
            path = self._record_path(trial_id)
            if path.exists():
                records[trial_id] = json.loads(path.read_text())
        return records

    def checkpoint_path(self, trial_id: str) -> Path:
        return self.project_dir / f"trial_{trial_id}" / CHECKPOINT_FILE

    # -- Engine ----------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        statuses = [t.status for t in self.oracle.trials.values()]
        return {
            "complete": statuses.count(TrialStatus.COMPLETED),
            "pruned": 0,
            "failed": sum(s in _FAILED for s in statuses),
        }

    def counted(self) -> int:
        return self.counts()["complete"]

    def best(self) -> BestTrial | None:
        done = [
            t
            for t in self.oracle.trials.values()
            if t.status == TrialStatus.COMPLETED and "run_id" in self._records.get(t.trial_id, {})
        ]
        if not done:
            return None
        sign = -1.0 if self.oracle.objective.direction == "max" else 1.0
        best = min(done, key=lambda t: (sign * t.score, int(t.trial_id)))  # ties: the earliest
        record = self._records[best.trial_id]
        return BestTrial(int(best.trial_id), float(best.score), dict(record["config"]), record["run_id"])

    def optimize(self, runner: TrialRunner, on_trial: OnTrial) -> str:
        """Run KerasTuner's search until the budget is spent; returns why it stopped:
        budget, timeout, or exhausted (the oracle has nothing left: a finished grid, a
        random search out of new values)."""
        self._on_trial = on_trial
        self._started = time.monotonic()
        self._failures = 0
        self._close_interrupted(runner)
        try:
            self._stop_if_exhausted()
            self.tuner.search(runner=runner)
        except _Stop as stop:
            return stop.reason
        except keras_tuner.errors.FatalError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None  # the original error, as `run_trial` met it
            raise
        finally:
            self.close()
        return "exhausted"

    # -- the search loop's hooks -----------------------------------------------------------

    def _close_interrupted(self, runner: TrialRunner) -> None:
        """Trials left RUNNING by a process that died: KerasTuner runs them again; their
        MLflow runs, still RUNNING, are closed as KILLED."""
        for trial in self.oracle.trials.values():
            record = self._records.get(trial.trial_id, {})
            left_running = record.get("state") == "running" and "run_id" in record
            if trial.status == TrialStatus.RUNNING and left_running:
                runner.abandon(record["run_id"], "worker_lost")
                self._record(trial.trial_id, state="interrupted")

    def _before_trial(self) -> None:
        budget = self.spec.budget
        if self.counted() >= budget.trials:
            raise _Stop("budget")
        if budget.timeout is not None and time.monotonic() - self._started >= budget.timeout:
            raise _Stop("timeout")
        self._idle += 1
        if self._idle > _IDLE_LIMIT:  # only one process runs trials, so the oracle waits on none
            raise _Stop("exhausted")

    def _run_trial(self, trial: Any, runner: TrialRunner) -> float:
        """Train and record one KerasTuner trial; a `TrialFailed` becomes KerasTuner's
        `FailedTrialError`, so the trial ends FAILED (not retried) and the search goes on."""
        self._idle = 0
        trial_id = trial.trial_id
        values = trial.hyperparameters.values
        config = config_from_values(self.spec.space, values)
        number = int(trial_id)
        params: dict[str, Any] = {"sampler": self.tuner_name, "tuner": self.tuner_name}
        tags = {KT_TRIAL_ID_TAG: trial_id}
        rounds: dict[str, Any] = {}
        if "tuner/epochs" in values:  # hyperband: this round's epochs, counted as KerasTuner does
            bracket, round_ = int(values["tuner/bracket"]), int(values["tuner/round"])
            rounds = {
                "epochs": int(values["tuner/epochs"]),
                "initial_epoch": int(values["tuner/initial_epoch"]),
            }
            params.update(rounds, hyperband_bracket=bracket, hyperband_round=round_)
            past = values.get("tuner/trial_id")
            if past is not None:
                params["continues_trial"] = int(past)
                tags[KT_CONTINUES_TAG] = str(past)
                rounds["initial_weights"] = str(self.checkpoint_path(str(past)))
            if round_ < bracket:  # a later round of this bracket may continue it
                rounds["keep_checkpoint"] = str(self.checkpoint_path(trial_id))
        self._record(trial_id, number=number, kt_trial_id=trial_id, config=config, state="starting")
        try:
            outcome = runner(
                number,
                config,
                params=params,
                tags=tags,
                on_run=lambda run_id: self._record(trial_id, run_id=run_id, state="running"),
                **rounds,
            )
        except TrialFailed as exc:
            self._errors[trial_id] = str(exc)
            failed_for_good = {"failed_for_good": exc.reason} if is_deterministic(exc.reason) else {}
            self._record(trial_id, state="failed", error=str(exc), **failed_for_good)
            raise keras_tuner.errors.FailedTrialError(str(exc)) from exc
        self._record(trial_id, run_id=outcome.run_id, state=outcome.state, value=outcome.value)
        self._outcomes[trial_id] = outcome
        return outcome.value

    def _stop_if_exhausted(self) -> None:
        """After a failure that repeating the config cannot change (`sweeps.engines.repeats`),
        and when a sweep is resumed: when the space holds no config left that has not failed
        so, the search stops."""
        dead = {tid: r for tid, r in self._records.items() if r.get("failed_for_good")}
        if not dead or not exhausted(self.spec.space, [r["config"] for r in dead.values()]):
            return
        if not self.counted():
            last = max(dead, key=int)
            raise SweepFailed(
                f"stopped after trial {int(last)}: {dead[last].get('error', 'failed')}; the space holds "
                "no other config, and a seeded config fails the same way every time, so it is not run "
                "again (change the spec and run it with --restart, or under a new name)"
            )
        raise _Stop("exhausted")

    def _after_trial(self, trial: Any) -> None:
        """After KerasTuner ended and saved the trial: report it, count failures in a row."""
        trial = self.oracle.get_trial(trial.trial_id)
        assert self._on_trial is not None
        if trial.status == TrialStatus.COMPLETED:
            self._failures = 0
            self._on_trial(self._outcomes.pop(trial.trial_id, None))
            return
        self._on_trial(None)
        self._failures += 1
        error = self._errors.pop(trial.trial_id, None) or _last_line(trial.message)
        self._stop_if_exhausted()
        if self._failures >= self.spec.budget.max_failures:
            raise SweepFailed(
                f"stopped after {self._failures} failed trials in a row "
                f"(budget.max_failures={self.spec.budget.max_failures}); last: {error}"
            )
