"""The `sweep` command: run | ui | list | report | compare.

Errors a user can fix (a bad spec, a bad option, missing data) end the command with exit
code 2 and one line on stderr, no traceback. Heavy packages (TensorFlow, MLflow) are
imported only by the commands that need them, so `sweep --help` and spec errors are quick.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from sweeps.cli.common import (
    Storage,
    TrackingUri,
    existing_store,
    fail,
    quiet_libraries,
    show_warnings_as_lines,
    user_errors,
)
from sweeps.cli.quiet import VERBOSE_ENV, quiet_tensorflow
from sweeps.cli.report import compare, report
from sweeps.cli.ui import trials_page, ui

if TYPE_CHECKING:
    from sweeps.running.runner import Sweep, SweepResult
    from sweeps.spec.schema import Spec

app = typer.Typer(
    name="sweep",
    help="Hyperparameter sweeps over Keras training jobs, tracked in MLflow.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            envvar=VERBOSE_ENV,
            help="Show TensorFlow's start-up lines and the libraries' info logs (hidden by default).",
        ),
    ] = False,
) -> None:
    """Hyperparameter sweeps over Keras training jobs, tracked in MLflow."""
    show_warnings_as_lines()
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # the workers `sweep run --workers` starts inherit it
    else:
        quiet_tensorflow()


def _load(spec: str, overrides: dict[str, object] | None = None) -> Spec:
    from sweeps.spec.schema import load_spec

    try:
        return load_spec(spec, overrides)
    except user_errors() as exc:
        fail(str(exc))


def _gpu_list(gpus: str | None) -> list[int] | None:
    if gpus is None:
        return None
    try:
        return [int(part) for part in gpus.split(",") if part.strip()]
    except ValueError:
        fail(f"--gpus: expected GPU indices such as 0,1 (got {gpus!r})")


@dataclass
class _Opened:
    """What a command has opened, so that an interrupt can say what it left behind."""

    sweep: Sweep | None = None


def _interrupt_note(opened: _Opened) -> str:
    """What an interrupted command recorded, from what it knows: every clause true."""
    sweep = opened.sweep
    if sweep is None:
        return "the sweep was still starting; no trial had started"
    parts = []
    if sweep.tracker.interrupted:
        numbers = ", ".join(str(n) for n in sweep.tracker.interrupted)
        parts.append(
            f"trial {numbers} was recorded as interrupted (its run KILLED, failed in the study, not counted)"
        )
    parts += sweep.notes
    if not parts:
        parts.append("no trial was in progress")
    parts += [f"not recorded: {fault}" for fault in sweep.tracker.faults.lines()]
    return "; ".join(parts)


@contextmanager
def _interruptible() -> Iterator[_Opened]:
    """SIGTERM stops a sweep as Ctrl-C does: the trial in progress is recorded as interrupted,
    the stores are left consistent, the message says what was recorded, and the exit code
    says how it stopped (130 for SIGINT, 143 for SIGTERM)."""
    received: list[int] = []
    opened = _Opened()

    def on_term(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield opened
    except KeyboardInterrupt:
        note = _interrupt_note(opened)
        typer.echo(f"error: interrupted; {note}. Run the same command again to continue the sweep.", err=True)
        raise typer.Exit(143 if received else 130) from None
    except user_errors() as exc:
        from sweeps.errors import SweepFailed

        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1 if isinstance(exc, SweepFailed) else 2) from None
    except ValueError as exc:  # e.g. a tracking URI MLflow cannot use
        fail(str(exc))
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def run(
    spec: Annotated[str, typer.Argument(help="A spec file, or the name of a built-in spec.")] = "quickstart",
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Override budget.trials.")] = None,
    tracking_uri: TrackingUri = None,
    storage: Storage = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes on this machine.")] = 1,
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="GPU indices for the workers, e.g. 0,1 (default: all).")
    ] = None,
    workers_per_gpu: Annotated[
        int, typer.Option("--workers-per-gpu", min=1, help="Workers sharing one GPU (memory growth on).")
    ] = 1,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Start the sweep again from scratch (new parent run, new study); the old one is "
            "kept, renamed NAME@TIME. Needed when the search changed.",
        ),
    ] = False,
    fuse: Annotated[
        int | None, typer.Option("--fuse", min=1, help="Override train.fuse: trials trained together.")
    ] = None,
) -> None:
    """Run a sweep (the built-in `quickstart` if no spec is given), or continue an interrupted one."""
    overrides: dict[str, object] = {}
    if trials:
        overrides["budget.trials"] = trials
    if fuse:
        overrides["train.fuse"] = fuse
    loaded = _load(spec, overrides or None)
    gpu_list = _gpu_list(gpus)
    if loaded.engine.name == "kerastuner" and (workers > 1 or gpu_list is not None):
        fail(
            "--workers/--gpus: the kerastuner engine runs in one process (its project folder is locked); "
            "use engine optuna for several workers"
        )
    quiet_libraries()
    from sweeps.cli.progress import SweepProgress
    from sweeps.running.runner import Sweep, preflight, prepare
    from sweeps.running.workers import run_with_workers

    with _interruptible() as opened:
        # Data, task and stores are checked before the backend is imported: bad input fails in seconds.
        prepared, data, note = prepare(loaded)
        preflight(prepared, tracking_uri, storage, restart=restart, spec_label=spec)
        _print_devices(workers, gpu_list, workers_per_gpu)
        if note:  # after the checks, so that a command that fails prints only its error
            typer.echo(note)
        opened.sweep = sweep = Sweep(prepared, tracking_uri, storage, restart=restart, checked=True)
        if sweep.archived_as:
            typer.echo(f"restarted: the earlier sweep is kept as {sweep.archived_as}")
        with SweepProgress(prepared.name, prepared.budget.trials) as progress:
            if workers == 1 and gpu_list is None:
                result = sweep.run(data, progress.update)
            else:
                result = run_with_workers(sweep, storage, workers, gpu_list, workers_per_gpu, progress.update)
    _print_summary(result)


def _spent_line(result: SweepResult) -> str:
    counted = sum(n for state, n in result.counts.items() if state != "failed")
    return (
        f"sweep {result.name}: the budget is already spent ({counted} trials counted); nothing to run "
        "(raise budget.trials or pass --trials to run more)"
    )


def _print_devices(workers: int, gpus: list[int] | None, workers_per_gpu: int) -> None:
    """The line a sweep starts with: backend, devices, and what each worker trains on."""
    from sweeps.running.devices import DeviceError, device_line, discover

    in_process = workers == 1 and gpus is None  # else only the workers import the backend
    try:
        devices = discover(probe_backend=in_process)
        typer.echo("devices: " + device_line(devices, workers, gpus, workers_per_gpu))
    except DeviceError as exc:
        fail(str(exc))


@app.command()
def worker(
    spec: Annotated[str, typer.Argument(help="The sweep's spec file (or built-in name).")],
    tracking_uri: TrackingUri = None,
    storage: Storage = None,
) -> None:
    """Join a running sweep from any machine: run its trials until the shared budget is spent."""
    loaded = _load(spec)
    quiet_libraries()
    from sweeps.errors import StoreError
    from sweeps.running.devices import enable_memory_growth
    from sweeps.running.runner import Sweep, preflight, prepare

    with _interruptible() as opened:
        prepared, data, _ = prepare(loaded)
        preflight(prepared, tracking_uri, storage, spec_label=spec)
        _print_devices(1, None, 1)
        enable_memory_growth()  # workers started by hand may share a GPU
        opened.sweep = sweep = Sweep(prepared, tracking_uri, storage, checked=True)
        try:
            reason = sweep.work(data)
        except StoreError as exc:
            raise StoreError(f"{exc}\n{sweep.stopped_note()}") from None
        finally:
            sweep.tracker.close(None)  # the parent run stays as it is: the coordinator closes it
        if reason == "budget" and sweep.trials_run == 0 and sweep.engine.counted() == sweep.counted_at_open:
            counted = sweep.engine.counted()
            typer.echo(
                f"sweep {loaded.name}: the budget is already spent ({counted} trials counted); "
                "nothing to run (raise budget.trials to run more)"
            )
        else:
            typer.echo(
                f"sweep {loaded.name}: this worker trained {sweep.trials_run} trials (stopped: {reason})"
            )


def _print_summary(result: SweepResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    from sweeps.running.accounting import describe

    if result.already_spent:
        console.print(_spent_line(result))

    counts = ", ".join(f"{n} {state}" for state, n in result.counts.items())
    console.print(f"\nsweep [bold]{result.name}[/]: {counts} (stopped: {result.stop_reason})")
    console.print(describe(result.totals))
    if result.best_config is None:
        console.print("no trial finished; see the failed runs in MLflow for the errors")
    else:
        config = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_config.items()
        )
        console.print(f"best: trial {result.best_trial}, {result.metric} {result.best_value:.4g}: {config}")
        frame = result.trials
        if not frame.empty:
            done = frame[frame["state"] == "complete"].dropna(subset=["value"])
            top = done.sort_values("value", ascending=result.direction == "minimize").head(5)
            table = Table("trial", "config", result.metric, "best epoch", "seconds", title="top trials")
            for _, row in top.iterrows():
                table.add_row(
                    str(row["trial"]),
                    str(row["run_name"]).split(" ", 1)[-1],
                    f"{row['value']:.4g}",
                    f"{row['best_epoch']:.0f}",
                    f"{row['train_seconds']:.1f}",
                )
            console.print(table)
    for fault in result.faults:
        console.print(f"[yellow]not recorded:[/] {fault}")
    page = trials_page(result.tracking_uri, result.name)
    console.print(f"the trials in the MLflow UI: {page}", soft_wrap=True, markup=False, highlight=False)


@app.command("list")
def list_(tracking_uri: TrackingUri = None) -> None:
    """The built-in specs, and the sweeps in the store."""
    from sweeps.spec.schema import builtin_names, load_spec

    typer.echo("built-in specs (sweep run NAME):")
    for name in builtin_names():
        typer.echo(f"  {name:28s} {load_spec(name).description}")
    uri = existing_store(tracking_uri)
    if uri is None:
        typer.echo("\nno sweeps yet (no MLflow store here; pass --tracking-uri for another)")
        return
    quiet_libraries()
    from tracking.query import sweeps_frame

    frame = sweeps_frame(uri)
    typer.echo(f"\nsweeps in {uri}:")
    typer.echo(frame.to_string(index=False) if not frame.empty else "  none")


app.command()(ui)
app.command()(report)
app.command()(compare)


def main() -> None:
    """Console-script entry point: usage errors too become one `error:` line and exit code 2.

    `--verbose` may come anywhere on the line (`sweep run spec.yaml --verbose`); it is an
    option of the whole command, so it is moved in front of the subcommand.
    """
    args = sys.argv[1:] or ["--help"]
    if "--verbose" in args:
        args = ["--verbose", *(a for a in args if a != "--verbose")]
    try:
        code = app(args, standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: bad option, unknown command
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code or 0)
