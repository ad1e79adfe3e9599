"""What the runner needs from a search engine, whichever library proposes the configs.

An engine spends the trial budget by calling a `TrialRunner` (which trains and records),
and can say how many trials ended in each state and which one is best. Engines know
nothing of MLflow; the runner knows nothing of Optuna or KerasTuner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sweeps.errors import TrialFailed
    from sweeps.running.trial import TrialOutcome, TrialRunner

OnTrial = Callable[["TrialOutcome | None"], None]  # after each trial; None for a failed one
# The Optuna storage by default: a journal file beside the MLflow store (here, so that what
# checks it need not import the engine, which imports Keras).
JOURNAL_FILE = "optuna.journal"


@dataclass(frozen=True)
class PackTrial:
    """One trial of a pack (`train.fuse`): what `TrialRunner.__call__` takes for a trial alone."""

    number: int
    config: Mapping[str, Any]
    callbacks: Sequence[Any] = ()
    pruning: Any = None
    on_run: Callable[[str], None] | None = None


# Hears of each trial of a pack as its branch ends: its outcome, or its recorded failure.
OnPackTrialEnd = Callable[[PackTrial, "TrialOutcome | TrialFailed"], None]


@dataclass(frozen=True)
class BestTrial:
    number: int
    value: float
    config: dict[str, Any]
    run_id: str


class Engine(Protocol):
    def optimize(self, runner: TrialRunner, on_trial: OnTrial) -> str:
        """Run trials until the budget is spent; return why it stopped (budget, timeout, ...)."""
        ...

    def counts(self) -> dict[str, int]:
        """Trials by state: complete, pruned, failed."""
        ...

    def counted(self) -> int:
        """Trials that use up `budget.trials` (complete and pruned)."""
        ...

    def best(self) -> BestTrial | None: ...
