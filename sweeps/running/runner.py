"""`sweep run`: load the data once, open the stores, let the engine spend the budget, summarize."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.spec.schema import Spec

if TYPE_CHECKING:
    import pandas as pd

    from experiments.data import Dataset
    from sweeps.running.trial import TrialOutcome

# Progress after each trial: (trials by state, trials counted against the budget, best value).
OnProgress = Callable[[dict[str, int], int, "float | None"], None]


@dataclass
class SweepResult:
    """What a finished (or stopped) sweep hands back to the CLI or a notebook."""

    name: str
    direction: str
    best_config: dict[str, Any] | None
    best_value: float | None
    best_trial: int | None
    best_run_id: str | None
    counts: dict[str, int]
    stop_reason: str
    totals: dict[str, float]
    tracking_uri: str
    parent_run_id: str
    trials: pd.DataFrame
    faults: list[str] = field(default_factory=list)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model: keras and the backend it was trained on, read from
    what is installed, so logging never pays for MLflow's requirement inference (seconds a call)."""
    from importlib.metadata import PackageNotFoundError, version

    from experiments.backends import BACKEND_PACKAGES, backend_name

    pins = []
    for package in ("keras", BACKEND_PACKAGES[backend_name()]):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def spec_params(spec: Spec) -> dict[str, Any]:
    """The parent run's params: the spec flattened to `section.key`."""
    raw = spec.raw()
    flat: dict[str, Any] = {"name": spec.name}
    for section in ("dataset", "model", "train", "objective", "engine", "budget"):
        for key, value in raw[section].items():
            if value is not None:
                flat[f"{section}.{key}"] = value
    flat["space"] = raw["space"]
    return flat


def load_data(spec: Spec) -> Dataset:
    """The spec's dataset, split as the spec says (the same split in every worker)."""
    from experiments.data import load_dataset

    ds = spec.dataset
    return load_dataset(
        ds.name,
        validation_split=ds.validation_split,
        seed=ds.seed,
        train_size=ds.train_size,
        val_size=ds.val_size,
        test_size=ds.test_size,
        image_size=ds.image_size,
    )


class Sweep:
    """A sweep's stores, opened: the engine's study (created or resumed) and the MLflow parent run.

    The process that opens it may train trials itself (`work`), leave that to worker
    processes, or both; the one that started the sweep closes it (`finish`).
    """

    def __init__(self, spec: Spec, tracking_uri: str | None = None, storage: str | None = None) -> None:
        from sweeps.engines.locks import SweepLock
        from sweeps.engines.registry import make_engine
        from sweeps.running.views import sweep_view
        from tracking.runs import SweepTracker
        from tracking.store import local_dir, resolve_tracking_uri

        self.spec = spec
        self.uri = resolve_tracking_uri(tracking_uri)
        self.engine = make_engine(spec, storage, local_dir(self.uri))
        self.tracker = SweepTracker(self.uri, spec.name)
        with SweepLock(
            spec.name, storage, local_dir(self.uri)
        ).hold():  # one parent run, however many workers start
            self.parent = self.tracker.open(spec_params(spec), spec.to_yaml(), sweep_view(spec))

    def summarize(self) -> None:
        """Trial counts and the best so far, on the parent run."""
        best = self.engine.best()
        summary = (
            None
            if best is None
            else {"number": best.number, "value": best.value, "config": best.config, "run_id": best.run_id}
        )
        self.tracker.summarize(self.engine.counts(), summary, self.spec.objective.metric)

    def progress(self, on_progress: OnProgress | None) -> None:
        if on_progress is not None:
            best = self.engine.best()
            on_progress(self.engine.counts(), self.engine.counted(), None if best is None else best.value)

    def work(self, data: Dataset, on_progress: OnProgress | None = None) -> str:
        """Train trials in this process until the budget is spent; returns why it stopped."""
        from sweeps.running.trial import TrialRunner
        from sweeps.running.views import training_inputs

        self.tracker.use_inputs(training_inputs(self.spec, data))

        def after_trial(outcome: TrialOutcome | None) -> None:
            self.summarize()
            self.progress(on_progress)

        try:
            return self.engine.optimize(TrialRunner(self.spec, data, self.tracker), after_trial)
        finally:
            self.tracker.drain()

    def finish(self, status: str, reason: str) -> SweepResult:
        """Close the sweep: best model (once), totals, parent run status; returns the result."""
        from sweeps.running.accounting import accounting
        from tracking.query import trials_frame

        self.tracker.drain()  # every trial's run written and its engine told
        best = self.engine.best()
        if best is not None and status == "FINISHED":
            self.tracker.log_best_model(best.run_id, best.number, pip_requirements())
        self.summarize()
        self.tracker.drain()
        trials = trials_frame(self.uri, self.spec.name)
        if not trials.empty:  # the same spec run on the other engine shares the experiment
            trials = trials[trials["engine"] == self.spec.engine.name].reset_index(drop=True)
        totals = accounting(trials, self.spec.train.epochs)
        self.tracker.log_metrics(totals, step=len(trials))
        self.tracker.close(status)
        return SweepResult(
            name=self.spec.name,
            direction=self.spec.objective.direction,
            best_config=None if best is None else best.config,
            best_value=None if best is None else best.value,
            best_trial=None if best is None else best.number,
            best_run_id=None if best is None else best.run_id,
            counts=self.engine.counts(),
            stop_reason=reason,
            totals=totals,
            tracking_uri=self.uri,
            parent_run_id=self.parent,
            trials=trials,
            faults=list(self.tracker.faults.items),
        )


def run_sweep(
    spec: Spec,
    *,
    tracking_uri: str | None = None,
    storage: str | None = None,
    on_progress: OnProgress | None = None,
) -> SweepResult:
    """Run (or continue) a sweep in this process and return its best config.

    `on_progress(counts, counted, best_value)` is called after every trial.
    """
    data = load_data(spec)  # before any store is touched: missing data records nothing
    sweep = Sweep(spec, tracking_uri, storage)
    status, reason = "FAILED", "error"
    try:
        reason = sweep.work(data, on_progress)
        status = "FINISHED"
    except KeyboardInterrupt:
        status, reason = "KILLED", "interrupted"
        raise
    finally:
        result = sweep.finish(status, reason)
    return result


def run(
    spec: str | Path | Mapping[str, Any] | Spec = "quickstart",
    *,
    trials: int | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    **overrides: Any,
) -> SweepResult:
    """Run a sweep from Python, as `sweep run` does.

    Overrides use `__` for nesting: `run("quickstart", trials=3, train__epochs=2)`.

    Example:
        >>> result = sweeps.run("quickstart", trials=2)  # doctest: +SKIP
        >>> result.best_config, result.best_value, result.trials.head()  # doctest: +SKIP
    """
    from sweeps.spec.schema import load_spec

    dotted = {key.replace("__", "."): value for key, value in overrides.items()}
    if trials is not None:
        dotted["budget.trials"] = trials
    spec = load_spec(spec.raw() if isinstance(spec, Spec) else spec, dotted)
    return run_sweep(spec, tracking_uri=tracking_uri, storage=storage)
