"""How a sweep's experiment opens in the MLflow UI: model training, its trials flat and best first.

The MLflow UI (3.17) reads the runs page's state from the URL: `workflowType` picks the
model-training navigation over the GenAI one, and `viewStateShareKey=KEY` loads a view (search
facets, selected columns and their order and widths, charts) from the experiment tag
`mlflow.sharedViewState.KEY`, the format its own "Share" writes: a JSON envelope `{name,
createdAt, updatedAt, state}` whose `state` is the view as a JSON string. The view is written
from the spec, so the searched params and the objective are the columns in view, sorted by the
objective in its direction, and the chart view holds the objective against the learning rate and
parallel coordinates over the searched params.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mlflow.entities import Experiment, Run
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE

from tracking import tags

EXPERIMENT_KIND = "mlflow.experimentKind"  # what the UI's "experiment type" selector writes
MODEL_TRAINING = "custom_model_development"  # shown as "Machine learning"
WORKFLOW = "machine_learning"  # `workflowType` for the model-training navigation
VIEW_KEY = "sweeplab-trials"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
UI_PORT = 5000  # what `sweep ui` serves a database store on by default
SECTION = "sweeplab-sweep"  # the chart section of the view's own charts
# Column ids of the runs table (ag-grid) and the widths that keep a sweep's columns in view on a
# 1440-pixel-wide window with MLflow's assistant panel open.
RUN_NAME_COLUMN = "attributes.`Run Name`"
CREATED_COLUMN = "runDateAndNestInfo"
DURATION_COLUMN = "duration"
RUN_NAME_WIDTH, CREATED_WIDTH = 150, 90


@dataclass(frozen=True)
class SweepView:
    """What the UI needs to know of a sweep, taken from its spec."""

    sweep: str
    objective: str  # the metric, e.g. val_accuracy; trials carry it as `best_<objective>`
    maximize: bool
    searched: tuple[str, ...]  # the searched parameters, in the spec's order
    x_param: str | None = None  # the numeric parameter the objective is plotted against
    description: str = ""
    dataset: str = ""
    engine: str = ""

    @property
    def metric(self) -> str:
        """The trial runs' summary metric the view sorts by."""
        return f"best_{self.objective}"


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def _width(name: str) -> int:
    """A column's width in pixels: its header (about 6 px a character, and the sort icon), at
    least what a value such as `momentum` or `0.012345` needs."""
    return max(86, min(160, 6 * len(name) + 24))


def view_state(view: SweepView) -> dict[str, Any]:
    """The runs page state: trials only (so they list flat), best first, the sweep's columns."""
    metric = _column("metrics", view.metric)
    params = [_column("params", name) for name in view.searched]
    section = {"uuid": SECTION, "name": "Sweep", "display": True, "isReordered": True, "columns": 2}
    charts: list[dict[str, Any]] = []
    common = {"metricSectionId": SECTION, "deleted": False, "isGenerated": False, "runsCountToCompare": 100}
    if view.x_param is not None:
        charts.append(
            {
                **common,
                "uuid": "sweeplab-objective-vs-x",
                "type": "SCATTER",
                "xaxis": {"key": view.x_param, "type": "PARAM"},
                "yaxis": {"key": view.metric, "type": "METRIC"},
            }
        )
    if view.searched:
        charts.append(
            {
                **common,
                "uuid": "sweeplab-parallel",
                "type": "PARALLEL",
                "selectedParams": list(view.searched),
                "selectedMetrics": [view.metric],
                "showAllRuns": True,
            }
        )
    return {
        "searchFilter": f"tags.`{tags.ROLE}` = '{tags.ROLE_TRIAL}'",
        "orderByKey": metric,
        "orderByAsc": not view.maximize,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": [
            metric,
            *params,
            _column("attributes", "Dataset"),
            _column("attributes", "Models"),
        ],
        "columnOrder": [RUN_NAME_COLUMN, metric, *params, CREATED_COLUMN, DURATION_COLUMN],
        "columnWidths": {
            RUN_NAME_COLUMN: RUN_NAME_WIDTH,
            CREATED_COLUMN: CREATED_WIDTH,
            metric: _width(view.metric),
            **{column: _width(name) for column, name in zip(params, view.searched, strict=True)},
        },
        "runsHiddenMode": "SHOW_ALL",  # charts plot every trial, not the first ten
        "isAccordionReordered": True,  # keeps the sweep's chart section first
        "compareRunSections": [section],
        "compareRunCharts": charts,
        "hideEmptyCharts": True,
        "useGroupedValuesInCharts": True,
    }


def view_tag_value(view: SweepView, now_ms: int | None = None) -> str:
    """The experiment tag's value: the envelope MLflow's "Share" writes around a view."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    name = f"sweeplab: trials by {view.metric}"
    return json.dumps(
        {"name": name, "createdAt": now, "updatedAt": now, "state": json.dumps(view_state(view))}
    )


def ui_base(tracking_uri: str, host: str = "127.0.0.1", port: int = UI_PORT) -> str:
    """Where the UI of a store is: a tracking server serves its own; a database store's is what
    `sweep ui` serves (on `host`:`port`)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def trials_url(base: str, experiment_id: str, charts: bool = False) -> str:
    """The sweep's trials in the UI: the view above, as a table (or its charts)."""
    query = {"workflowType": WORKFLOW, "viewStateShareKey": VIEW_KEY}
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{base}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def trials_link(experiment_id: str) -> str:
    """The same page as a link inside the UI (run and experiment descriptions), relative to it."""
    return trials_url("", experiment_id).lstrip("/")


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{urlencode({'workflowType': WORKFLOW})}"


def experiment_note(view: SweepView, experiment_id: str) -> str:
    """The experiment's description: the spec's own first (the UI shows its first line)."""
    direction = "maximize" if view.maximize else "minimize"
    first = view.description or f"Hyperparameter sweep {view.sweep}."
    searched = ", ".join(f"`{name}`" for name in view.searched) or "nothing (fixed config)"
    return (
        f"{first}\n\n"
        f"sweeplab sweep `{view.sweep}`: {direction} `{view.objective}` on `{view.dataset}`, searching "
        f"{searched} with `{view.engine}`. [Its trials, best first]({trials_link(experiment_id)}); the "
        "sweep's summary is the description of its parent run."
    )


def present(client: MlflowClient, experiment_id: str, view: SweepView) -> None:
    """Mark the experiment as model training and write its description and the trials view."""
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    client.set_experiment_tag(experiment_id, MLFLOW_RUN_NOTE, experiment_note(view, experiment_id))
    client.set_experiment_tag(experiment_id, VIEW_TAG, view_tag_value(view))


def find_sweep(client: MlflowClient, name: str | None) -> Experiment | None:
    """A sweep's experiment by name; without a name, the sweep active most recently (its parent
    run still running, or the latest to end). None when there is no such sweep."""
    sweeps = f"tags.`{tags.ROLE}` = '{tags.ROLE_SWEEP}'"
    if name is not None:
        found = client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage != "active":
            return None
        return found if client.search_runs([found.experiment_id], sweeps, max_results=1) else None
    experiments = {e.experiment_id: e for e in client.search_experiments()}
    if not experiments:
        return None
    parents = client.search_runs(
        list(experiments), f"tags.`{tags.ROLE}` = '{tags.ROLE_SWEEP}'", max_results=1000
    )

    def last_active(run: Run) -> float:
        return (
            float("inf") if run.info.status == "RUNNING" else float(run.info.end_time or run.info.start_time)
        )

    latest = max(parents, key=last_active, default=None)
    return None if latest is None else experiments[latest.info.experiment_id]
