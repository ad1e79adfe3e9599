"""`sweep run`: load the data once, open the stores, let the engine spend the budget, summarize."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.spec import Spec

if TYPE_CHECKING:
    import pandas as pd

    from sweeps.trial import TrialOutcome

# Written out so that logging the best model never pays for requirement inference.
MODEL_REQUIREMENTS = ("keras", "tensorflow")


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
    """Pinned requirements of the logged model, read from what is installed (no inference)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in MODEL_REQUIREMENTS:
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


def run_sweep(
    spec: Spec,
    *,
    tracking_uri: str | None = None,
    storage: str | None = None,
    on_trial: Callable[[TrialOutcome | None, int, float | None], None] | None = None,
) -> SweepResult:
    """Run (or continue) a sweep and return its best config.

    `on_trial(outcome, trials_counted, best_value)` is called after every trial (outcome None
    for a failed one), for progress displays.
    """
    from experiments.data import load_dataset
    from sweeps.accounting import accounting
    from sweeps.engine import make_engine
    from sweeps.trial import TrialRunner
    from tracking.query import trials_frame
    from tracking.runs import SweepTracker
    from tracking.store import local_dir, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    ds = spec.dataset
    data = load_dataset(
        ds.name,
        validation_split=ds.validation_split,
        seed=ds.seed,
        train_size=ds.train_size,
        val_size=ds.val_size,
        test_size=ds.test_size,
        image_size=ds.image_size,
    )
    engine = make_engine(spec, storage, local_dir(uri))
    tracker = SweepTracker(uri, spec.name)
    parent = tracker.open(spec_params(spec), spec.to_yaml())

    def after_trial(outcome: TrialOutcome | None) -> None:
        best = engine.best()
        summary = None if best is None else {"number": best.number, "value": best.value, "config": best.config}
        tracker.summarize(engine.counts(), summary, spec.objective.metric)
        if on_trial is not None:
            on_trial(outcome, engine.counted(), None if best is None else best.value)

    status = "FAILED"
    try:
        reason = engine.optimize(TrialRunner(spec, data, tracker), after_trial)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        best = engine.best()
        if best is not None and status == "FINISHED":
            tracker.log_best_model(best.run_id, best.number, pip_requirements(), data.x_val[:5])
        tracker.drain()
        trials = trials_frame(uri, spec.name)
        totals = accounting(trials, spec.train.epochs)
        tracker.log_metrics(totals, step=len(trials))
        tracker.close(status)

    return SweepResult(
        name=spec.name,
        direction=spec.objective.direction,
        best_config=None if best is None else best.config,
        best_value=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        best_run_id=None if best is None else best.run_id,
        counts=engine.counts(),
        stop_reason=reason,
        totals=totals,
        tracking_uri=uri,
        parent_run_id=parent,
        trials=trials,
        faults=list(tracker.faults.items),
    )


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
    from sweeps.spec import load_spec

    dotted = {key.replace("__", "."): value for key, value in overrides.items()}
    if trials is not None:
        dotted["budget.trials"] = trials
    spec = load_spec(spec.raw() if isinstance(spec, Spec) else spec, dotted)
    return run_sweep(spec, tracking_uri=tracking_uri, storage=storage)
