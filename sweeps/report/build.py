"""A sweep's report, built from what MLflow holds alone: any sweep in the store, finished or
still running, from any machine, whichever engine ran it.

Only complete trials are ranked; a pruned trial's value is its best before it was stopped and
a running one has none yet, so both are listed, never compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.errors import ReportError
from sweeps.report.expected import expected_best
from sweeps.report.importance import branch_importances, param_importances
from sweeps.spec.schema import Spec, parse_spec

if TYPE_CHECKING:
    from tracking.query import StoredSweep

SUMMARY = ("best_epoch", "stopped_epoch", "epochs_run", "train_seconds", "trial_seconds")


@dataclass
class Report:
    """Everything the renderers and the retrain step need, computed once."""

    sweep: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    status: str  # the parent run's: RUNNING while the sweep goes on
    spec: Spec
    trials: pd.DataFrame  # one row per trial, any state; config keys as columns
    ranked: pd.DataFrame  # complete trials, best first
    top: int
    optimizers: pd.DataFrame
    importances: dict[str, float]
    branch_importances: dict[str, dict[str, float]]  # "optimizer=adam" -> importances within it
    expected: pd.DataFrame  # n, mean, std
    curve_metric: str
    curves: dict[str, list[tuple[int, float]]]  # run id -> (epoch, value), best trial per optimizer
    provenance: dict[str, Any]
    generated: str
    retrain: dict[str, Any] | None  # the best trial's latest retrain, if it had one

    @property
    def metric(self) -> str:
        return str(self.spec.objective.metric)

    @property
    def maximize(self) -> bool:
        return self.spec.objective.direction == "maximize"

    @property
    def params(self) -> list[str]:
        """The searched parameters, the optimizer first, as configs are drawn."""
        searched = sorted(self.spec.space.searched, key=lambda name: name != "optimizer")
        return [name for name in searched if name in self.trials.columns]

    @property
    def best(self) -> pd.Series | None:
        return None if self.ranked.empty else self.ranked.iloc[0]

    def best_config(self) -> dict[str, Any]:
        """The best trial's config exactly as it ran (types kept from the run's config tag)."""
        best = self.best
        if best is None:
            return {}
        return plain(dict(best["config"]))

    def counts(self) -> dict[str, int]:
        """Trials by state; complete, pruned, failed and running always present."""
        found = self.trials["state"].value_counts().to_dict() if not self.trials.empty else {}
        base = {state: 0 for state in ("complete", "pruned", "failed", "running")}
        return {**base, **{str(k): int(v) for k, v in found.items()}}


def plain(value: Any) -> Any:
    """JSON- and YAML-safe: numpy scalars to Python ones, NaN and pandas' missing values to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def numeric_summaries(frame: pd.DataFrame) -> pd.DataFrame:
    """The stored trials with value and summaries as numbers (NaN where a trial has none yet)."""
    if frame.empty:
        return pd.DataFrame(
            columns=["trial", "run_id", "state", "value", "config", "reason", "error", *SUMMARY]
        )
    frame = frame.copy()
    for column in ("value", *SUMMARY):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def rank(trials: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Complete trials with a finite value, best first; ties go to the earlier trial, as Optuna's."""
    done = trials[(trials["state"] == "complete") & trials["value"].notna()]
    ordered = done.assign(_key=-done["value"] if maximize else done["value"])
    return ordered.sort_values(["_key", "trial"], kind="stable").drop(columns="_key").reset_index(drop=True)


def optimizer_table(ranked: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Per optimizer over complete trials: how many, the best, the median, epochs to the best."""
    columns = ["optimizer", "trials", "best", "median", "mean_best_epoch", "best_trial", "best_run_id"]
    if ranked.empty or "optimizer" not in ranked:
        return pd.DataFrame(columns=columns)
    rows = []
    for optimizer, group in ranked.groupby("optimizer", sort=False):  # ranked: the group's first is best
        rows.append(
            {
                "optimizer": optimizer,
                "trials": len(group),
                "best": group["value"].iloc[0],
                "median": group["value"].median(),
                "mean_best_epoch": group["best_epoch"].mean(),
                "best_trial": int(group["trial"].iloc[0]),
                "best_run_id": group["run_id"].iloc[0],
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("best", ascending=not maximize, kind="stable").reset_index(drop=True)


def expected_table(ranked: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Expected best score of n = 1..N trials drawn from this sweep's complete trials."""
    if ranked.empty:
        return pd.DataFrame(columns=["n", "mean", "std"])
    mean, std = expected_best(ranked.sort_values("trial")["value"].tolist(), maximize=maximize)
    return pd.DataFrame({"n": range(1, len(mean) + 1), "mean": mean, "std": std})


def curve_metric(metric: str) -> str:
    """The per-epoch validation metric to draw: the objective's validation counterpart."""
    return metric if metric.startswith("val_") else f"val_{metric}"


def provenance(stored: StoredSweep, spec: Spec) -> dict[str, Any]:
    """What the sweep ran with, as the parent run recorded it; the report machine's versions
    stand in (and say so) for a sweep that recorded none."""
    from tracking import tags
    from tracking.provenance import package_versions

    parent_tags = stored.parent.data.tags
    recorded = parent_tags.get(tags.VERSIONS)
    return {
        "engine": spec.engine.name,
        "sampler": spec.engine.sampler or spec.engine.tuner,  # KerasTuner's is its tuner
        "engine_seed": spec.engine.seed,
        "train_seed": spec.train.seed,
        "dataset": spec.dataset.model_dump(exclude_none=True),
        "model": {"name": spec.model.name, **spec.model.options()},
        "versions": json.loads(recorded) if recorded else package_versions(),
        "versions_from": "as the sweep recorded them"
        if recorded
        else "of the machine that wrote this report: the sweep recorded none",
        "git_commit": parent_tags.get(tags.GIT_COMMIT),
        "git_dirty": parent_tags.get(tags.GIT_DIRTY) == "true" if tags.GIT_DIRTY in parent_tags else None,
        "started": _time(stored.parent.info.start_time),
        "ended": _time(stored.parent.info.end_time),
        "spec_yaml": stored.spec_yaml,
    }


def _time(ms: int | None) -> str | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def unknown_sweep(tracking_uri: str, name: str) -> ReportError:
    """The one-line error for a name the store does not hold, listing the sweeps it does."""
    import difflib

    from tracking.query import sweeps_frame

    known = sorted(sweeps_frame(tracking_uri)["sweep"].tolist())
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listing = ", ".join(known) if known else "none"
    return ReportError(f"no sweep {name!r} in {tracking_uri}{hint}; sweeps there: {listing}")


def load(tracking_uri: str, name: str, engine: str | None = None) -> StoredSweep:
    """The stored sweep (the run of it by `engine`, when two engines ran the same spec), or a
    ReportError naming what the store holds instead."""
    from tracking.query import load_sweeps

    found = load_sweeps(tracking_uri, name)
    if not found:
        raise unknown_sweep(tracking_uri, name)
    engines = ", ".join(s.engine for s in found)
    if engine is not None:
        found = [s for s in found if s.engine == engine]
        if not found:
            raise ReportError(f"sweep {name!r} was not run by engine {engine!r}; it was by: {engines}")
    if len(found) > 1:
        raise ReportError(f"sweep {name!r} was run by several engines ({engines}): pick one with --engine")
    return found[0]


def stored_spec(stored: StoredSweep) -> Spec:
    """The spec the sweep last ran with, from its parent run's spec.yaml."""
    import yaml

    if stored.spec_yaml is None:
        raise ReportError(f"sweep {stored.name!r}: its parent run has no spec.yaml to rebuild the spec from")
    return parse_spec(
        yaml.safe_load(stored.spec_yaml or ""), source=f"{stored.name} (spec.yaml of the parent run)"
    )


def build_report(tracking_uri: str, name: str, top: int = 10, engine: str | None = None) -> Report:
    """Read sweep `name` from the store and compute every table and series of its report."""
    from tracking.query import find_retrain, metric_histories

    stored = load(tracking_uri, name, engine)
    spec = stored_spec(stored)
    maximize = spec.objective.direction == "maximize"
    trials = numeric_summaries(stored.trials)
    ranked = rank(trials, maximize)
    optimizers = optimizer_table(ranked, maximize)
    metric = curve_metric(spec.objective.metric)
    return Report(
        sweep=name,
        tracking_uri=tracking_uri,
        experiment_id=stored.experiment_id,
        parent_run_id=stored.parent.info.run_id,
        status=stored.parent.info.status,
        spec=spec,
        trials=trials,
        ranked=ranked,
        top=top,
        optimizers=optimizers,
        importances=param_importances(spec.space, ranked, str(spec.objective.direction)),
        branch_importances=branch_importances(spec.space, ranked, str(spec.objective.direction)),
        expected=expected_table(ranked, maximize),
        curve_metric=metric,
        curves=metric_histories(tracking_uri, list(optimizers["best_run_id"]), metric),
        provenance=provenance(stored, spec),
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        retrain=None
        if ranked.empty
        else find_retrain(tracking_uri, stored.experiment_id, ranked["run_id"].iloc[0]),
    )
