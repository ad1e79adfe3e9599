"""What every `sweep` command shares: the store options, quiet libraries, and the one-line
errors (exit code 2) that user mistakes end with."""

from __future__ import annotations

import os
from typing import Annotated, NoReturn

import typer

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)."
    ),
]


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def verbose() -> bool:
    """`sweep --verbose` (or SWEEPLAB_VERBOSE=1): the libraries' own logs are shown."""
    from sweeps.cli.quiet import VERBOSE_ENV

    return os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


def quiet_libraries() -> None:
    """Keep Optuna's and MLflow's per-trial chatter out of the progress display (TensorFlow's
    is kept out from the start, by `sweeps.cli.quiet`), unless `--verbose`."""
    if verbose():
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def show_warnings_as_lines() -> None:
    """A dataset warning (e.g. class ids with gaps) reads as one `warning:` line on stderr,
    not as Python's two-line warning with a source line."""
    import warnings

    from experiments.errors import DatasetWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, DatasetWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def user_errors() -> tuple[type[BaseException], ...]:
    from experiments.errors import DatasetError, ModelError
    from sweeps.errors import SweepError

    return (SweepError, DatasetError, ModelError)


Storage = Annotated[
    str | None,
    typer.Option(
        "--storage", help="Optuna storage: postgresql://..., sqlite:///..., or a journal file path."
    ),
]


def existing_store(tracking_uri: str | None) -> str | None:
    """The resolved tracking URI, or None where it names a SQLite file that does not exist
    (a command that only reads must never create an empty store)."""
    from tracking.store import resolve_tracking_uri, sqlite_path

    try:
        uri = resolve_tracking_uri(tracking_uri)
    except ValueError as exc:
        fail(str(exc))
    path = sqlite_path(uri)
    return None if path is not None and not path.exists() else uri


def no_store(tracking_uri: str | None) -> NoReturn:
    from tracking.store import resolve_tracking_uri, sqlite_path

    path = sqlite_path(resolve_tracking_uri(tracking_uri))
    fail(f"no MLflow store at {path}: run `sweep run` first, or pass --tracking-uri")
