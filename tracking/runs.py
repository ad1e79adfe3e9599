"""A sweep's MLflow runs: one parent run per sweep, one nested run per trial.

The layout (tags in `tracking.tags`) is what reports, `sweep list` and the MLflow UI read
back, whichever engine ran the trials.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import DatasetInput, Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from tracking import tags
from tracking.artifacts import write_curves_png, write_history_csv
from tracking.dashboard import SweepView, present
from tracking.datasets import log_inputs
from tracking.notes import SweepNotes, trial_note
from tracking.provenance import provenance_tags
from tracking.store import artifact_location

log = logging.getLogger(__name__)


_RUN_ID = re.compile(r"\brun ([0-9a-f]{32})\b")


@dataclass
class Faults:
    """Queued writes that failed; the sweep goes on and says at the end what was not recorded."""

    items: list[str] = field(default_factory=list)

    def add(self, what: str, exc: BaseException) -> None:
        """Keep a failed write; the first is also logged as it happens (the rest would only
        repeat it while a store is down: they are listed at the end)."""
        from tracking.probe import short_cause

        message = f"{what}: {type(exc).__name__}: {short_cause(exc)}"
        if self.items:
            log.debug("not recorded: %s", message)
        else:
            log.warning("not recorded: %s (what else is not recorded is listed at the end)", message)
        self.items.append(message)

    def skip(self, what: str, reason: str) -> None:
        """A write not even tried (the store had failed)."""
        self.items.append(f"{what}: not tried ({reason})")

    def lines(self) -> list[str]:
        """The faults for a person: the writes of one run as one line, repeats counted."""
        by_run: dict[str, list[str]] = {}
        other: dict[str, int] = {}
        for item in self.items:
            found = _RUN_ID.search(item)
            if found:
                by_run.setdefault(found.group(1), []).append(item)
            else:
                other[item] = other.get(item, 0) + 1
        lines = [item if n == 1 else f"{item} (x{n})" for item, n in other.items()]
        for run_id, items in by_run.items():
            if len(items) == 1:
                lines.append(items[0])
                continue
            kinds = []
            for item in items:
                what = _RUN_ID.sub("run", item.split(": ", 1)[0])
                kind = re.sub(r"^(trial )?run (epoch \d+ )?", "", what) or "write"
                kind = "epoch metrics" if re.match(r"^(trial )?run epoch \d+", what) else kind
                if kind not in kinds:
                    kinds.append(kind)
            lines.append(f"run {run_id}: {len(items)} writes ({', '.join(kinds)}); first: {items[0]}")
        return lines


# A trial's state -> the MLflow run status it ends with (pruned and complete: FINISHED).
RUN_STATUS = {"failed": "FAILED", "interrupted": "KILLED"}
# Why a trial run was closed by a later process (`SweepTracker.abandon`), as its error tag says.
ABANDONED = {
    "worker_lost": "the worker running this trial died before it finished",
    "not_recorded": "the tracking store failed while this trial's results were written; "
    "the study does not count it",
    "store_failed": "a store failed before this trial finished, and the sweep stopped",
}


# MLflow's limit on the metrics of one log_batch call.
MAX_METRICS_PER_BATCH = 1000


class _Pile:
    """Writes that wait for the writer thread: the first one queued after a `take` asks for a
    flush; those added before the flush runs go with it."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self._queued = False

    def add(self, item: Any) -> bool:
        """Keep `item`; True when the caller must queue a flush (none is waiting)."""
        with self._lock:
            self._items.append(item)
            queued, self._queued = self._queued, True
        return not queued

    def take(self) -> list[Any]:
        """Everything added so far; the next `add` asks for a new flush."""
        with self._lock:
            items, self._items, self._queued = self._items, [], False
        return items


def _yield_to_training() -> None:
    """Lower the writer thread's scheduling priority (Linux: per thread), so plotting and
    uploads fill the gaps of the training threads instead of competing with them."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: only a little slower
        pass


def _now() -> int:
    return int(time.time() * 1000)


def _param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


class SweepTracker:
    """Owns the sweep's experiment and parent run; finds and resumes them on a second run."""

    def __init__(self, tracking_uri: str, sweep: str) -> None:
        self.tracking_uri = tracking_uri
        self.sweep = sweep
        self.client = MlflowClient(tracking_uri)
        self.faults = Faults()
        self.experiment_id = self._experiment()
        self.run_id: str | None = None
        # One writer thread, so writes keep their order while training goes on: a trial's
        # plot and uploads overlap the next trial's fit instead of adding to it.
        self._writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sweeplab-tracking", initializer=_yield_to_training
        )
        self._pending: list[Future[None]] = []
        self._pending_lock = threading.Lock()  # trials' system-metrics samplers submit too
        self._samplers: set[Any] = set()  # system-metrics samplers of trials still open
        self._stopped: str | None = None  # why queued MLflow writes are no longer tried
        self.interrupted: list[int] = []  # trials whose runs were closed as interrupted
        self._open: dict[str, TrialRecorder] = {}  # trial runs opened by this tracker
        self.notes: SweepNotes | None = None  # the parent run's description, kept current
        self.inputs: list[DatasetInput] = []  # the data every trial run logs as its inputs
        self._epochs = _Pile()  # (run id, epoch metrics) not yet written
        self._summaries = _Pile()  # (metrics, tags, counts, best) of the parent, not yet written

    def stop_writing(self, reason: str) -> None:
        """The store failed: skip the MLflow writes still queued (each would retry and fail)."""
        self._stopped = reason

    def submit(self, what: str, fn: Callable[..., Any], *args: Any, to_mlflow: bool = True) -> None:
        """Queue a write on the writer thread; a failure is kept in `faults`, never raised.

        Once `stop_writing` was called (the store failed), MLflow writes still queued are not
        tried, only listed as not recorded; other queued work (`to_mlflow=False`) still runs.
        """
        with self._pending_lock:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._writer.submit(self._write, what, fn, *args, to_mlflow=to_mlflow))

    def _write(self, what: str, fn: Callable[..., Any], *args: Any, to_mlflow: bool = True) -> None:
        """One write, run on the writer thread: an MLflow write is skipped once the store
        failed; a failure is kept in `faults`."""
        if to_mlflow and self._stopped is not None:
            self.faults.skip(what, self._stopped)
            return
        try:
            fn(*args)
        except Exception as exc:
            self.faults.add(what, exc)

    def stream(self, run_id: str, metrics: list[Metric]) -> None:
        """Queue a trial's metrics of one epoch. Epochs that queue up while the writer is busy
        (the K trials of a pack, a trial's plot) go to each run as one write, in step order and
        before any later write of that run: one store round trip where there were several."""
        if self._epochs.add((run_id, metrics)):
            self.submit("epoch metrics", self._write_epochs, to_mlflow=False)

    def _write_epochs(self) -> None:
        batches: dict[str, list[Metric]] = {}
        for run_id, metrics in self._epochs.take():
            batches.setdefault(run_id, []).extend(metrics)
        for run_id, metrics in batches.items():
            steps = sorted({m.step for m in metrics})
            span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
            self._write(f"run {run_id} epoch {span} metrics", self._log_batches, run_id, metrics)

    def _log_batches(self, run_id: str, metrics: list[Metric], run_tags: list[RunTag] | None = None) -> None:
        """`log_batch` in as many calls as MLflow's limit on metrics per call needs."""
        for start in range(0, max(len(metrics), 1), MAX_METRICS_PER_BATCH):
            batch = metrics[start : start + MAX_METRICS_PER_BATCH]
            self.client.log_batch(run_id, batch, (), (run_tags or []) if start == 0 else ())

    @property
    def busy(self) -> bool:
        """Whether a queued write has not finished yet."""
        with self._pending_lock:
            return any(not f.done() for f in self._pending)

    def drain(self) -> None:
        """Wait until every queued write is in the store."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.sweep)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            return found.experiment_id
        location = artifact_location(self.tracking_uri, self.sweep)
        return self.client.create_experiment(self.sweep, artifact_location=location)

    def find_parent(self, engine: str | None = None) -> str | None:
        """The sweep's parent run; with `engine`, the one that engine opened (the same spec run
        on Optuna and on KerasTuner shares the experiment, each engine with its own parent)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{tags.ROLE}` = '{tags.ROLE_SWEEP}'",
            order_by=["attributes.start_time ASC"],
        )
        for run in runs:
            if engine is None or run.data.tags.get(tags.ENGINE, run.data.params.get("engine.name")) == engine:
                return run.info.run_id
        return None

    def open(self, params: Mapping[str, Any], spec_yaml: str, view: SweepView | None = None) -> str:
        """Resume the sweep's parent run if there is one, else create it with the spec.

        With `view`, the experiment opens in the UI on the sweep's trials (`tracking.dashboard`)
        and the parent run's description is the sweep's summary (`tracking.notes`).
        """
        engine = params.get("engine.name")
        run_id = self.find_parent(engine)
        if run_id is None:
            engine_tag = {tags.ENGINE: str(engine)} if engine else {}
            run = self.client.create_run(
                self.experiment_id,
                run_name=self.sweep,
                tags={tags.ROLE: tags.ROLE_SWEEP, tags.SWEEP: self.sweep, **engine_tag, **provenance_tags()},
            )
            run_id = run.info.run_id
            self.client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "spec.yaml"
            path.write_text(spec_yaml)
            self.client.log_artifact(run_id, str(path))
        if view is not None:
            present(self.client, self.experiment_id, view)
            budget = params.get("budget.trials")
            self.notes = SweepNotes(self.client, self.experiment_id, run_id, view, budget)
        return run_id

    def use_inputs(self, inputs: list[DatasetInput]) -> None:
        """The datasets (built once, `tracking.datasets`) that each trial run logs as its inputs."""
        self.inputs = list(inputs)

    def trial(
        self,
        number: int,
        config: Mapping[str, Any],
        params: Mapping[str, Any],
        run_name: str,
        extra_tags: Mapping[str, str] | None = None,
    ) -> TrialRecorder:
        """Open the nested run of one trial, with its config and context as params."""
        assert self.run_id is not None, "open() the sweep first"
        run_tags = {
            tags.PARENT: self.run_id,
            tags.ROLE: tags.ROLE_TRIAL,
            tags.SWEEP: self.sweep,
            tags.TRIAL: str(number),
            tags.STATE: "running",
            tags.CONFIG: json.dumps(dict(config)),
            **(extra_tags or {}),
        }
        try:
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=run_tags)
        except Exception as exc:
            from tracking.probe import short_cause

            self.faults.items.append(f"trial {number}: its run could not be created ({short_cause(exc)})")
            raise
        run_id = run.info.run_id
        all_params = [Param(k, _param_value(v)) for k, v in {**params, **config}.items()]
        self.submit(f"trial run {run_id} params", self.client.log_batch, run_id, (), all_params)
        if self.inputs:
            self.submit(f"trial run {run_id} datasets", log_inputs, self.client, run_id, self.inputs)
        recorder = TrialRecorder(self, run_id, number, config)
        self._open[run_id] = recorder
        recorder.start_system_metrics()
        return recorder

    def summarize(
        self,
        counts: Mapping[str, int],
        best: Mapping[str, Any] | None,
        metric: str,
        extra: Mapping[str, float] | None = None,
    ) -> None:
        """Counts and the best trial so far on the parent run (metrics step = trials done)."""
        if self.run_id is None:
            return
        done = sum(counts.values())
        now = _now()
        metrics = [Metric(f"trials_{state}", float(n), now, done) for state, n in counts.items()]
        metrics.append(Metric("trials_total", float(done), now, done))
        metrics += [Metric(k, float(v), now, done) for k, v in (extra or {}).items()]
        run_tags: list[RunTag] = []
        if best is not None:
            metrics.append(Metric(f"best_{metric}", float(best["value"]), now, done))
            run_tags += [
                RunTag(tags.BEST_TRIAL, str(best["number"])),
                RunTag(tags.BEST_CONFIG, json.dumps(best["config"])),
            ]
            run_tags += [RunTag(f"best.{k}", _param_value(v)) for k, v in best["config"].items()]
        item = (metrics, run_tags, dict(counts), None if best is None else dict(best))
        if self._summaries.add(item):
            self.submit("sweep summary", self._write_summaries, to_mlflow=False)

    def _write_summaries(self) -> None:
        """The summaries queued since the last write: every point of the parent's metrics in one
        write, the latest tags, and the description rewritten once (trials that end together,
        as a pack's do, cost one round of queries, not one each)."""
        queued = self._summaries.take()
        if not queued:
            return
        *_, run_tags, counts, best = queued[-1]
        metrics = [m for q in queued for m in q[0]]
        self._write("sweep summary", self._log_batches, self.run_id, metrics, run_tags)
        if self.notes is not None:
            self._write("sweep description", self.notes.update, counts, best)

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        """Metrics on the parent run (queued like every other write)."""
        now = _now()
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        self.submit("sweep totals", self.client.log_batch, self.run_id, metrics)

    def log_best_model(self, trial_run_id: str, number: int, pip_requirements: list[str]) -> bool:
        """Log the best trial's checkpoint once, as a logged model of the trial's run that the
        parent run lists too (`tracking.best_model`). Returns False when it is already there."""
        assert self.run_id is not None
        self.drain()
        run = self.client.get_run(self.run_id)
        if run.data.tags.get(tags.BEST_MODEL_TRIAL) == str(number):
            return False
        from tracking.best_model import log_best_model

        log_best_model(self.client, self.tracking_uri, self.run_id, trial_run_id, number, pip_requirements)
        self.client.set_tag(self.run_id, tags.BEST_MODEL_TRIAL, str(number))
        return True

    def abandon(self, run_id: str, reason: str) -> None:
        """A trial run its study holds as failed but MLflow as unfinished: KILLED, with the
        reason as tags. `worker_lost`: the worker died mid-trial (the run is still RUNNING);
        `not_recorded`: the store failed while the run's results were written."""
        try:
            run = self.client.get_run(run_id)
            if run.info.status != "RUNNING" and run.data.tags.get(tags.STATE) != "running":
                return
            run_tags = [
                RunTag(tags.STATE, "failed"),
                RunTag(tags.REASON, reason),
                RunTag(tags.ERROR, ABANDONED.get(reason, reason)),
            ]
            self.client.log_batch(run_id, tags=run_tags)
            self.client.set_terminated(run_id, status="KILLED")
        except Exception as exc:
            self.faults.add(f"closing abandoned trial run {run_id}", exc)

    def close_open_trials(self, reason: str) -> list[int]:
        """Close the trial runs this tracker opened and never ended (an error outside training
        stopped the sweep) as KILLED; returns their trial numbers."""
        left = [r for r in self._open.values() if not r.written]
        for recorder in left:
            recorder._stop_system_metrics()
        self.drain()
        for recorder in left:
            self.abandon(recorder.run_id, reason)
        self._open.clear()
        return [recorder.number for recorder in left]

    def close(self, status: str | None = "FINISHED") -> None:
        """Finish the queued writes, then the parent run (None: leave its status as it is,
        when the store cannot be written)."""
        for sampler in list(self._samplers):  # a trial left open by an error outside training
            sampler.stop()
        self.drain()
        self._writer.shutdown()
        if self.notes is not None and status is not None:
            try:
                self.notes.finish(status)
            except Exception as exc:
                self.faults.add("sweep description", exc)
        if self.run_id is not None and status is not None:
            self.client.set_terminated(self.run_id, status=status)


class TrialRecorder:
    """One trial's nested run: per-epoch metrics while it trains, summary and files at the end."""

    def __init__(
        self, tracker: SweepTracker, run_id: str, number: int = -1, config: Mapping[str, Any] | None = None
    ) -> None:
        self.tracker = tracker
        self.client = tracker.client
        self.run_id = run_id
        self.number = number
        self.config = dict(config or {})
        self.written = False  # the run's results and end status are in the store
        self.workdir = Path(tempfile.mkdtemp(prefix="sweeplab-trial-"))
        self.checkpoint_path = str(self.workdir / "checkpoint" / "best.keras")
        (self.workdir / "checkpoint").mkdir()
        self._system: Any = None
        self._objective: str | None = None  # the metric curves.png draws beside the loss

    def start_system_metrics(self) -> None:
        """Sample CPU, host memory and GPU use on a side thread while the trial trains."""
        from tracking import system_metrics

        if not system_metrics.enabled():
            return
        interval, log_every = system_metrics.settings()
        self._system = system_metrics.SystemMetricsSampler(
            self._publish_system_metrics, interval=interval, log_every=log_every
        )
        self._system.start()
        self.tracker._samplers.add(self._system)

    def _publish_system_metrics(self, values: Mapping[str, float], step: int) -> None:
        now = _now()
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()]
        what = f"trial run {self.run_id} system metrics"
        self.tracker.submit(what, self.client.log_batch, self.run_id, metrics)

    def _stop_system_metrics(self) -> None:
        """Queue the last system metrics, so that they land before the run's end status."""
        if self._system is not None:
            self._system.stop()
            self.tracker._samplers.discard(self._system)
            self._system = None

    def callback(self) -> Any:
        """The Keras callback that logs each epoch's metrics to this run."""
        from tracking.callbacks import EpochLogger

        return EpochLogger(self.tracker, self.run_id)

    def finish(
        self,
        result: Any,
        objective: str,
        extra_metrics: Mapping[str, float] | None = None,
        *,
        state: str = "complete",
        reason: str | None = None,
        error: str | None = None,
        title: str = "",
    ) -> None:
        """Queue the summary metrics, history.csv, curves.png, the checkpoint and the status."""
        self._stop_system_metrics()
        self._objective = objective
        metrics = {
            f"best_{objective}": result.best_value,
            "best_epoch": result.best_epoch,
            "stopped_epoch": result.stopped_epoch,
            "epochs_run": result.epochs_run,
            "train_seconds": result.train_seconds,
            **(extra_metrics or {}),
        }
        note = trial_note(
            self.config, state, objective, result.best_value, result.best_epoch, result.epochs_run, reason
        )
        self.tracker.submit(
            f"trial run {self.run_id} results",
            self._write,
            result,
            metrics,
            state,
            reason,
            error,
            title,
            note,
        )

    def fail(
        self,
        reason: str,
        error: str,
        metrics: Mapping[str, float] | None = None,
        state: str = "failed",
    ) -> None:
        """Queue the end of a trial that gave no result (failed, or interrupted: KILLED)."""
        self._stop_system_metrics()
        self.tracker.submit(
            f"trial run {self.run_id} {state}",
            self._write,
            None,
            dict(metrics or {}),
            state,
            reason,
            error,
            "",
            trial_note(self.config, state, reason=reason),
        )

    def _write(
        self,
        result: Any,
        metrics: Mapping[str, float],
        state: str,
        reason: str | None,
        error: str | None,
        title: str,
        note: str,
    ) -> None:
        """On the writer thread: files, then metrics and tags (the one-line description among
        them), then the run's status."""
        try:
            if result is not None:
                write_history_csv(self.workdir / "history.csv", result.epochs, result.history)
                if result.epochs:
                    write_curves_png(
                        self.workdir / "curves.png",
                        result.epochs,
                        result.history,
                        result.best_epoch,
                        title,
                        metric=self._objective,
                    )
            if not Path(self.checkpoint_path).exists():
                shutil.rmtree(self.workdir / "checkpoint", ignore_errors=True)
            now = _now()
            run_tags = [RunTag(tags.STATE, state), RunTag(MLFLOW_RUN_NOTE, note)]
            if reason:
                run_tags.append(RunTag(tags.REASON, reason))
            if error:
                run_tags.append(RunTag(tags.ERROR, error[:4900]))
            values = [
                Metric(k, float(v), now, 0)
                for k, v in metrics.items()
                if v is not None and not (isinstance(v, float) and math.isnan(v))
            ]
            try:
                self.client.log_batch(self.run_id, metrics=values, tags=run_tags)
                if any(self.workdir.iterdir()):
                    self.client.log_artifacts(self.run_id, str(self.workdir))
            finally:
                self.client.set_terminated(self.run_id, status=RUN_STATUS.get(state, "FINISHED"))
            self.written = True
            self.tracker._open.pop(self.run_id, None)
            if state == "interrupted":
                self.tracker.interrupted.append(self.number)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
