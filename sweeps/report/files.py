"""The report's files: report.md (+ plots/), report.html, report.json and best.yaml."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweeps.report.build import plain
from sweeps.report.document import report_document, run_url
from sweeps.report.importance import METHOD
from sweeps.report.plots import Plot, render_plots
from sweeps.report.render import to_html, to_markdown
from sweeps.running.views import sweep_view

if TYPE_CHECKING:
    from sweeps.report.build import Report
    from sweeps.spec.schema import Spec

TRIAL_FIELDS = (
    "trial",
    "run_id",
    "state",
    "value",
    "best_epoch",
    "stopped_epoch",
    "epochs_run",
    "train_seconds",
    "trial_seconds",
    "reason",
    "error",
)


@dataclass(frozen=True)
class ReportFiles:
    folder: Path
    markdown: Path
    html: Path
    json: Path
    best_yaml: Path | None  # None while no trial has completed


def _trial(row: pd.Series) -> dict[str, Any]:
    fields = {key: row.get(key) for key in TRIAL_FIELDS}
    for key in ("trial", "best_epoch", "stopped_epoch", "epochs_run"):  # counts, NaN while running
        fields[key] = None if pd.isna(fields[key]) else int(fields[key])
    return {**fields, "config": row["config"]}


def best_spec(report: Report) -> Spec | None:
    """A spec that runs the best config alone, as a sweep of its own named `<sweep>-best`: one
    trial on the same data split, seed, epochs and early stopping, so it reproduces the value."""
    best = report.best
    if best is None:
        return None
    spec = report.spec
    return spec.with_fixed(
        report.best_config(),
        name=f"{spec.name}-best",
        description=f"The best config of sweep {spec.name} (trial {int(best['trial'])}, "
        f"{report.metric} {best['value']:.4f}), run alone.",
        engine={"name": "optuna", "sampler": "random", "seed": spec.engine.seed},
        budget={"trials": 1},
    )


def report_json(report: Report, plots: list[Plot]) -> dict[str, Any]:
    """The machine-readable report: everything the Markdown shows, with full precision."""
    best = report.best
    ranked = report.ranked
    return plain(
        {
            "sweep": report.sweep,
            "status": report.status,
            "generated": report.generated,
            "tracking_uri": report.tracking_uri,
            "experiment_id": report.experiment_id,
            "parent_run_id": report.parent_run_id,
            "objective": {"metric": report.metric, "direction": report.spec.objective.direction},
            "counts": report.counts(),
            "best": None
            if best is None
            else {**_trial(best), "config": report.best_config(), "url": run_url(report, best["run_id"])},
            "top": [
                {"rank": i + 1, **_trial(row)}
                for i, (_, row) in enumerate(ranked.head(report.top).iterrows())
            ],
            "optimizers": report.optimizers.to_dict("records"),
            "importance": {
                "method": METHOD,
                "values": report.importances,
                "branches": report.branch_importances,
            },
            "expected_best": report.expected.to_dict("records"),
            "trials": [_trial(row) for _, row in report.trials.iterrows()],
            "plots": {plot.name: f"plots/{plot.name}.png" for plot in plots},
            "provenance": report.provenance,
            "retrain": report.retrain,
        }
    )


def report_note(report: Report, folder: Path) -> str:
    """The parent run's description once the report is logged: the sweep's summary, as the sweep
    keeps it (`tracking.notes`), saying where this report is."""
    from tracking.notes import sweep_note

    best = report.best
    summary = None
    if best is not None:
        summary = {
            "number": int(best["trial"]),
            "value": float(best["value"]),
            "config": report.best_config(),
        }
        summary["run_id"] = str(best["run_id"])
    run = f"#/experiments/{report.experiment_id}/runs/{report.parent_run_id}"
    html = f"{run}/artifacts/report/report.html?workflowType=machine_learning"
    where = (
        f"Written {report.generated} by `sweep report`: [report.html]({html}), report.md, report.json"
        f"{' and best.yaml' if best is not None else ''} are this run's artifacts under `report/` "
        f"(and files in `{folder.resolve()}` where it was written)."
    )
    rows = report.trials.to_dict("records") if not report.trials.empty else []
    return sweep_note(
        sweep_view(report.spec),
        report.experiment_id,
        report.status,
        report.counts(),
        summary,
        rows,
        report.spec.budget.trials,
        report_section=where,
    )


def write_report(report: Report, folder: Path) -> ReportFiles:
    """Write every file of the report into `folder` (created; files of an older report replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = render_plots(report)
    (folder / "plots").mkdir(exist_ok=True)
    for old in (folder / "plots").glob("*.png"):
        old.unlink()
    for plot in plots:
        (folder / "plots" / f"{plot.name}.png").write_bytes(plot.png)
    spec = best_spec(report)
    best_yaml = None
    if spec is not None:
        best_yaml = folder / "best.yaml"
        header = f"# {spec.description}\n# Run it with: sweep run best.yaml\n"
        best_yaml.write_text(header + spec.to_yaml(), encoding="utf-8")
    elif (folder / "best.yaml").exists():
        (folder / "best.yaml").unlink()
    blocks = report_document(report, plots, has_best_yaml=spec is not None)
    markdown = folder / "report.md"
    markdown.write_text(to_markdown(blocks), encoding="utf-8")
    page = folder / "report.html"
    page.write_text(to_html(blocks, f"Sweep {report.sweep}: best-config report"), encoding="utf-8")
    data = folder / "report.json"
    data.write_text(json.dumps(report_json(report, plots), indent=2) + "\n", encoding="utf-8")
    return ReportFiles(folder, markdown, page, data, best_yaml)
