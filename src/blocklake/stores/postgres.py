"""SqlExecutor on PostgreSQL through psycopg: for the local server and self-managed databases."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg
from psycopg.rows import dict_row

from blocklake.stores.named_params import parse_named
from blocklake.stores.sql import Params, Row


class PsycopgExecutor:
    """A few pooled autocommit connections shared by threads.

    A thread borrows a connection for one statement, or keeps it for a whole ``transaction()``,
    so the local server's request threads run side by side instead of queueing on one lock;
    at most ``max_connections`` are open, and a connection that broke is dropped, not reused.
    """

    dialect = "postgres"

    def __init__(self, conninfo: str, max_connections: int = 4) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.Connection] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._transaction_connection = threading.local()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        bound = getattr(self._transaction_connection, "value", None)
        if bound is not None:
            yield bound
            return
        with self._slots:
            with self._idle_lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None or connection.closed:
                connection = self._connect()
            try:
                yield connection
            finally:
                idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                if connection.broken or connection.closed or not idle:
                    connection.close()
                else:
                    with self._idle_lock:
                        self._idle.append(connection)

    def execute(self, sql: str, params: Params | None = None) -> int:
        with self._connection() as connection:
            return connection.execute(parse_named(sql).pyformat, dict(params or {})).rowcount

    def query(self, sql: str, params: Params | None = None) -> list[Row]:
        with self._connection() as connection:
            return connection.execute(parse_named(sql).pyformat, dict(params or {})).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A nested call joins the outer transaction, as with the SQLite and Data API adapters."""
        if getattr(self._transaction_connection, "value", None) is not None:
            yield
            return
        with self._connection() as connection:
            self._transaction_connection.value = connection
            try:
                with connection.transaction():
                    yield
            finally:
                self._transaction_connection.value = None

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
