"""The small SQL port the metadata store is written against, and its SQLite adapter.

Statements use ``:name`` parameters (SQLite and the RDS Data API take them as they are; the
psycopg adapter rewrites them), so the metadata store's SQL is written once for every backend.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

Params = Mapping[str, object]
Row = dict[str, object]


class SqlExecutor(Protocol):
    dialect: str
    """``sqlite`` or ``postgres``: picks the migrations written for that dialect, if any."""

    def execute(self, sql: str, params: Params | None = None) -> int:
        """Runs one statement; returns the number of rows it changed."""
        ...

    def query(self, sql: str, params: Params | None = None) -> list[Row]: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Statements inside commit together or not at all."""
        ...


class SqliteExecutor:
    """One connection shared by threads behind a lock: SQLite serializes writers anyway."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._connection.row_factory = sqlite3.Row
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._depth = 0

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._lock:
            return self._connection.execute(sql, params or {}).rowcount

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        with self._lock:
            return [dict(row) for row in self._connection.execute(sql, params or {})]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._connection.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer:
                    self._connection.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()
