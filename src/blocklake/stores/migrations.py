"""Applies the versioned SQL migrations of ``schemas/metadata/`` once each, in order.

A migration ``NNNN_name.sql`` applies to every dialect; ``NNNN_name.<dialect>.sql`` replaces it
for that dialect (for what portable SQL cannot say, such as PostgreSQL table partitioning).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from blocklake.format.schema import schemas_dir
from blocklake.stores.sql import SqlExecutor

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


def apply_migrations(executor: SqlExecutor, directory: Path | None = None) -> list[int]:
    """Brings the schema up to date; returns the versions applied now."""
    executor.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_time_ns BIGINT NOT NULL)"
    )
    applied = []
    for version, path in migrations_for(executor.dialect, directory):
        with executor.transaction():
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
