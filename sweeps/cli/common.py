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


def quiet_libraries() -> None:
    """Keep TensorFlow's and Optuna's per-trial chatter out of the progress display."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)


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
