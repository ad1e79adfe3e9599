"""The MLflow store probe: reads only, answers in seconds, names the cause."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tracking.probe import StoreUnavailable, check_tracking, redact, short_cause, sqlite_tables


def test_unreachable_server_fails_within_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(
        StoreUnavailable,
        match=r"^MLflow tracking server http://127.0.0.1:9: does not answer \(Connection refused",
    ):
        check_tracking("http://127.0.0.1:9")
    assert time.monotonic() - started < 5


def test_sqlite_files_are_read_not_written(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"\x00junk" * 100)
    with pytest.raises(StoreUnavailable, match="is not an SQLite database"):
        check_tracking(f"sqlite:///{tmp_path / 'junk.db'}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE studies (id INTEGER)")
    before = other.stat().st_mtime_ns
    with pytest.raises(
        StoreUnavailable, match=r"is an SQLite database but not an MLflow store \(tables: studies\)"
    ):
        check_tracking(f"sqlite:///{other}")
    assert other.stat().st_mtime_ns == before
    assert sqlite_tables(other) == {"studies"}
    check_tracking(f"sqlite:///{tmp_path / 'new.db'}")  # to be created: fine
    assert not (tmp_path / "new.db").exists()
    with pytest.raises(StoreUnavailable, match="the folder .* does not exist"):
        check_tracking(f"sqlite:///{tmp_path / 'no' / 'new.db'}")


def test_redact_and_short_cause() -> None:
    assert redact("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redact("http://host:5000") == "http://host:5000"
    error = OSError(
        "HTTPConnectionPool(host='h', port=9): Max retries exceeded ([Errno 111] Connection refused)"
    )
    assert short_cause(error) == "Connection refused"
