"""One trial, whichever engine proposed it: a config in, a trained and recorded result out."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from experiments.training import TrainConfig, TrialResult, train
from sweeps.errors import SweepError
from sweeps.space import TRAIN_PARAMS, describe

if TYPE_CHECKING:
    from experiments.data import Dataset
    from sweeps.spec import Spec
    from tracking.runs import SweepTracker


class TrialFailed(SweepError):
    """A trial that could not give a value; it is recorded and the sweep goes on."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    config: dict[str, Any]
    state: str  # complete | pruned
    value: float
    result: TrialResult
    run_id: str


def train_config(spec: Spec, config: Mapping[str, Any], checkpoint_path: str | None) -> TrainConfig:
    """The plain training job for one config: spec defaults, overridden by the config."""
    model_options = {**spec.model.options(), **{k: v for k, v in config.items() if k not in TRAIN_PARAMS}}
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
        objective=spec.objective.metric,
        seed=spec.train.seed,
        model_options=model_options,
        checkpoint_path=checkpoint_path,
        mixed_precision=spec.train.mixed_precision,
        jit_compile=spec.train.jit_compile,
        verbose=spec.train.verbose,
    )


def trial_params(spec: Spec) -> dict[str, Any]:
    """Context logged with every trial's config, so runs compare across sweeps and engines."""
    return {
        "engine": spec.engine.name,
        "sampler": spec.engine.sampler,
        "seed": spec.train.seed,
        "dataset": spec.dataset.name,
        "model": spec.model.name,
        "epochs": spec.train.epochs,
        "batch_size": spec.train.batch_size,
        "monitor": spec.monitor,
        "objective": spec.objective.metric,
    }


def run_name(number: int, config: Mapping[str, Any]) -> str:
    return f"trial-{number:03d} {describe(config)}"


@dataclass
class TrialRunner:
    """Trains configs of one sweep on data loaded once, recording each as a nested run."""

    spec: Spec
    data: Dataset
    tracker: SweepTracker
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    extra_tags: Mapping[str, str] = field(default_factory=dict)

    def __call__(
        self,
        number: int,
        config: Mapping[str, Any],
        callbacks: Sequence[Any] = (),
    ) -> TrialOutcome:
        """Train and record one config.

        Raises TrialFailed (already recorded) when training raises or the loss is NaN.
        """
        started = time.perf_counter()
        recorder = self.tracker.trial(
            number,
            config,
            {**trial_params(self.spec), **self.extra_params},
            run_name(number, config),
            extra_tags={"sweeplab.engine": self.spec.engine.name, **self.extra_tags},
        )
        objective = self.spec.objective.metric
        try:
            job = train_config(self.spec, config, recorder.checkpoint_path)
            result = train(job, self.data, [recorder.callback(), *callbacks])
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            recorder.fail("exception", error, {"trial_seconds": time.perf_counter() - started})
            raise TrialFailed("exception", error) from exc
        except KeyboardInterrupt:
            recorder.fail("interrupted", "interrupted by the user", state="interrupted")
            raise
        seconds = {"trial_seconds": time.perf_counter() - started}
        if result.stop_reason == "nan_loss" or not math.isfinite(result.best_value):
            message = f"loss became NaN or infinite at epoch {result.epochs_run or 1}"
            recorder.finish(result, objective, seconds, state="failed", reason="nan_loss", error=message)
            raise TrialFailed("nan_loss", message)
        recorder.finish(result, objective, seconds, title=run_name(number, config))
        return TrialOutcome(number, dict(config), "complete", result.best_value, result, recorder.run_id)
