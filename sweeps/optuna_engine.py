"""The Optuna engine: storages, samplers, and the loop that spends the trial budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from sweeps.errors import SweepError
from sweeps.trial import TrialFailed, TrialOutcome

if TYPE_CHECKING:
    from sweeps.spec import Spec
    from sweeps.trial import TrialRunner

COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
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


def open_study(spec: Spec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the sweep's study, or load it to continue where an earlier run stopped."""
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec),
        direction=spec.objective.direction,
        load_if_exists=True,
    )
    wanted = optuna.study.StudyDirection[spec.objective.direction.upper()]
    if study.direction != wanted:
        raise SweepError(
            f"study {spec.name!r} in this storage was run to {study.direction.name.lower()}, "
            f"but the spec says {spec.objective.direction}; rename the sweep or use another storage"
        )
    return study


def grid_size(spec: Spec) -> int | None:
    if spec.engine.sampler != "grid":
        return None
    return math.prod(len(values) for values in spec.space.grid().values())


def counted(study: optuna.Study) -> int:
    """Trials that use up the budget: finished or pruned (failed ones do not)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def optimize(
    spec: Spec,
    study: optuna.Study,
    runner: TrialRunner,
    on_trial: Callable[[TrialOutcome | None, optuna.Study], None] = lambda outcome, study: None,
) -> str:
    """Run trials until the budget is spent; returns why the loop stopped.

    Each trial is one `study.optimize(n_trials=1)` call, so Optuna's own bookkeeping
    (stale-trial checks, state on failure) applies; a failed trial is recorded and the
    loop goes on, up to `budget.max_failures` failures in a row.
    """
    budget = spec.budget
    limit = min(budget.trials, grid_size(spec) or budget.trials)
    started = time.monotonic()
    failures = 0
    outcomes: list[TrialOutcome] = []
    errors: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        config = spec.space.suggest(trial)
        try:
            outcome = runner(trial.number, config)
        except TrialFailed as exc:
            errors.append(str(exc))
            raise
        trial.set_user_attr("run_id", outcome.run_id)
        trial.set_user_attr("config", dict(config))
        outcomes.append(outcome)
        return outcome.value

    while True:
        if counted(study) >= limit:
            return "budget"
        if budget.timeout is not None and time.monotonic() - started >= budget.timeout:
            return "timeout"
        done_before, failed_before = len(outcomes), len(errors)
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        # Reported after optimize() returns, so the study already counts this trial.
        on_trial(outcomes[-1] if len(outcomes) > done_before else None, study)
        if len(errors) == failed_before:
            failures = 0
            continue
        failures += 1
        if failures >= budget.max_failures:
            raise SweepError(
                f"stopped after {failures} failed trials in a row "
                f"(budget.max_failures={budget.max_failures}); last: {errors[-1]}"
            )
