"""What a sweep spent: epochs and seconds trained, trials by state, epochs saved by stopping early.

Computed from the trial runs in MLflow, so it covers every worker and every earlier run of
the sweep, whichever engine ran them.
"""

from __future__ import annotations

import pandas as pd

STATES = ("complete", "pruned", "failed")


def accounting(trials: pd.DataFrame, epochs_per_trial: int) -> dict[str, float]:
    """Totals over the trials that ran; the full budget is every trial run to `train.epochs`."""
    if trials.empty:
        counts = dict.fromkeys(STATES, 0)
        epochs = seconds = 0.0
    else:
        counts = {state: int((trials["state"] == state).sum()) for state in STATES}
        epochs = float(trials["epochs_run"].fillna(0).sum())
        seconds = float(trials["train_seconds"].fillna(0).sum())
    ran = sum(counts.values())
    budget = float(ran * epochs_per_trial)
    return {
        **{f"trials_{state}": float(n) for state, n in counts.items()},
        "epochs_trained": epochs,
        "train_seconds_total": seconds,
        "epochs_budget": budget,
        "epochs_saved": budget - epochs,
    }


def describe(totals: dict[str, float]) -> str:
    """One line for the end of `sweep run`."""
    budget = totals["epochs_budget"]
    saved = totals["epochs_saved"]
    share = f" ({saved / budget:.0%})" if budget else ""
    return (
        f"{totals['epochs_trained']:.0f} epochs trained in {totals['train_seconds_total']:.1f} s; "
        f"{saved:.0f} of {budget:.0f} epochs saved by early stopping and pruning{share}"
    )
