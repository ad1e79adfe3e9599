"""What the report says, as a list of plain blocks that `render` turns into Markdown and HTML.

Written once, so the two formats cannot drift apart. Text may hold `code` spans and
[links](url), the only inline markup both renderers understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from sweeps.report.build import Report
    from sweeps.report.plots import Plot


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    plot: Plot


Block = Heading | Text | Bullets | Table | Code | Image


def fmt(value: Any, digits: int = 4) -> str:
    """A cell: floats to `digits` significant figures, missing values as a dash."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def run_url(report: Report, run_id: str) -> str:
    """The run's page in the MLflow UI: the server itself, or what `sweep ui` serves locally."""
    from tracking.dashboard import run_url as page
    from tracking.dashboard import ui_base

    return page(ui_base(report.tracking_uri), report.experiment_id, run_id)


def expected_rows(report: Report) -> list[list[str]]:
    """E[best of n] at a few round budgets up to this sweep's N."""
    table = report.expected
    count = len(table)
    wanted = sorted({n for n in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000) if n <= count} | {count})
    rows = table.set_index("n").loc[wanted]
    return [[str(n), fmt(row["mean"]), fmt(row["std"], 2)] for n, row in rows.iterrows()]


def _summary(report: Report) -> list[Block]:
    counts = report.counts()
    states = ", ".join(f"{n} {state}" for state, n in counts.items())
    status = "still running" if report.status == "RUNNING" else report.status.lower()
    spec = report.spec
    description = f"{spec.description} " if spec.description else ""
    return [
        Heading(1, f"Sweep `{report.sweep}`: best-config report"),
        Text(
            f"{description}Sweep {status}; {sum(counts.values())} trials ({states}) of a budget of "
            f"{spec.budget.trials}. Objective: {spec.objective.direction} `{report.metric}` on the "
            f"validation split of `{spec.dataset.name}`. Generated {report.generated} from "
            f"`{report.tracking_uri}`."
        ),
    ]


def _best(report: Report, has_best_yaml: bool) -> list[Block]:
    best = report.best
    blocks: list[Block] = [Heading(2, "Best config")]
    if best is None:
        return [*blocks, Text("No trial has completed yet: nothing to rank.")]
    searched = set(report.spec.space.searched)
    config = report.best_config()
    run_id = best["run_id"]
    uri = report.tracking_uri
    url = run_url(report, run_id)
    blocks += [
        Text(
            f"**{report.metric} = {best['value']:.4f}**, trial {int(best['trial'])} (best epoch "
            f"{fmt(best['best_epoch'])} of {fmt(best['epochs_run'])} run), MLflow run `{run_id}`."
        ),
        Table(
            ["parameter", "value", ""],
            [[k, fmt(v, 6), "searched" if k in searched else "fixed"] for k, v in config.items()],
        ),
        Text("Open the trial:"),
        Bullets(
            [
                f"in the MLflow UI: `sweep ui {report.sweep} --tracking-uri {uri}`, then [{url}]({url})"
                if not uri.startswith("http")
                else f"in the MLflow UI: [{url}]({url})",
                f'from Python: `mlflow.set_tracking_uri("{uri}"); mlflow.get_run("{run_id}")`',
                f'its model: `mlflow.artifacts.download_artifacts(run_id="{run_id}", '
                f'artifact_path="checkpoint/best.keras", tracking_uri="{uri}")`',
            ]
        ),
    ]
    if has_best_yaml:
        blocks.append(Text("Re-run this config alone: `sweep run best.yaml` (written beside this report)."))
    if report.retrain:
        r = report.retrain
        tests = ", ".join(f"{k} = {v:.4f}" for k, v in r["test"].items())
        registered = (
            f"Registered as model `{r['model_name']}` version {r['version']} (`{r['model_uri']}`), "
            if r["model_uri"]
            else ""
        )
        blocks.append(
            Text(
                f"Retrained on train+validation for {r['epochs']} epochs (the trial's best epoch) and "
                f"evaluated once on the test split: **{tests}**. {registered}run `{r['run_id']}`."
            )
        )
    return blocks


def _top(report: Report) -> list[Block]:
    ranked = report.ranked.head(report.top)
    if ranked.empty:
        return []
    params = report.params
    columns = ["rank", "trial", *params, report.metric, "best epoch", "stopped epoch", "train s"]
    rows = [
        [
            str(i + 1),
            str(int(r["trial"])),
            *(fmt(r["config"].get(p)) for p in params),
            f"{r['value']:.4f}",
            fmt(int(r["best_epoch"])),
            fmt(int(r["stopped_epoch"])) if r["stopped_epoch"] else "–",
            f"{r['train_seconds']:.1f}",
        ]
        for i, (_, r) in enumerate(ranked.iterrows())
    ]
    return [
        Heading(2, f"Top {len(ranked)} of {len(report.ranked)} complete trials"),
        Table(columns, rows),
        Text("Stopped epoch: where early stopping ended the trial (– : it ran all its epochs)."),
    ]


def _optimizers(report: Report) -> list[Block]:
    table = report.optimizers
    if table.empty or len(table) < 2:
        return []
    rows = [
        [
            str(r["optimizer"]),
            str(r["trials"]),
            f"{r['best']:.4f}",
            f"{r['median']:.4f}",
            f"{r['mean_best_epoch']:.1f}",
            str(r["best_trial"]),
        ]
        for _, r in table.iterrows()
    ]
    return [
        Heading(2, "Optimizers compared"),
        Text(
            f"Over the complete trials, each optimizer with the learning rates and other settings the sweep "
            f"gave it; `{report.metric}` {'higher' if report.maximize else 'lower'} is better."
        ),
        Table(["optimizer", "trials", "best", "median", "mean epochs to best", "best trial"], rows),
    ]


def _plots(report: Report, plots: list[Plot]) -> list[Block]:
    shown = [plot for plot in plots if plot.name != "expected_best"]
    blocks: list[Block] = [Heading(2, "Plots")] if shown else []
    for plot in shown:
        blocks += [Heading(3, plot.title), Image(plot)]
        if plot.name == "importance":
            blocks.append(
                Table(["parameter", "importance"], [[k, f"{v:.3f}"] for k, v in report.importances.items()])
            )
    blocks += _branch_importances(report)
    return blocks


def _branch_importances(report: Report) -> list[Block]:
    """Importance within each branch of a choice with sub-spaces, where its own ranges apply."""
    found = report.branch_importances
    if not found:
        return []
    rows = [
        [f"`{branch}`", name, f"{value:.3f}"]
        for branch, values in found.items()
        for name, value in values.items()
    ]
    return [
        Heading(3, "Parameter importance within each branch"),
        Text(
            "Each branch's complete trials alone, over the parameters its sub-space searched "
            "(fANOVA, as above; branches with fewer than 3 complete trials are left out)."
        ),
        Table(["branch", "parameter", "importance"], rows),
    ]


def _expected(report: Report, plots: list[Plot]) -> list[Block]:
    if report.expected.empty:
        return []
    return [
        Heading(2, "Expected best score by budget"),
        Text(
            f"If the sweep were run again with n trials drawn like these, the best `{report.metric}` it "
            "would find is expected to be (Dodge et al., 2019, 'Show Your Work'; with the N complete "
            "trials' values sorted, `E[best of n] = sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n)`):"
        ),
        Table(["n trials", f"expected best {report.metric}", "std"], expected_rows(report)),
        *(Image(plot) for plot in plots if plot.name == "expected_best"),
    ]


def _other_trials(report: Report) -> list[Block]:
    trials = report.trials
    if trials.empty:
        return []
    blocks: list[Block] = []
    failed = trials[~trials["state"].isin(["complete", "pruned", "running"])]
    if not failed.empty:
        rows = [
            [
                str(int(r["trial"])),
                str(r["state"]),
                str(r["reason"] or "–"),
                str(r["error"] or "")[:200],
                f"`{r['run_id']}`",
            ]
            for _, r in failed.iterrows()
        ]
        blocks += [
            Heading(3, f"Failed trials ({len(failed)})"),
            Table(["trial", "state", "reason", "error", "run"], rows),
        ]
    pruned = trials[trials["state"] == "pruned"]
    if not pruned.empty:
        rows = [
            [str(int(r["trial"])), fmt(r["value"]), fmt(r["epochs_run"]), f"`{r['run_id']}`"]
            for _, r in pruned.iterrows()
        ]
        blocks += [
            Heading(3, f"Pruned trials ({len(pruned)})"),
            Text("Stopped early by the pruner; not ranked, as their values are from fewer epochs."),
            Table(["trial", f"{report.metric} when stopped", "epochs run", "run"], rows),
        ]
    running = trials[trials["state"] == "running"]
    if not running.empty:
        rows = [[str(int(r["trial"])), str(r["run_name"]), f"`{r['run_id']}`"] for _, r in running.iterrows()]
        blocks += [
            Heading(3, f"Running trials ({len(running)})"),
            Text("Still training when this report was written; not ranked."),
            Table(["trial", "run name", "run"], rows),
        ]
    return [Heading(2, "Trials not ranked"), *blocks] if blocks else []


def _provenance(report: Report) -> list[Block]:
    p = report.provenance
    dataset = ", ".join(f"{k}={v}" for k, v in p["dataset"].items())
    model = ", ".join(f"{k}={v}" for k, v in p["model"].items())
    commit = p["git_commit"] or "not recorded"
    if p["git_dirty"]:
        commit += " (with uncommitted changes)"
    versions = ", ".join(f"{k} {v}" for k, v in p["versions"].items())
    search = "tuner" if p["engine"] == "kerastuner" else "sampler"
    return [
        Heading(2, "Where it came from"),
        Bullets(
            [
                f"engine `{p['engine']}`, {search} `{p['sampler']}` (seed {p['engine_seed']}), "
                f"training seed {p['train_seed']}",
                f"dataset: {dataset}",
                f"model: {model}",
                f"git commit: `{commit}`",
                f"package versions ({p['versions_from']}): {versions}",
                f"sweep started {p['started']}" + (f", ended {p['ended']}" if p["ended"] else ""),
                f"MLflow: experiment {report.experiment_id}, parent run `{report.parent_run_id}`, store "
                f"`{report.tracking_uri}`",
            ]
        ),
        Text("The spec, as the sweep ran it:"),
        Code(p["spec_yaml"] or "", "yaml"),
    ]


def report_document(report: Report, plots: list[Plot], has_best_yaml: bool) -> list[Block]:
    """The whole report, top to bottom."""
    return [
        *_summary(report),
        *_best(report, has_best_yaml),
        *_top(report),
        *_optimizers(report),
        *_plots(report, plots),
        *_expected(report, plots),
        *_other_trials(report),
        *_provenance(report),
    ]
