"""The Optuna engine: storages, samplers, pruners, and the loop that spends the trial budget.

Trials run through ask/tell under a lock shared by all workers of the sweep, so the budget
holds across processes and machines; a trial whose worker died is found (dead pid on this
host, or a missed RDB heartbeat), failed, optionally retried, and its MLflow run closed.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from sweeps.engines.base import JOURNAL_FILE, BestTrial, OnTrial
from sweeps.engines.liveness import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    WORKER_ATTR,
    Heartbeat,
    is_dead,
    this_worker,
)
from sweeps.engines.locks import SweepLock
from sweeps.engines.pruning import PruningCallback
from sweeps.engines.repeats import DEAD_ATTR, exhausted, is_deterministic
from sweeps.errors import SweepError, SweepFailed, TrialFailed

if TYPE_CHECKING:
    from sweeps.running.trial import TrialRunner
    from sweeps.spec.schema import PrunerSpec, Spec

State = optuna.trial.TrialState
COUNTED = (State.COMPLETE, State.PRUNED)
WAIT_SECONDS = 1.0  # how often a worker with nothing to start looks again
UNRECORDED_ATTR = "sweeplab_unrecorded"  # a trial told failed because its run could not be written
JOINED_ATTR = "sweeplab_processes"  # how many processes opened the study (each samples with its own seed)


def open_storage(
    url: str | None, local_dir: Path, on_stale: Callable[..., None] | None = None
) -> optuna.storages.BaseStorage:
    """`--storage`: an RDB URL (postgresql://, sqlite:///), a journal file, or by default a
    journal file beside the MLflow store, which several local processes can share without
    SQLite's "database is locked". `on_stale(study, trial)` hears of RDB trials whose
    heartbeat stopped."""
    if url and "://" in url:
        with warnings.catch_warnings():  # heartbeats: "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=on_stale,
            )
    path = Path(url.removeprefix("journal:")) if url else local_dir / JOURNAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def make_sampler(spec: Spec, joined: int = 0) -> optuna.samplers.BaseSampler:
    """The grid is enqueued as trials instead (see `OptunaEngine`), so it needs no sampler.

    `joined` counts the processes that opened the study before this one: TPE and random draw
    from a seed of their own (`engine.seed` + joined), so workers on one study, and a resumed
    sweep, do not propose the same configs in the same order (the first process keeps
    `engine.seed`). QMC keeps one seed: its workers share one scrambled sequence."""
    seed = spec.engine.seed
    own = None if seed is None else seed + joined
    match spec.engine.sampler:
        case "tpe":
            return optuna.samplers.TPESampler(seed=own)
        case "random" | "grid":
            return optuna.samplers.RandomSampler(seed=own)
        case "qmc":
            return optuna.samplers.QMCSampler(seed=seed)
    raise SweepError(f"engine.sampler: unknown sampler {spec.engine.sampler!r}")


def make_pruner(pruner: PrunerSpec | None, max_epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruners; epochs are the steps they compare trials on."""
    if pruner is None or pruner.name == "none":
        return optuna.pruners.NopPruner()
    match pruner.name:
        case "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs
            )
        case "percentile":
            return optuna.pruners.PercentilePruner(
                pruner.percentile, n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_epochs
            )
        case "successive_halving":
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=pruner.min_epochs, reduction_factor=pruner.reduction_factor
            )
        case "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=pruner.min_epochs,
                max_resource=max_epochs,
                reduction_factor=pruner.reduction_factor,
            )
    raise SweepError(f"engine.pruner.name: unknown pruner {pruner.name!r}")


class OptunaEngine:
    """A study named after the sweep, created or loaded from the storage."""

    def __init__(self, spec: Spec, storage: str | None, local_dir: Path) -> None:
        self.spec = spec
        self.lock = SweepLock(spec.name, storage, local_dir)
        self._stale: list[optuna.trial.FrozenTrial] = []
        with self.lock.hold():  # workers creating a new RDB storage's tables at once collide
            opened = open_storage(storage, local_dir, lambda _, trial: self._stale.append(trial))
            # Optuna wraps an RDBStorage in a cache (`study._storage` is no RDBStorage): keep
            # ours, to know that trials need heartbeats.
            self._rdb = opened if isinstance(opened, optuna.storages.RDBStorage) else None
            self.study = optuna.create_study(
                study_name=spec.name,
                storage=opened,
                pruner=make_pruner(spec.engine.pruner, spec.train.epochs),
                direction=spec.objective.direction,
                load_if_exists=True,
            )
            wanted = optuna.study.StudyDirection[spec.objective.direction.upper()]
            if self.study.direction != wanted:
                raise SweepError(
                    f"study {spec.name!r} in this storage was run to "
                    f"{self.study.direction.name.lower()}, but the spec says {spec.objective.direction}; "
                    "rename the sweep or use another storage"
                )
            if self.study.metric_names != [spec.objective.metric]:  # optuna-dashboard's axis label
                with warnings.catch_warnings():  # "experimental" since Optuna 3.2
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    self.study.set_metric_names([spec.objective.metric])
            joined = int(self.study.user_attrs.get(JOINED_ATTR, 0))
            self.study.set_user_attr(JOINED_ATTR, joined + 1)
            self.study.sampler = make_sampler(spec, joined)
            self.limit = spec.budget.trials
            if spec.engine.sampler == "grid":
                self.limit = min(self.limit, self._enqueue_grid())
        self._reaped: set[int] = set()
        self._prunes = not isinstance(self.study.pruner, optuna.pruners.NopPruner)

    def _enqueue_grid(self) -> int:
        """A grid search is its points enqueued once, in order: exact and shared by all workers.
        Each choice's sub-space is enumerated under its own keys (`learning_rate@sgd`)."""
        points = self.spec.space.grid_points()
        if "grid_size" not in self.study.user_attrs:
            for point in points:
                self.study.enqueue_trial(point, skip_if_exists=True)
            self.study.set_user_attr("grid_size", len(points))
        return len(points)

    def _trials(self, *states: State) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states or None)

    def counts(self) -> dict[str, int]:
        trials = self._trials()
        states = {"complete": State.COMPLETE, "pruned": State.PRUNED, "failed": State.FAIL}
        return {name: sum(t.state == state for t in trials) for name, state in states.items()}

    def counted(self, trials: list[optuna.trial.FrozenTrial] | None = None) -> int:
        """Complete and pruned trials (of `trials`, else the study's); on a grid also points
        that failed for good (done)."""
        trials = self._trials() if trials is None else trials
        grid = self.spec.engine.sampler == "grid"
        return sum(
            t.state in COUNTED or (grid and t.state == State.FAIL and bool(t.user_attrs.get(DEAD_ATTR)))
            for t in trials
        )

    def best(self) -> BestTrial | None:
        if not self._trials(State.COMPLETE):
            return None
        best = self.study.best_trial
        config = self.spec.space.config(best.params)
        return BestTrial(best.number, float(best.value), config, best.user_attrs["run_id"])

    def recover(self, runner: TrialRunner) -> None:
        """Fail trials whose worker died, retry them if the budget allows, close their runs."""
        if self._rdb is not None:
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # reports to self._stale
        for trial in self._trials(State.RUNNING):
            if is_dead(trial.user_attrs.get(WORKER_ATTR)):
                self.study._storage.set_trial_state_values(trial._trial_id, State.FAIL)
                self._stale.append(trial)
        while self._stale:
            self._retry(self._stale.pop())
        for trial in self._trials(State.FAIL):
            if trial.number not in self._reaped and "run_id" in trial.user_attrs:
                reason = "not_recorded" if trial.user_attrs.get(UNRECORDED_ATTR) else "worker_lost"
                runner.abandon(trial.user_attrs["run_id"], reason)
                self._reaped.add(trial.number)

    def _retry(self, trial: optuna.trial.FrozenTrial) -> None:
        original = trial.user_attrs.get("retry_of", trial.number)
        retries = sum(t.user_attrs.get("retry_of") == original for t in self._trials())
        if retries < self.spec.budget.retries:
            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": original})

    def room(self, runner: TrialRunner, started: float) -> int | str:
        """Called under the sweep's lock: how many new trials the budget has room for (0: it is
        spoken for unless a running trial fails), or why to stop ("budget", "timeout")."""
        self.recover(runner)
        # One read for both counts: trials are told outside the lock, and one told between two
        # reads would be in neither count (its budget given out twice).
        trials = self._trials()
        done = self.counted(trials)
        if done >= self.limit:
            return "budget"
        timeout = self.spec.budget.timeout
        if timeout is not None and time.monotonic() - started >= timeout:
            return "timeout"
        return self.limit - done - sum(t.state == State.RUNNING for t in trials)

    def wait(self, runner: TrialRunner) -> None:
        """No room in the budget: the trials holding it may be this worker's own, told once their
        runs are written, so wait for those writes (the sweep ends as soon as they are in);
        with none queued, look again for other workers' trials every WAIT_SECONDS."""
        if runner.recording():
            runner.wait_recorded()
        else:
            time.sleep(WAIT_SECONDS)

    def _next_trial(self, runner: TrialRunner, started: float) -> optuna.Trial | str | None:
        """Under the sweep's lock: a new trial, None to wait for running ones, or why to stop."""
        with self.lock.hold():
            room = self.room(runner, started)
            if isinstance(room, str):
                return room
            if room <= 0:
                return None
            return self.ask()

    def ask(self) -> optuna.Trial:
        """A new trial, marked with this worker (call under the sweep's lock)."""
        with warnings.catch_warnings():
            # Optuna warns that heartbeats are meant for `Study.optimize`; `Heartbeat` beats for ask/tell.
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            trial = self.study.ask()
        trial.set_user_attr(WORKER_ATTR, this_worker())
        return trial

    def optimize(self, runner: TrialRunner, on_trial: OnTrial) -> str:
        """Run trials until the budget is spent; returns why the loop stopped.

        A failed trial is recorded and the loop goes on, up to `budget.max_failures`
        failures in a row; an interrupt records the trial in progress as failed
        (`interrupted`) in the study, and its run as KILLED, before it propagates.

        The study hears of a trial's end only once its MLflow run is written (the tell is
        queued behind the run's writes), so a worker killed in between leaves a RUNNING
        trial that `recover` fails and closes, never a finished trial with an open run.
        With `train.fuse` > 1, trials run in packs (`sweeps.engines.optuna_packs`).
        """
        if self.spec.train.fuse > 1:
            from sweeps.engines.optuna_packs import PackLoop

            return PackLoop(self).optimize(runner, on_trial)
        started = time.monotonic()
        failures = 0
        if self._nothing_left():  # every config failed for good in an earlier run: not again
            last = max(
                (t for t in self._trials(State.FAIL) if t.user_attrs.get(DEAD_ATTR)), key=lambda t: t.number
            )
            return self._exhausted(last.number, f"{last.user_attrs[DEAD_ATTR]} (in an earlier run)")
        while True:
            trial = self._next_trial(runner, started)
            if isinstance(trial, str):
                return trial
            if trial is None:
                self.wait(runner)
                continue
            heartbeat = self._heartbeat(trial)
            try:
                outcome = self._run(trial, runner)
            except TrialFailed as exc:
                nothing_left = self._failed_for_good(trial, exc)  # before the tell: it writes the trial
                runner.after_recorded(self._tell, trial, heartbeat, State.FAIL, None, on_trial)
                if nothing_left:
                    return self._exhausted(trial.number, str(exc))
                failures += 1
                if failures >= self.spec.budget.max_failures:
                    raise SweepFailed(
                        f"stopped after {failures} failed trials in a row "
                        f"(budget.max_failures={self.spec.budget.max_failures}); last: {exc}"
                    ) from None
                continue
            except BaseException:
                trial.set_user_attr("interrupted", True)
                runner.after_recorded(self._tell, trial, heartbeat, State.FAIL, None, None)
                raise
            failures = 0
            if outcome.state == "pruned":
                runner.after_recorded(self._tell, trial, heartbeat, State.PRUNED, None, on_trial, outcome)
            else:
                runner.after_recorded(
                    self._tell, trial, heartbeat, State.COMPLETE, outcome.value, on_trial, outcome
                )

    def _failed_for_good(self, trial: optuna.Trial, exc: TrialFailed) -> bool:
        """Mark a trial whose failure repeating the config cannot change
        (`sweeps.engines.repeats`); True when no config of the space is left untried so."""
        if not is_deterministic(exc.reason):
            return False
        trial.set_user_attr(DEAD_ATTR, exc.reason)
        return self._nothing_left(trial.params)

    def _nothing_left(self, *more: dict[str, Any]) -> bool:
        dead = [t.params for t in self._trials(State.FAIL) if t.user_attrs.get(DEAD_ATTR)]
        return bool(dead or more) and exhausted(self.spec.space, [*dead, *more])

    def _exhausted(self, number: int, error: str) -> str:
        """The sweep stops with "exhausted", or SweepFailed when no trial ever finished."""
        if not self._trials(*COUNTED):
            raise SweepFailed(
                f"stopped after trial {number}: {error}; the space holds no other config, and a "
                "seeded config fails the same way every time, so it is not run again (change the "
                "spec and run it with --restart, or under a new name)"
            )
        return "exhausted"

    def _tell(
        self,
        trial: optuna.Trial,
        heartbeat: Heartbeat | None,
        state: State,
        value: float | None,
        on_trial: OnTrial | None,
        outcome: Any = None,
    ) -> None:
        """End the trial in the study (after its run is recorded), then report it. A trial whose
        run could not be written is told failed: the study must not count what MLflow lacks
        (the next `sweep run` closes that run)."""
        if outcome is not None and not outcome.recorded():
            trial.set_user_attr(UNRECORDED_ATTR, True)
            state, value, outcome = State.FAIL, None, None
        try:
            self.study.tell(trial, value, state=state)
        finally:
            if heartbeat is not None:
                heartbeat.stop()
        if on_trial is not None:
            on_trial(outcome)

    def _heartbeat(self, trial: optuna.Trial) -> Heartbeat | None:
        """RDB storages: a heartbeat for the trial until the study is told of its end."""
        if self._rdb is None:
            return None
        return Heartbeat(self._rdb, trial._trial_id).start()

    def _run(self, trial: optuna.Trial, runner: TrialRunner) -> Any:
        config = self.spec.space.suggest(trial)
        # Each report is a storage write: only when a pruner will read it.
        pruning = PruningCallback(trial, self.spec.objective.metric) if self._prunes else None
        return runner(
            trial.number,
            config,
            callbacks=[pruning] if pruning else [],
            pruning=pruning,
            on_run=lambda run_id: trial.set_user_attr("run_id", run_id),
        )
