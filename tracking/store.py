"""Which MLflow store a sweep writes to, and where its artifacts land."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """`--tracking-uri`, else `MLFLOW_TRACKING_URI`, else a SQLite file in the working directory.

    A relative SQLite path is made absolute so that workers and `sweep ui` started from
    elsewhere point at the same file.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = sqlite_path(uri)
    if path is not None:
        return f"sqlite:///{path.resolve()}"
    if "://" not in uri:  # a plain directory or file path: MLflow's file store is deprecated
        raise ValueError(f"tracking URI {uri!r} is not a URI; use sqlite:///PATH.db or http://HOST:PORT")
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, else None."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def local_dir(uri: str) -> Path:
    """The folder that holds local state (SQLite store, artifacts, Optuna journal) for a store."""
    path = sqlite_path(uri)
    return path.parent if path is not None else Path.cwd()


def artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a SQLite store go beside the database; a tracking server decides its own."""
    path = sqlite_path(uri)
    if path is None:
        return None
    return (path.parent / "mlartifacts" / experiment).resolve().as_uri()
