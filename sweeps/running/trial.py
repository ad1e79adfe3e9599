"""One trial, whichever engine proposed it: a config in, a trained and recorded result out."""

from __future__ import annotations

import gc
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.backends import backend_name, failure_reason
from experiments.tasks import TASK_INFO
from experiments.training import TrainConfig, TrialResult, train
from sweeps.errors import TrialFailed
from sweeps.spec.space import DEFAULT, TRAIN_PARAMS, describe

if TYPE_CHECKING:
    from experiments.data import Data
    from sweeps.engines.base import OnPackTrialEnd, PackTrial
    from sweeps.spec.schema import Spec
    from tracking.runs import SweepTracker


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    config: dict[str, Any]
    state: str  # complete | pruned
    value: float
    result: TrialResult
    run_id: str
    # Whether the run's results reached MLflow (known once the writes queued for it are done).
    recorded: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)


def used_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as the trial uses and logs it: `learning_rate: default` becomes the optimizer's
    own Keras default, with `learning_rate_default: true` beside it."""
    out = dict(config)
    if out.get("learning_rate") == DEFAULT:
        from experiments.optimizers import default_learning_rate

        out["learning_rate"] = default_learning_rate(str(out["optimizer"]))
        out["learning_rate_default"] = True
    return out


def train_config(spec: Spec, config: Mapping[str, Any], checkpoint_path: str | None) -> TrainConfig:
    """The plain training job for one config: spec defaults, overridden by the config."""
    config = used_config(config)
    skip = {*TRAIN_PARAMS, "learning_rate_default"}
    model_options = {**spec.model.options(), **{k: v for k, v in config.items() if k not in skip}}
    metrics = spec.train.metrics
    return TrainConfig(
        model=spec.model.name,
        optimizer=str(config["optimizer"]),
        learning_rate=float(config["learning_rate"]),
        dropout=float(config.get("dropout", 0.0)),
        patience=int(config["patience"]),
        momentum=None if config.get("momentum") is None else float(config["momentum"]),
        epochs=spec.train.epochs,
        batch_size=int(config.get("batch_size", spec.train.batch_size)),
        monitor=spec.monitor,
        monitor_mode="max" if spec.monitor_direction == "maximize" else "min",
        objective=spec.objective.metric,
        task=str(spec.task),
        loss=spec.train.loss,
        metrics=None if metrics is None else tuple(metrics),
        seed=spec.train.seed,
        model_options=model_options,
        checkpoint_path=checkpoint_path,
        mixed_precision=spec.train.mixed_precision,
        jit_compile=spec.train.jit_compile,
        steps_per_execution=spec.train.steps_per_execution,
        verbose=spec.train.verbose,
    )


def trial_params(spec: Spec) -> dict[str, Any]:
    """Context logged with every trial's config, so runs compare across sweeps and engines."""
    task = TASK_INFO[str(spec.task)]
    return {
        "engine": spec.engine.name,
        "sampler": spec.engine.sampler,
        "seed": spec.train.seed,
        "dataset": spec.dataset.name,
        "model": spec.model.name,
        "task": task.name,
        "loss": spec.train.loss or task.loss,
        "metrics": list(spec.train.metrics if spec.train.metrics is not None else task.metrics),
        "epochs": spec.train.epochs,
        "batch_size": spec.train.batch_size,
        "monitor": spec.monitor,
        "objective": spec.objective.metric,
        "backend": backend_name(),
        "mixed_precision": spec.train.mixed_precision,
        "jit_compile": spec.train.jit_compile,
        "steps_per_execution": spec.train.steps_per_execution,
        "fuse": spec.train.fuse,
    }


def run_name(number: int, config: Mapping[str, Any]) -> str:
    return f"trial-{number:03d} {describe(config)}"


@dataclass
class TrialRunner:
    """Trains configs of one sweep on data loaded once, recording each as a nested run."""

    spec: Spec
    data: Data
    tracker: SweepTracker

    def __post_init__(self) -> None:
        if self.spec.task is None:  # settled by `runner.prepare`, else here from the data's
            self.spec = self.spec.for_task(self.data.task)

    def __call__(
        self,
        number: int,
        config: Mapping[str, Any],
        callbacks: Sequence[Any] = (),
        pruning: Any = None,
        *,
        epochs: int | None = None,
        initial_epoch: int = 0,
        initial_weights: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        keep_checkpoint: str | None = None,
        on_run: Callable[[str], None] | None = None,
    ) -> TrialOutcome:
        """Train and record one config.

        `pruning` is a callback with a `pruned` flag and `pruned_epoch` (it is also among
        `callbacks`); a trial it stopped is recorded as pruned. `epochs`, `initial_epoch` and
        `initial_weights` let an engine continue a trial in rounds (KerasTuner's Hyperband);
        `params` and `tags` are the engine's own, logged with the run. `keep_checkpoint`: a path
        the best checkpoint is copied to for the engine (the run's own copy is uploaded and then
        removed on the tracker's writer thread). `on_run(run_id)` hears the MLflow run id
        before training starts, so a worker that dies mid-trial leaves it findable.

        Raises TrialFailed (already recorded) when training raises or the loss is NaN.
        """
        started = time.perf_counter()
        config = used_config(config)
        recorder = self.open_run(number, config, params, tags)
        if on_run is not None:
            on_run(recorder.run_id)
        try:
            job = replace(
                self.job(config, recorder.checkpoint_path),
                epochs=epochs or self.spec.train.epochs,
                initial_epoch=initial_epoch,
                initial_weights=initial_weights,
            )
            result = train(job, self.data, [recorder.callback(), *callbacks])
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            reason = failure_reason(exc)  # out_of_memory or exception
            recorder.fail(reason, error, {"trial_seconds": time.perf_counter() - started})
            gc.collect()  # free what the failed trial held (e.g. after running out of memory)
            raise TrialFailed(reason, error) from exc
        except KeyboardInterrupt:
            recorder.fail("interrupted", "interrupted by the user", state="interrupted")
            raise
        if keep_checkpoint and result.checkpoint_path:
            Path(keep_checkpoint).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.checkpoint_path, keep_checkpoint)
        return self.record(recorder, number, config, result, pruning, started)

    def open_run(
        self,
        number: int,
        config: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Any:
        """The nested MLflow run of one trial (a `tracking.runs.TrialRecorder`)."""
        return self.tracker.trial(
            number,
            config,
            {**trial_params(self.spec), **(params or {})},
            run_name(number, config),
            extra_tags={"sweeplab.engine": self.spec.engine.name, **(tags or {})},
        )

    def job(self, config: Mapping[str, Any], checkpoint_path: str | None) -> TrainConfig:
        return train_config(self.spec, config, checkpoint_path)

    def record(
        self,
        recorder: Any,
        number: int,
        config: Mapping[str, Any],
        result: TrialResult,
        pruning: Any,
        started: float,
    ) -> TrialOutcome:
        """Record a trained trial's result on its run (queued); raises TrialFailed for a NaN loss."""
        objective = self.spec.objective.metric
        metrics = {"trial_seconds": time.perf_counter() - started}
        if result.stop_reason == "nan_loss" or not math.isfinite(result.best_value):
            message = f"loss became NaN or infinite at epoch {result.epochs[-1] if result.epochs else 1}"
            recorder.finish(result, objective, metrics, state="failed", reason="nan_loss", error=message)
            raise TrialFailed("nan_loss", message)
        state = "complete"
        if pruning is not None and pruning.pruned:
            state = "pruned"
            metrics["pruned_epoch"] = pruning.pruned_epoch
        recorder.finish(result, objective, metrics, state=state, title=run_name(number, config))
        return TrialOutcome(
            number, dict(config), state, result.best_value, result, recorder.run_id, lambda: recorder.written
        )

    def pack(self, trials: Sequence[PackTrial], on_end: OnPackTrialEnd) -> None:
        """Train and record several trials together (`train.fuse`); see `sweeps.running.packs`."""
        from sweeps.running.packs import run_pack

        run_pack(self, [replace(t, config=used_config(t.config)) for t in trials], on_end)

    def after_recorded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` once everything queued for the trial runs so far is in MLflow (or
        failed to get there: `TrialOutcome.recorded` says which)."""
        self.tracker.submit(f"after recording: {getattr(fn, '__name__', fn)}", fn, *args, to_mlflow=False)

    def recording(self) -> bool:
        """Whether writes (runs, and the engine's tells behind them) are still queued."""
        return self.tracker.busy

    def wait_recorded(self) -> None:
        """Return once every queued write (runs, and the engine's tells behind them) is done."""
        self.tracker.drain()

    def abandon(self, run_id: str, reason: str) -> None:
        """Close the run of a trial whose worker died (found stale by the engine)."""
        self.tracker.abandon(run_id, reason)
