"""A lock shared by every worker of a sweep, so "is there budget left? then start a trial"
is one step: N workers on a 30-trial budget start 30 trials, not 30 + N - 1.

Local workers share a file lock beside the stores; workers on many machines sharing a
PostgreSQL storage share a PostgreSQL advisory lock.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SweepLock:
    """A re-usable exclusive lock named after the sweep."""

    def __init__(self, name: str, storage_url: str | None, local_dir: Path) -> None:
        self._key = zlib.crc32(f"sweeplab:{name}".encode())
        self._engine: Any = None
        if storage_url and storage_url.startswith("postgresql"):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(storage_url, poolclass=sqlalchemy.pool.NullPool)
        else:
            local_dir.mkdir(parents=True, exist_ok=True)
            self._path = local_dir / f".sweeplab-{name}.lock"

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self._engine is not None:
            import sqlalchemy

            with self._engine.connect() as connection:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                try:
                    yield
                finally:
                    connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            return
        with self._path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
