"""Optuna trials in packs (`train.fuse` > 1): K trials asked at once, trained together, told one by one.

Under the sweep's lock a worker asks for up to K trials, fewer when the budget has less room
(done + running + new never exceeds `budget.trials`, across all workers, so the last pack may
be smaller), and suggests each trial's config right after asking for it, so that TPE's constant
liar (`TPESampler(constant_liar=True)`, Optuna 5's default) sees the pack's earlier trials as
running and keeps the K apart; grid, random and QMC sample as they do for single trials. Each
trial keeps its own heartbeat, run id and worker, so `OptunaEngine.recover` finds, fails (and
retries) and closes every trial of a killed pack as it would a single one. Each is told as soon
as its branch ends and its run is written; pruning is per trial (each branch reports to its own
trial and stops when that trial is pruned).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna

from sweeps.engines.base import OnTrial, PackTrial
from sweeps.engines.pruning import PruningCallback
from sweeps.errors import SweepFailed, TrialFailed

if TYPE_CHECKING:
    from sweeps.engines.optuna_engine import OptunaEngine
    from sweeps.running.trial import TrialRunner

State = optuna.trial.TrialState


class PackLoop:
    """The optimize loop of an `OptunaEngine` whose spec fuses trials."""

    def __init__(self, engine: OptunaEngine) -> None:
        self.engine = engine
        self.size = engine.spec.train.fuse

    def next_pack(
        self, runner: TrialRunner, started: float
    ) -> list[tuple[optuna.Trial, dict[str, Any]]] | str | None:
        """Under the lock: up to `size` new trials with their configs, None to wait, or why to stop."""
        engine = self.engine
        with engine.lock.hold():
            room = engine.room(runner, started)
            if isinstance(room, str):
                return room
            if room <= 0:
                return None
            pack = []
            for _ in range(min(self.size, room)):
                trial = engine.ask()
                pack.append((trial, engine.spec.space.suggest(trial)))
            return pack

    def optimize(self, runner: TrialRunner, on_trial: OnTrial) -> str:
        """`OptunaEngine.optimize`, a pack at a time; failures in a row count trial by trial."""
        started = time.monotonic()
        self.failures = 0
        self.last_error: TrialFailed | None = None
        while True:
            pack = self.next_pack(runner, started)
            if isinstance(pack, str):
                return pack
            if pack is None:
                self.engine.wait(runner)
                continue
            self._train(runner, pack, on_trial)
            if self.engine._prunes:
                # A pruner compares a trial with complete ones: the next pack must find this
                # one told (TPE needs no wait: its constant liar sees running trials).
                runner.wait_recorded()
            max_failures = self.engine.spec.budget.max_failures
            if self.failures >= max_failures:
                raise SweepFailed(
                    f"stopped after {self.failures} failed trials in a row "
                    f"(budget.max_failures={max_failures}); last: {self.last_error}"
                )

    def _train(
        self, runner: TrialRunner, pack: list[tuple[optuna.Trial, dict[str, Any]]], on_trial: OnTrial
    ) -> None:
        """Train one pack; each trial is told once its run is written (or, on an interrupt, failed)."""
        engine = self.engine
        trials = {trial.number: trial for trial, _ in pack}
        heartbeats = {number: engine._heartbeat(trial) for number, trial in trials.items()}
        told: set[int] = set()

        def on_end(item: PackTrial, outcome: Any) -> None:
            trial, heartbeat = trials[item.number], heartbeats[item.number]
            told.add(item.number)
            if isinstance(outcome, TrialFailed):
                runner.after_recorded(engine._tell, trial, heartbeat, State.FAIL, None, on_trial)
                self.failures += 1
                self.last_error = outcome
                return
            self.failures = 0
            if outcome.state == "pruned":
                runner.after_recorded(engine._tell, trial, heartbeat, State.PRUNED, None, on_trial, outcome)
            else:
                runner.after_recorded(
                    engine._tell, trial, heartbeat, State.COMPLETE, outcome.value, on_trial, outcome
                )

        items = []
        for trial, config in pack:
            # Each report is a storage write: only when a pruner will read it.
            pruning = PruningCallback(trial, engine.spec.objective.metric) if engine._prunes else None
            items.append(
                PackTrial(
                    trial.number,
                    config,
                    [pruning] if pruning else [],
                    pruning,
                    on_run=lambda run_id, trial=trial: trial.set_user_attr("run_id", run_id),
                )
            )
        try:
            runner.pack(items, on_end)
        except BaseException:
            for number, trial in trials.items():
                if number not in told:
                    trial.set_user_attr("interrupted", True)
                    runner.after_recorded(engine._tell, trial, heartbeats[number], State.FAIL, None, None)
            raise
