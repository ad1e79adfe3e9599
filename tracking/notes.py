"""Run descriptions (MLflow's `mlflow.note.content`, Markdown): the sweep's summary on its parent
run, kept current after every trial, and one line on each trial run.

The UI shows a run's description on its page, its first lines before "Show more", so each
starts with what matters most. Links are relative to the UI (`#/experiments/...`), so they work
on whichever host serves it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from tracking import tags
from tracking.dashboard import SweepView, run_url, trials_link
from tracking.query import trial_row

NOTE_LIMIT = 8000  # MLflow's longest run tag value
# Trials finished by other workers are found by their end time; this much clock skew between
# machines (and delay between a run's end and its read) is tolerated before one is missed,
# until the sweep's final summary, which reads them all.
SKEW_MS = 10_000
STATUS_WORDS = {"RUNNING": "running", "FINISHED": "finished", "FAILED": "failed", "KILLED": "stopped"}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def config_text(config: Mapping[str, Any]) -> str:
    """`optimizer=adam, learning_rate=0.0032, dropout=0.25`: a config in one line."""
    return ", ".join(f"{key}={_value(value)}" for key, value in config.items())


def trial_note(
    config: Mapping[str, Any],
    state: str,
    objective: str | None = None,
    value: float | None = None,
    best_epoch: int | None = None,
    epochs_run: int | None = None,
    reason: str | None = None,
) -> str:
    """A trial run's description: its config, state and value, in one line."""
    outcome = state if not reason else f"{state} ({reason})"
    if value is not None and objective is not None and math.isfinite(value):
        outcome += f", {objective} {value:.4f}"
        if best_epoch:
            outcome += f" at epoch {best_epoch} of {epochs_run}"
    return f"{config_text(config)}: {outcome}"


def _run_link(experiment_id: str, run_id: str) -> str:
    """A run's page, relative to the UI, in the model-training view (a link without it would
    switch the UI back to the GenAI one)."""
    return run_url("", experiment_id, run_id).lstrip("/")


def optimizer_rows(rows: list[dict[str, Any]], maximize: bool) -> list[tuple[str, int, float, float, dict]]:
    """Per optimizer over complete trials: (optimizer, trials, best, median, best row), best first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["state"] == "complete" and row.get("value") is not None and "optimizer" in row:
            groups.setdefault(str(row["optimizer"]), []).append(row)
    table = []
    for optimizer, group in groups.items():
        best = (max if maximize else min)(group, key=lambda r: r["value"])
        median = statistics.median(r["value"] for r in group)
        table.append((optimizer, len(group), float(best["value"]), float(median), best))
    return sorted(table, key=lambda t: -t[2] if maximize else t[2])


def sweep_note(
    view: SweepView,
    experiment_id: str,
    status: str,
    counts: Mapping[str, int],
    best: Mapping[str, Any] | None,
    rows: list[dict[str, Any]],
    budget: int | None = None,
    report_section: str | None = None,
) -> str:
    """The parent run's description: state, counts, best config and its run, the optimizers, and
    where the full report is (`report_section`, once `sweep report` has written one)."""
    done = sum(counts.values())
    states = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "none yet"
    of_budget = f" of {budget}" if budget else ""
    word = STATUS_WORDS.get(status, status.lower())
    # No heading first: the UI shows a description's first few lines, and these are the summary.
    lines = [f"**Sweep `{view.sweep}`: {word}**, {done}{of_budget} trials ({states}).  "]
    if best is None:
        lines.append(f"No trial has completed yet; the objective is `{view.objective}`.  ")
    else:
        where = f"trial {best['number']}"
        if best.get("run_id"):
            where = f"[{where}]({_run_link(experiment_id, best['run_id'])})"
        value = float(best["value"])
        lines.append(f"**Best: {view.objective} = {value:.4f}**, {where}: {config_text(best['config'])}.  ")
    direction = "highest" if view.maximize else "lowest"
    lines.append(f"[All trials, {direction} {view.objective} first]({trials_link(experiment_id)}).")
    table = optimizer_rows(rows, view.maximize)
    if len(table) > 1:
        lines += [
            "",
            "## Optimizers",
            "",
            f"| optimizer | trials | best {view.objective} | median | best trial |",
        ]
        lines.append("| --- | --- | --- | --- | --- |")
        for optimizer, n, top, median, row in table:
            link = f"[{row['trial']}]({_run_link(experiment_id, row['run_id'])})"
            lines.append(f"| {optimizer} | {n} | {top:.4f} | {median:.4f} | {link} |")
        lines.append("")
        so_far = " so far" if status == "RUNNING" else ""
        lines.append(f"Over the {sum(t[1] for t in table)} complete trials{so_far}.")
    lines += ["", "## Full report", ""]
    lines.append(
        report_section
        or f"`sweep report {view.sweep}` writes it (plots, top trials, expected best by budget, best.yaml) "
        f"to `reports/{view.sweep}/` and logs it on this run, under the artifacts' `report/`."
    )
    text = "\n".join(lines) + "\n"
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 2] + "…\n"


class SweepNotes:
    """Keeps the parent run's description current, reading trials back from MLflow as they end.

    The first read takes every trial of the parent run; later ones only those that ended since,
    so an update costs one small query and one tag write, on the tracker's writer thread.
    """

    def __init__(
        self,
        client: MlflowClient,
        experiment_id: str,
        parent_run_id: str,
        view: SweepView,
        budget: int | None = None,
    ) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.view = view
        self.budget = budget
        self.rows: dict[str, dict[str, Any]] = {}
        self.counts: dict[str, int] = {}
        self.best: dict[str, Any] | None = None
        self._since: int | None = None  # end time (ms) of the newest trial read so far

    def _read(self, since: int | None) -> None:
        query = f"tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}' and tags.`{tags.PARENT}` = '{self.parent_run_id}'"
        if since is not None:
            query += f" and attributes.end_time >= {since - SKEW_MS}"
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], query, max_results=1000, page_token=token)
            for run in page:
                self._add(run)
            token = page.token
            if not token:
                return

    def _add(self, run: Run) -> None:
        if run.info.end_time is None:
            return
        self.rows[run.info.run_id] = trial_row(run)
        self._since = max(self._since or 0, run.info.end_time)

    def update(
        self, counts: Mapping[str, int], best: Mapping[str, Any] | None, status: str = "RUNNING"
    ) -> str:
        """Read the trials that ended since the last update, then rewrite the description."""
        self.counts, self.best = dict(counts), None if best is None else dict(best)
        self._read(self._since)
        return self._write(status)

    def finish(self, status: str) -> str:
        """The final summary, from every trial of the sweep."""
        self.rows.clear()
        self._read(None)
        return self._write(status)

    def _write(self, status: str) -> str:
        note = sweep_note(
            self.view,
            self.experiment_id,
            status,
            self.counts,
            self.best,
            list(self.rows.values()),
            self.budget,
        )
        self.client.set_tag(self.parent_run_id, MLFLOW_RUN_NOTE, note)
        return note
