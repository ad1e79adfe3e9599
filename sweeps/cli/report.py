"""`sweep report` and `sweep compare` (registered on `sweeps.cli.app`). Heavy imports wait for
the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sweeps.cli.common import TrackingUri, existing_store, fail, no_store, quiet_libraries, user_errors
from sweeps.cli.ui import trials_page


def report(
    name: Annotated[
        str, typer.Argument(help="The sweep: its spec's name, as `sweep list` shows it.")
    ] = "quickstart",
    tracking_uri: TrackingUri = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the report files (default: reports/NAME).")
    ] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Trials in the ranked table.")] = 10,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="The engine whose run to report, where several ran the spec."),
    ] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="Also retrain the best config on train+validation, test it once, and "
            "register the model under the sweep's name.",
        ),
    ] = False,
) -> None:
    """Write a sweep's best-config report: report.md, report.html, report.json, best.yaml.

    Built from MLflow alone, for a finished or a still running sweep, and logged on its parent run.
    """
    uri = existing_store(tracking_uri) or no_store(tracking_uri)
    quiet_libraries()
    from sweeps.report.build import build_report
    from sweeps.report.files import report_note, write_report
    from tracking.registry import log_report

    folder = out or Path("reports") / name
    try:
        built = build_report(uri, name, top, engine)
        if retrain:
            from sweeps.report.retrain import retrain_best

            built.retrain = retrain_best(built)
        files = write_report(built, folder)
    except user_errors() as exc:
        fail(str(exc))
    written = [files.markdown, files.html, files.json, *([files.best_yaml] if files.best_yaml else [])]
    typer.echo(f"report of sweep {name}: {', '.join(str(p) for p in written)}")
    best = built.best
    if best is None:
        typer.echo("no trial has completed yet: no best config, no best.yaml")
    else:
        typer.echo(
            f"best: trial {int(best['trial'])}, {built.metric} {best['value']:.4f} (run {best['run_id']})"
        )
    if retrain and built.retrain:
        r = built.retrain
        tests = ", ".join(f"{k} {v:.4f}" for k, v in r["test"].items())
        typer.echo(
            f"retrained for {r['epochs']} epochs: {tests}; registered as {r['model_name']} version "
            f"{r['version']} ({r['model_uri']})"
        )
    try:
        where = log_report(uri, built.parent_run_id, files.folder, report_note(built, files.folder))
    except Exception as exc:  # the files are written; say what did not reach MLflow
        typer.echo(f"warning: report not logged to MLflow: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"logged as artifacts of the sweep's parent run {built.parent_run_id} under {where}/")
    typer.echo(f"the trials in the MLflow UI: {trials_page(uri, name, built.experiment_id)}")


def compare(
    names: Annotated[list[str], typer.Argument(help="Sweeps to compare, as `sweep list` shows them.")],
    tracking_uri: TrackingUri = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table to this CSV file.")] = None,
) -> None:
    """Sweeps side by side: engine, trials by state, best value, epochs and seconds spent."""
    uri = existing_store(tracking_uri) or no_store(tracking_uri)
    quiet_libraries()
    from sweeps.report.compare import compare_frame

    try:
        frame = compare_frame(uri, list(dict.fromkeys(names)))
    except user_errors() as exc:
        fail(str(exc))
    typer.echo(frame.to_string(index=False, formatters={"best": "{:.4f}".format}))
    if csv is not None:
        frame.to_csv(csv, index=False)
        typer.echo(f"wrote {csv}")
