"""Applies the versioned SQL migrations of ``schemas/metadata/`` once each, in order.

A migration ``NNNN_name.sql`` applies to every dialect; ``NNNN_name.<dialect>.sql`` replaces it
for that dialect (for what portable SQL cannot say, such as PostgreSQL table partitioning).

Several processes may apply them at once (Lambdas cold-starting together, a deploy next to a
local server): each migration runs in a transaction that first takes a database-wide lock.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from blocklake.format.schema import schemas_dir
from blocklake.stores.sql import SqlExecutor

SCHEMA_LOCK_KEY = 0x626C6F636B6C616B
"""PostgreSQL advisory lock key ("blocklak" in ASCII) held by whoever changes the schema."""

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+(?:\.([a-z]+))?\.sql$")


def migrations_for(dialect: str, directory: Path | None = None) -> list[tuple[int, Path]]:
    """(version, file) for ``dialect``, a dialect-specific file winning over the portable one."""
    chosen: dict[int, Path] = {}
    for path in sorted((directory or schemas_dir() / "metadata").glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"{path}: migration files are named NNNN_name[.dialect].sql")
        version, only_for = int(match.group(1)), match.group(2)
        if only_for == dialect or (only_for is None and version not in chosen):
            chosen[version] = path
    return sorted(chosen.items())


def split_statements(script: str) -> list[str]:
    """Statements of a migration file, comments dropped (Data API runs one statement per call)."""
    without_comments = re.sub(r"--[^\n]*", "", script)
    return [part.strip() for part in without_comments.split(";") if part.strip()]


def lock_schema_changes(executor: SqlExecutor) -> None:
    """Inside a transaction: waits for the schema lock and holds it until the transaction ends.

    A transaction-scoped lock, because the Data API may run each statement outside a transaction
    on another connection, where a session lock would never be released. SQLite needs none: its
    ``BEGIN IMMEDIATE`` already admits one writer at a time.
    """
    if executor.dialect == "postgres":
        executor.execute("SELECT 1 FROM pg_advisory_xact_lock(:key)", {"key": SCHEMA_LOCK_KEY})


def apply_migrations(executor: SqlExecutor, directory: Path | None = None) -> list[int]:
    """Brings the schema up to date; returns the versions applied now."""
    with executor.transaction():
        lock_schema_changes(executor)  # concurrent CREATE TABLE IF NOT EXISTS can still collide
        executor.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied_time_ns BIGINT NOT NULL)"
        )
    applied = []
    for version, path in migrations_for(executor.dialect, directory):
        with executor.transaction():
            lock_schema_changes(executor)
            done = executor.query(
                "SELECT version FROM schema_migrations WHERE version = :version",
                {"version": version},
            )
            if done:
                continue
            for statement in split_statements(path.read_text()):
                executor.execute(statement)
            executor.execute(
                "INSERT INTO schema_migrations (version, applied_time_ns) VALUES (:version, :now)",
                {"version": version, "now": time.time_ns()},
            )
        applied.append(version)
    return applied
