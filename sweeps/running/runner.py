"""`sweep run`: load the data once, open the stores, let the engine spend the budget, summarize."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.errors import StoreError, SweepError
from sweeps.spec.schema import Spec

if TYPE_CHECKING:
    import pandas as pd

    from experiments.data import Data
    from sweeps.running.trial import TrialOutcome

# Progress after each trial: (trials by state, trials counted against the budget, best value).
OnProgress = Callable[[dict[str, int], int, "float | None"], None]


@dataclass
class SweepResult:
    """What a finished (or stopped) sweep hands back to the CLI or a notebook."""

    name: str
    metric: str
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
    faults: list[str] = field(default_factory=list)  # what could not be recorded
    trials_run: int = 0  # trials this process trained
    already_spent: bool = False  # the budget was spent before this run started
    interrupted: list[int] = field(default_factory=list)  # trials recorded as interrupted
    archived_as: str | None = None  # restart: the name the old sweep was kept under
    failed_store: str | None = None  # MLflow or Optuna, when one failed mid-sweep


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


def load_data(spec: Spec) -> Data:
    """The spec's dataset, split as the spec says (the same split in every worker), its targets
    checked for the spec's task (inferred from them when the spec gives none)."""
    from experiments.data import load_dataset

    ds = spec.dataset
    return load_dataset(
        ds.name,
        task=spec.task,
        options=ds.options(),
        color_mode=ds.color_mode,
        validation_split=ds.validation_split,
        seed=ds.seed,
        train_size=ds.train_size,
        val_size=ds.val_size,
        test_size=ds.test_size,
        image_size=ds.image_size,
    )


def check_backend(spec: Spec) -> None:
    """Settings the Keras backend in use cannot run, refused before any store is touched."""
    from experiments.dispatch import resolve_steps_per_execution
    from experiments.errors import ConfigError
    from sweeps.errors import SpecError

    try:
        resolve_steps_per_execution(spec.train.steps_per_execution, n_samples=1, batch_size=1)
    except ConfigError as exc:
        raise SpecError(f"train.{exc}") from None


def prepare(spec: Spec) -> tuple[Spec, Data, str | None]:
    """Load the data and settle the task, before any store is touched: the spec with its task
    (and the task's default objective), the data, and the line that says which task was
    inferred (None when the spec gave it).

    Raises SpecError for an objective or monitor the task's model does not log, a loss or metric
    Keras does not know or that cannot be imported, or a batch size searched over streams;
    DatasetError for data that cannot be loaded or targets the task cannot take.
    """
    from experiments.errors import ConfigError
    from experiments.metrics import resolve_loss, resolve_metrics
    from experiments.streams import StreamedDataset
    from experiments.tasks import describe_targets
    from sweeps.errors import SpecError

    data = load_data(spec)
    note = None
    if spec.task is None:
        try:
            spec = spec.for_task(data.task)
        except SpecError as exc:
            raise SpecError(
                f"{str(exc).removeprefix('spec: ')} (task {data.task} was inferred from the data: "
                "set `task` to choose another)"
            ) from None
        shape = data.target_shape if isinstance(data, StreamedDataset) else tuple(data.y_train.shape[1:])
        targets = describe_targets(data.task, data.num_classes, shape)
        note = f"task: {data.task}, inferred from the training targets ({targets}); set `task:` to choose"
    for where, resolve, value in (
        ("train.loss", resolve_loss, spec.train.loss),
        ("train.metrics", resolve_metrics, spec.train.metrics),
    ):
        try:
            if value is not None:  # the task's defaults are Keras's own: nothing to check
                resolve(str(spec.task), value)
        except ConfigError as exc:
            raise SpecError(f"{where}: {exc}") from None
    if isinstance(data, StreamedDataset) and "batch_size" in spec.space.searched:
        raise SpecError(
            "space.batch_size: the dataset streams its own batches; batch_size cannot be searched"
        )
    if spec.train.fuse > 1:
        check_fusable(spec, data)
    check_backend(spec)
    return spec, data, note


def check_fusable(spec: Spec, data: Data) -> None:
    """Fused trials score their branches with the classification head only (softmax,
    sparse categorical cross-entropy, accuracy), over arrays in memory: anything else is
    refused rather than trained with the wrong loss."""
    from experiments.fused.scope import unfusable
    from experiments.streams import StreamedDataset
    from sweeps.errors import SpecError

    why = unfusable(str(spec.task), spec.train.loss, spec.train.metrics)
    if why is None and isinstance(data, StreamedDataset):
        why = f"a dataset that streams its batches ({data.name!r})"
    if why is not None:
        raise SpecError(
            f"train.fuse: {spec.train.fuse} trials at once need the classification task with its "
            f"default loss and metrics, on arrays in memory; this spec has {why} (use fuse: 1)"
        )


def preflight(
    spec: Spec,
    tracking_uri: str | None = None,
    storage: str | None = None,
    *,
    restart: bool = False,
    spec_label: str = "SPEC",
) -> str:
    """Everything a sweep checks before it writes: both stores usable, and (unless `restart`)
    the same search as the sweep of that name was started with. Returns the tracking URI.

    Raises:
        StoreError: a store that cannot be used (exit code 2).
        SpecChanged: a changed search (exit code 2), listing the changes.
    """
    from sweeps.running.memory import check_memory
    from sweeps.running.stores import check_stores
    from tracking.store import local_dir, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_stores(spec, uri, storage, local_dir(uri))
    if not restart:
        with _store_errors(uri, storage):
            check_memory(spec, uri, spec_label)
    return uri


@contextmanager
def _store_errors(uri: str, storage: str | None) -> Iterator[None]:
    """A store call that fails outside the trial loop (opening, reading the memory) becomes a
    one-line StoreError naming the store."""
    from sweeps.running.stores import failed_store
    from tracking.probe import redact, short_cause

    try:
        yield
    except SweepError:
        raise
    except Exception as exc:
        store = failed_store(exc)
        if store is None:
            raise
        label = (
            f"MLflow store {redact(uri)}"
            if store == "MLflow"
            else f"Optuna storage {redact(storage or 'journal')}"
        )
        raise StoreError(f"{label}: {short_cause(exc)}") from exc


class Sweep:
    """A sweep's stores, opened: the engine's study (created or resumed) and the MLflow parent run.

    Both stores are checked first (`preflight`), so a store that cannot be used, or a spec
    whose search changed, ends before anything is written. `restart` sets the old sweep of
    that name aside (kept whole, renamed NAME@TIME) and starts a new one.

    The process that opens it may train trials itself (`work`), leave that to worker
    processes, or both; the one that started the sweep closes it (`finish`).
    """

    def __init__(
        self,
        spec: Spec,
        tracking_uri: str | None = None,
        storage: str | None = None,
        *,
        restart: bool = False,
        checked: bool = False,
    ) -> None:
        from sweeps.engines.locks import SweepLock
        from sweeps.engines.registry import make_engine
        from sweeps.running.memory import restart_sweep
        from sweeps.running.views import sweep_view
        from tracking.probe import sweep_http_settings
        from tracking.runs import SweepTracker
        from tracking.store import local_dir, resolve_tracking_uri

        self.spec = spec
        self.storage = storage
        self.uri = (
            resolve_tracking_uri(tracking_uri)
            if checked
            else preflight(spec, tracking_uri, storage, restart=restart)
        )
        local = local_dir(self.uri)
        sweep_http_settings()
        lock = SweepLock(spec.name, storage, local)  # one parent run, however many workers start
        self.archived_as: str | None = None
        with _store_errors(self.uri, storage):
            if restart:
                with lock.hold():
                    self.archived_as = restart_sweep(spec, self.uri, storage, local)
            self.engine = make_engine(spec, storage, local)
            self.tracker = SweepTracker(self.uri, spec.name)
            with lock.hold():
                self.parent = self.tracker.open(spec_params(spec), spec.to_yaml(), sweep_view(spec))
            self.counted_at_open = self.engine.counted()
        self.trials_run = 0  # trials this process trained and reported
        self.notes: list[str] = []  # what workers said they recorded when they were stopped
        self.failed: str | None = None  # the store that failed mid-sweep: MLflow or Optuna

    def summarize(self) -> None:
        """Trial counts and the best so far, on the parent run."""
        from sweeps.running.trial import used_config

        best = self.engine.best()
        summary = (
            None
            if best is None
            else {
                "number": best.number,
                "value": best.value,
                "config": used_config(best.config),
                "run_id": best.run_id,
            }
        )
        self.tracker.summarize(self.engine.counts(), summary, self.spec.objective.metric)

    def progress(self, on_progress: OnProgress | None) -> None:
        if on_progress is not None:
            best = self.engine.best()
            on_progress(self.engine.counts(), self.engine.counted(), None if best is None else best.value)

    def work(self, data: Data, on_progress: OnProgress | None = None) -> str:
        """Train trials in this process until the budget is spent; returns why it stopped.

        Raises StoreError when MLflow or the Optuna storage fails mid-sweep; the MLflow
        writes still queued are then not tried (each would only retry and fail).
        """
        from sweeps.running.stores import failed_store
        from sweeps.running.trial import TrialRunner
        from sweeps.running.views import training_inputs
        from tracking.probe import short_cause

        self.tracker.use_inputs(training_inputs(self.spec, data))

        def after_trial(outcome: TrialOutcome | None) -> None:
            self.trials_run += 1
            self.summarize()
            self.progress(on_progress)

        try:
            return self.engine.optimize(TrialRunner(self.spec, data, self.tracker), after_trial)
        except SweepError:
            raise
        except Exception as exc:
            store = failed_store(exc)
            if store is None:
                raise
            self.failed, cause = store, short_cause(exc)
            if store == "MLflow":
                self.tracker.stop_writing(f"the MLflow store had failed: {cause}")
            raise StoreError(
                f"{self._store_label(store)} failed mid-sweep ({cause}); the sweep stopped"
            ) from exc
        finally:
            self.tracker.drain()

    def _store_label(self, store: str) -> str:
        from tracking.probe import redact

        if store == "MLflow":
            return f"the MLflow store {redact(self.uri)}"
        return f"the Optuna storage {redact(self.storage) if self.storage else 'journal (default)'}"

    def _attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """A closing step that must not hide the error that stopped the sweep: its failure is
        one more thing not recorded."""
        try:
            return fn()
        except Exception as exc:
            self.tracker.faults.add(what, exc)
            return None

    def finish(self, status: str, reason: str) -> SweepResult:
        """Close the sweep: best model (once), totals, parent run status; returns the result.

        After a store failed, only what can still be written is: nothing more to MLflow if it
        failed (the parent run stays RUNNING until the sweep is run again), no best trial if
        the study cannot be read.
        """
        import pandas as pd

        from sweeps.running.accounting import accounting
        from sweeps.running.trial import used_config
        from tracking.query import trials_frame

        mlflow_up, optuna_up = self.failed != "MLflow", self.failed != "Optuna"
        self.tracker.drain()  # every trial's run written and its engine told
        best = self._attempt("the best trial (from the study)", self.engine.best) if optuna_up else None
        if best is not None and status == "FINISHED":
            self._attempt(
                "the best model",
                lambda: self.tracker.log_best_model(best.run_id, best.number, pip_requirements()),
            )
        if optuna_up:
            self._attempt("the sweep's summary", self.summarize)
        self.tracker.drain()
        trials = pd.DataFrame()
        if mlflow_up:
            found = self._attempt(
                "the trials' totals", lambda: trials_frame(self.uri, self.spec.name, parent=self.parent)
            )
            trials = found if found is not None else trials
        totals = accounting(trials, self.spec.train.epochs)
        if mlflow_up:
            self.tracker.log_metrics(totals, step=len(trials))
            self._attempt("closing runs left open", lambda: self.tracker.close_open_trials("store_failed"))
        self._attempt(
            "the parent run's end status", lambda: self.tracker.close(status if mlflow_up else None)
        )
        if not mlflow_up:
            self.tracker.faults.items.append(
                f"the parent run's end status ({status}): it stays RUNNING until the sweep is run again"
            )
        counts = (self._attempt("the trial counts", self.engine.counts) if optuna_up else None) or {}
        self.result = SweepResult(
            name=self.spec.name,
            metric=str(self.spec.objective.metric),
            direction=str(self.spec.objective.direction),
            best_config=None if best is None else used_config(best.config),
            best_value=None if best is None else best.value,
            best_trial=None if best is None else best.number,
            best_run_id=None if best is None else best.run_id,
            counts=counts,
            stop_reason=reason,
            totals=totals,
            tracking_uri=self.uri,
            parent_run_id=self.parent,
            trials=trials,
            faults=self.tracker.faults.lines(),
            trials_run=self.trials_run,
            already_spent=self._already_spent(reason),
            interrupted=list(self.tracker.interrupted),
            archived_as=self.archived_as,
            failed_store=self.failed,
        )
        return self.result

    def _already_spent(self, reason: str) -> bool:
        """The budget was spent when the sweep was opened: nothing was trained, by anyone."""
        if reason != "budget" or self.trials_run or self.failed:
            return False
        return self._attempt("the trial counts", self.engine.counted) == self.counted_at_open

    def run(self, data: Data, on_progress: OnProgress | None = None) -> SweepResult:
        """Train until the budget is spent, then close the sweep, whatever stopped it.

        A store that failed mid-sweep raises StoreError after closing, its message extended
        by what was and was not recorded; an interrupt is raised again after closing.
        """
        try:
            reason = self.work(data, on_progress)
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            result = self.finish(
                "KILLED" if interrupted else "FAILED", "interrupted" if interrupted else "error"
            )
            if isinstance(exc, StoreError):
                raise StoreError(f"{exc}\n{records_note(result.counts, result.faults)}") from exc.__cause__
            raise
        return self.finish("FINISHED", reason)


def records_note(counts: Mapping[str, int], faults: list[str]) -> str:
    """What a stopped sweep left in its stores, as far as this process knows it: every line true."""
    lines = []
    if counts:
        listed = ", ".join(f"{n} {state}" for state, n in counts.items())
        lines.append(f"  recorded: the study holds {listed} trials")
    else:
        lines.append("  recorded: unknown (the study could not be read)")
    lines += [f"  not recorded: {fault}" for fault in faults]
    lines.append(
        "run the same command again once the store answers: counted trials are not run again, "
        "and runs left open are closed"
    )
    return "\n".join(lines)


def run_sweep(
    spec: Spec,
    *,
    tracking_uri: str | None = None,
    storage: str | None = None,
    on_progress: OnProgress | None = None,
    data: Data | None = None,
    restart: bool = False,
) -> SweepResult:
    """Run (or continue) a sweep in this process and return its best config.

    `on_progress(counts, counted, best_value)` is called after every trial. `data`: already
    loaded by `prepare` (with `spec` the spec it returned); else they are loaded here.
    `restart` starts the sweep again from scratch, keeping the old one (see `Sweep`).
    """
    if data is None:
        spec, data, _ = prepare(spec)  # before any store is touched: missing data records nothing
    return Sweep(spec, tracking_uri, storage, restart=restart).run(data, on_progress)


def run(
    spec: str | Path | Mapping[str, Any] | Spec = "quickstart",
    *,
    trials: int | None = None,
    tracking_uri: str | None = None,
    storage: str | None = None,
    restart: bool = False,
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
    return run_sweep(spec, tracking_uri=tracking_uri, storage=storage, restart=restart)
