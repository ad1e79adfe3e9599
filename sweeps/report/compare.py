"""`sweep compare`: sweeps side by side, one row each, from what MLflow holds."""

from __future__ import annotations

import pandas as pd

from sweeps.report.build import load, numeric_summaries, rank, stored_spec

COLUMNS = ["sweep", "status", "engine", "sampler", "dataset", "model", "objective", "trials", "complete", "pruned",
           "failed", "running", "best", "best_trial", "epochs", "train_seconds"]


def compare_frame(tracking_uri: str, names: list[str]) -> pd.DataFrame:
    """One row per sweep: how it searched, how many trials in each state, the best value, and
    what it spent (epochs trained and training seconds, over all trials).

    Raises ReportError for a name the store does not hold, listing the ones it does.
    """
    rows = []
    for name in names:
        stored = load(tracking_uri, name)
        spec = stored_spec(stored)
        trials = numeric_summaries(stored.trials)
        ranked = rank(trials, spec.objective.direction == "maximize")
        states = trials["state"].value_counts().to_dict()
        counts = {state: int(states.pop(state, 0)) for state in ("complete", "pruned", "running")}
        rows.append({
            "sweep": name,
            "status": stored.parent.info.status,
            "engine": spec.engine.name,
            "sampler": spec.engine.sampler,
            "dataset": spec.dataset.name,
            "model": spec.model.name,
            "objective": f"{'max' if spec.objective.direction == 'maximize' else 'min'} {spec.objective.metric}",
            "trials": len(trials),
            "complete": counts["complete"],
            "pruned": counts["pruned"],
            "failed": int(sum(states.values())),  # failed, and interrupted by a user or a dead worker
            "running": counts["running"],
            "best": None if ranked.empty else float(ranked["value"].iloc[0]),
            "best_trial": None if ranked.empty else int(ranked["trial"].iloc[0]),
            "epochs": int(trials["epochs_run"].sum()),
            "train_seconds": round(float(trials["train_seconds"].sum()), 1),
        })
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"best_trial": "Int64"})
