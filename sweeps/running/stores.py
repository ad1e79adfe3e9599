"""A sweep's two stores: checked before either is written, and named when one fails mid-sweep.

Before: the MLflow store (`tracking.probe`) and the engine's state (an Optuna storage: a
database URL that must connect, or a journal file that must be whole; a KerasTuner project
whose files must parse) are only read, so a store that cannot be used ends the command
with one line naming its URI and the cause, and nothing written to the other.

Mid-sweep: an error that escapes the engine's loop from inside MLflow's client or Optuna's
storage is a store failing, not a bug; `failed_store` says which, so the sweep can stop
with a message naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sweeps.errors import StoreError
from tracking.probe import (
    PROBE_SECONDS,
    StoreUnavailable,
    check_database_url,
    check_new_file,
    check_tracking,
    redact,
    sqlite_tables,
)

if TYPE_CHECKING:
    from sweeps.spec.schema import Spec

__all__ = ["check_engine_state", "check_stores", "failed_store"]


def check_stores(spec: Spec, tracking_uri: str, storage: str | None, local_dir: Path) -> None:
    """Raise `StoreError` (exit 2) when either store cannot be used; writes nothing."""
    try:
        check_engine_state(spec, storage, local_dir)
        check_tracking(tracking_uri)
    except StoreUnavailable as exc:
        raise StoreError(str(exc)) from None


def check_engine_state(spec: Spec, storage: str | None, local_dir: Path) -> None:
    """The engine's own store: Optuna's storage, or KerasTuner's project folder."""
    if spec.engine.name == "kerastuner":
        _check_project(local_dir / "kerastuner" / spec.name)
        return
    if storage and "://" in storage:
        _check_optuna_url(storage)
        return
    from sweeps.engines.base import JOURNAL_FILE

    path = Path(storage.removeprefix("journal:")) if storage else local_dir / JOURNAL_FILE
    _check_journal(path, storage or f"journal:{path}")


def _check_optuna_url(url: str) -> None:
    what = "Optuna storage"
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            problem = check_new_file(path)
            if problem:
                raise StoreUnavailable(what, url, problem)
            return
        try:
            tables = sqlite_tables(path)
        except ValueError as exc:
            raise StoreUnavailable(what, url, str(exc)) from None
        if tables and "studies" not in tables:
            shown = ", ".join(sorted(tables)[:5])
            raise StoreUnavailable(
                what, url, f"is an SQLite database but not an Optuna storage (tables: {shown})"
            )
        return
    try:
        check_database_url(url, PROBE_SECONDS)
    except ValueError as exc:
        raise StoreUnavailable(what, redact(url), str(exc)) from None


def _check_journal(path: Path, label: str) -> None:
    """A journal must be a file of JSON lines; Optuna itself would fail on the first bad one
    with a bare JSON error, or (a folder) with a traceback."""
    what = "Optuna storage"
    if not path.exists():
        problem = check_new_file(path, make_parents=True)
        if problem:
            raise StoreUnavailable(what, label, problem)
        return
    if path.is_dir():
        raise StoreUnavailable(what, label, "is a directory, not a journal file")
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    break  # a last line still being written: Optuna skips it too
                try:
                    json.loads(line)
                except ValueError:
                    raise StoreUnavailable(
                        what,
                        label,
                        f"line {number} is not a journal entry ({line[:40]!r}): the file is damaged "
                        "or is not an Optuna journal",
                    ) from None
    except OSError as exc:
        raise StoreUnavailable(what, label, f"cannot be read ({exc.strerror or exc})") from None


def _check_project(folder: Path) -> None:
    """KerasTuner reloads its project from JSON files; a damaged one would raise on reload."""
    if not folder.exists():
        problem = check_new_file(folder, make_parents=True)
        if problem:
            raise StoreUnavailable("KerasTuner project", str(folder), problem)
        return
    if not folder.is_dir():
        raise StoreUnavailable("KerasTuner project", str(folder), "is not a folder")
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("trial_*/*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreUnavailable(
                "KerasTuner project", str(folder), f"{path.relative_to(folder)} cannot be read ({exc})"
            ) from None


def failed_store(exc: BaseException) -> str | None:
    """Which store an error escaping the engine's loop came from: "MLflow" when it was raised
    inside MLflow's client, "Optuna" when Optuna's storage (or the database driver under it)
    could not read or write, None when neither (a bug, a bad config: not a store failure).

    Optuna's storages also raise ValueError for calls they refuse (a changed distribution),
    so only I/O and database errors count as the storage failing."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == "mlflow" or module.startswith("mlflow."):
            return "MLflow"
        if module.startswith(("optuna.storages", "sqlalchemy")):
            return "Optuna" if _is_io_error(exc) else None
        tb = tb.tb_next
    return None


def _is_io_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(
        cls.__module__.startswith("sqlalchemy") or cls.__name__ == "StorageInternalError"
        for cls in type(exc).__mro__
    )
