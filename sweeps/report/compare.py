"""`sweep compare`: sweeps side by side, one row each, from what MLflow holds."""

from __future__ import annotations

import pandas as pd

from sweeps.report.build import numeric_summaries, rank, stored_spec, unknown_sweep

COLUMNS = [
    "sweep",
    "status",
    "engine",
    "sampler",
    "dataset",
    "model",
    "objective",
    "trials",
    "complete",
    "pruned",
    "failed",
    "running",
    "best",
    "best_trial",
    "epochs",
    "train_seconds",
]


def compare_frame(tracking_uri: str, names: list[str]) -> pd.DataFrame:
    """One row per sweep (and per engine, where two engines ran the same spec): how it searched,
    how many trials in each state, the best value, and what it spent (epochs trained and
    training seconds, over all trials).

    Raises ReportError for a name the store does not hold, listing the ones it does.
    """
    from tracking.query import load_sweeps

    found = {name: load_sweeps(tracking_uri, name) for name in names}
    for name, runs in found.items():
        if not runs:
            raise unknown_sweep(tracking_uri, name)
    rows = []
    for stored in (s for runs in found.values() for s in runs):
        spec = stored_spec(stored)
        trials = numeric_summaries(stored.trials)
        ranked = rank(trials, spec.objective.direction == "maximize")
        states = trials["state"].value_counts().to_dict()
        counts = {state: int(states.pop(state, 0)) for state in ("complete", "pruned", "running")}
        rows.append(
            {
                "sweep": stored.name,
                "status": stored.parent.info.status,
                "engine": stored.engine or spec.engine.name,
                "sampler": spec.engine.sampler or spec.engine.tuner,
                "dataset": spec.dataset.name,
                "model": spec.model.name,
                "objective": f"{spec.objective.direction[:3]} {spec.objective.metric}",
                "trials": len(trials),
                "complete": counts["complete"],
                "pruned": counts["pruned"],
                "failed": int(sum(states.values())),  # failed, and interrupted by a user or a dead worker
                "running": counts["running"],
                "best": None if ranked.empty else float(ranked["value"].iloc[0]),
                "best_trial": None if ranked.empty else int(ranked["trial"].iloc[0]),
                "epochs": int(trials["epochs_run"].sum()),
                "train_seconds": round(float(trials["train_seconds"].sum()), 1),
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"best_trial": "Int64"})
