"""Is the MLflow store usable? Asked once, quickly, before a sweep writes anything.

MLflow's client retries an unreachable tracking server for minutes by default (7 retries
with exponential backoff, 120 s per request), which looks like a hung sweep. The probe
asks once with a short timeout and no retries; during the sweep a server gets a few quick
retries (`sweep_http_settings`), so a restart of the server is ridden out but a dead one
stops the sweep within seconds, not minutes.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tracking.store import sqlite_path

__all__ = ["PROBE_SECONDS", "StoreUnavailable", "check_tracking", "short_cause", "sweep_http_settings"]

PROBE_SECONDS = 5
# During a sweep (unless the environment says otherwise): 3 retries 1, 2, 4 s apart, 30 s a request.
SWEEP_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class StoreUnavailable(Exception):
    """A store that cannot be used: names it and says why, in one line."""

    def __init__(self, what: str, uri: str, cause: str) -> None:
        self.what, self.uri, self.cause = what, uri, cause
        super().__init__(f"{what} {uri}: {cause}")


def short_cause(exc: BaseException) -> str:
    """The part of a client error a person can act on: the OS error if there is one
    (connection refused, name not known, timed out), else the error's first line."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip().rstrip(".")
    if re.search(r"timed? ?out", text, re.IGNORECASE):
        return "no answer (timed out)"
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return line[:300]


def sweep_http_settings() -> None:
    """MLflow's HTTP retry and timeout settings for a sweep, where the environment sets none."""
    for key, value in SWEEP_HTTP.items():
        os.environ.setdefault(key, value)


@contextmanager
def _probe_http_settings(seconds: float) -> Iterator[None]:
    """One try, `seconds` long, whatever the environment says; restored afterwards."""
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(seconds))),
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sqlite_tables(path: Path) -> set[str]:
    """The tables of an SQLite file, read-only; raises `ValueError` with the reason when it is
    not one (a directory, unreadable, not a database)."""
    if path.is_dir():
        raise ValueError("is a directory, not a database file")
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    if not header:
        return set()  # an empty file is an empty database to SQLite
    if header != b"SQLite format 3\x00":
        raise ValueError("is not an SQLite database (a damaged file, or some other file)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise ValueError(f"cannot be read as an SQLite database ({exc})") from None
    return {row[0] for row in rows}


def check_new_file(path: Path, make_parents: bool = False) -> str | None:
    """Why a store file could not be created at `path`, or None when it can (`make_parents`:
    the missing folders above it are created too)."""
    folder = path.parent
    while make_parents and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return (
            f"cannot be created: {folder} is not a folder"
            if folder.exists()
            else (f"cannot be created: the folder {folder} does not exist")
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot be created: the folder {folder} is not writable"
    return None


def check_database_url(url: str, seconds: float) -> None:
    """Connect to a database URL (PostgreSQL, MySQL, ...) once, with a timeout; raise
    `ValueError` with the reason when that fails. Nothing is written."""
    import sqlalchemy

    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ValueError("is not a database URL (expected e.g. postgresql://USER@HOST/DB)") from None
    connect_args = (
        {"connect_timeout": max(1, round(seconds))} if parsed.get_backend_name() != "sqlite" else {}
    )
    try:
        engine = sqlalchemy.create_engine(
            parsed, poolclass=sqlalchemy.pool.NullPool, connect_args=connect_args
        )
    except ImportError as exc:
        raise ValueError(f"needs a database driver that is not installed ({exc})") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise ValueError(short_cause(exc)) from None
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise ValueError(f"cannot connect ({_database_cause(exc)})") from None
    finally:
        engine.dispose()


def _database_cause(exc: BaseException) -> str:
    """The server's own words ("database x does not exist", "connection refused")."""
    text = str(getattr(exc, "orig", None) or exc)
    fatal = re.search(r"FATAL:\s*(.+)", text)
    if fatal:
        return fatal.group(1).strip()
    first = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"^connection failed: ", "", first[0])[:300] if first else type(exc).__name__


def redact(uri: str) -> str:
    """A URI with any password hidden, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@/]+@", r"\1***@", uri)


def check_tracking(uri: str, seconds: float = PROBE_SECONDS) -> None:
    """Raise `StoreUnavailable` when the MLflow store at `uri` cannot be used; reads only.

    A SQLite file must be an SQLite database that is MLflow's (or empty, or creatable); a
    database URL must connect; a tracking server must answer one API call within `seconds`.
    """
    what = "MLflow store"
    path = sqlite_path(uri)
    if path is not None:
        if not path.exists():
            problem = check_new_file(path)
            if problem:
                raise StoreUnavailable(what, uri, problem)
            return
        try:
            tables = sqlite_tables(path)
        except ValueError as exc:
            raise StoreUnavailable(what, uri, str(exc)) from None
        if tables and "experiments" not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise StoreUnavailable(
                what, uri, f"is an SQLite database but not an MLflow store (tables: {shown})"
            )
        if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
            raise StoreUnavailable(what, uri, "is not writable (the file or its folder)")
        return
    scheme = uri.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        _check_server(uri, seconds)
    elif scheme.split("+")[0] in ("postgresql", "postgres", "mysql", "mssql"):
        try:
            check_database_url(uri, seconds)
        except ValueError as exc:
            raise StoreUnavailable(what, redact(uri), str(exc)) from None


def _check_server(uri: str, seconds: float) -> None:
    from mlflow.exceptions import RestException
    from mlflow.tracking import MlflowClient

    what = "MLflow tracking server"
    try:
        with _probe_http_settings(seconds):
            MlflowClient(uri).search_experiments(max_results=1)
    except RestException as exc:  # it answered, with an error (authentication, not MLflow, ...)
        raise StoreUnavailable(what, redact(uri), f"answered with an error: {short_cause(exc)}") from None
    except Exception as exc:  # any other failure of the one call: the sweep could not record
        status = re.search(r"error code (\d{3}) != 200", str(exc))
        if status:
            raise StoreUnavailable(
                what, redact(uri), f"answered HTTP {status.group(1)}; is it an MLflow tracking server?"
            ) from None
        cause = short_cause(exc)
        raise StoreUnavailable(
            what, redact(uri), f"does not answer ({cause}; asked once, {seconds:g} s timeout)"
        ) from None
