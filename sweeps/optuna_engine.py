"""The Optuna engine: storages, samplers, pruners, and the loop that spends the trial budget."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from sweeps.engine import BestTrial, OnTrial
from sweeps.errors import SweepError
from sweeps.pruning import PruningCallback
from sweeps.trial import TrialFailed, TrialOutcome

if TYPE_CHECKING:
    from sweeps.spec import PrunerSpec, Spec
    from sweeps.trial import TrialRunner

State = optuna.trial.TrialState
COUNTED = (State.COMPLETE, State.PRUNED)
JOURNAL_FILE = "optuna.journal"


def open_storage(url: str | None, local_dir: Path) -> optuna.storages.BaseStorage:
    """`--storage`: an RDB URL (postgresql://, sqlite:///), a journal file, or by default a
    journal file beside the MLflow store, which several local processes can share without
    SQLite's "database is locked"."""
    if url and "://" in url:
        return optuna.storages.RDBStorage(url)
    path = Path(url.removeprefix("journal:")) if url else local_dir / JOURNAL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


def make_sampler(spec: Spec) -> optuna.samplers.BaseSampler:
    seed = spec.engine.seed
    match spec.engine.sampler:
        case "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        case "random":
            return optuna.samplers.RandomSampler(seed=seed)
        case "grid":
            return optuna.samplers.GridSampler(spec.space.grid(), seed=seed)
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
                min_resource=pruner.min_epochs, max_resource=max_epochs, reduction_factor=pruner.reduction_factor
            )
    raise SweepError(f"engine.pruner.name: unknown pruner {pruner.name!r}")


def grid_size(spec: Spec) -> int | None:
    if spec.engine.sampler != "grid":
        return None
    return math.prod(len(values) for values in spec.space.grid().values())


class OptunaEngine:
    """A study named after the sweep, created or loaded from the storage."""

    def __init__(self, spec: Spec, storage: str | None, local_dir: Path) -> None:
        self.spec = spec
        self.study = optuna.create_study(
            study_name=spec.name,
            storage=open_storage(storage, local_dir),
            sampler=make_sampler(spec),
            pruner=make_pruner(spec.engine.pruner, spec.train.epochs),
            direction=spec.objective.direction,
            load_if_exists=True,
        )
        wanted = optuna.study.StudyDirection[spec.objective.direction.upper()]
        if self.study.direction != wanted:
            raise SweepError(
                f"study {spec.name!r} in this storage was run to {self.study.direction.name.lower()}, "
                f"but the spec says {spec.objective.direction}; rename the sweep or use another storage"
            )

    def counts(self) -> dict[str, int]:
        trials = self.study.get_trials(deepcopy=False)
        states = {"complete": State.COMPLETE, "pruned": State.PRUNED, "failed": State.FAIL}
        return {name: sum(t.state == state for t in trials) for name, state in states.items()}

    def counted(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=COUNTED))

    def best(self) -> BestTrial | None:
        if not self.study.get_trials(deepcopy=False, states=(State.COMPLETE,)):
            return None
        best = self.study.best_trial
        return BestTrial(best.number, float(best.value), dict(best.user_attrs["config"]), best.user_attrs["run_id"])

    def optimize(self, runner: TrialRunner, on_trial: OnTrial) -> str:
        """Run trials until the budget is spent; returns why the loop stopped.

        Each trial is one `study.optimize(n_trials=1)` call, so Optuna's own bookkeeping
        (stale-trial checks, state on failure) applies; a failed trial is recorded and the
        loop goes on, up to `budget.max_failures` failures in a row.
        """
        spec, study, budget = self.spec, self.study, self.spec.budget
        limit = min(budget.trials, grid_size(spec) or budget.trials)
        started = time.monotonic()
        failures = 0
        outcomes: list[TrialOutcome] = []
        errors: list[str] = []

        def objective(trial: optuna.Trial) -> float:
            config = spec.space.suggest(trial)
            pruning = PruningCallback(trial, spec.objective.metric)
            try:
                outcome = runner(trial.number, config, callbacks=[pruning], pruning=pruning)
            except TrialFailed as exc:
                errors.append(str(exc))
                raise
            trial.set_user_attr("run_id", outcome.run_id)
            trial.set_user_attr("config", dict(config))
            outcomes.append(outcome)
            if outcome.state == "pruned":
                raise optuna.TrialPruned(f"pruned at epoch {pruning.pruned_epoch}")
            return outcome.value

        while True:
            if self.counted() >= limit:
                return "budget"
            if budget.timeout is not None and time.monotonic() - started >= budget.timeout:
                return "timeout"
            done_before, failed_before = len(outcomes), len(errors)
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
            # Reported after optimize() returns, so the study already counts this trial.
            on_trial(outcomes[-1] if len(outcomes) > done_before else None)
            if len(errors) == failed_before:
                failures = 0
                continue
            failures += 1
            if failures >= budget.max_failures:
                raise SweepError(
                    f"stopped after {failures} failed trials in a row "
                    f"(budget.max_failures={budget.max_failures}); last: {errors[-1]}"
                )
