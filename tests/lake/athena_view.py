"""Athena's view of the lake: each table as a plain Iceberg reader sees it, DuckDB's
``iceberg_scan`` of the metadata location the catalog (the local SQLite ``SqlCatalog``) holds,
with nothing of the project's code in between."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb

from tests.query.fake_athena import load_iceberg


def metadata_location(root: Path, tenant: str, table: str) -> str | None:
    catalog = sqlite3.connect(root / "catalog.db")
    try:
        row = catalog.execute(
            "SELECT metadata_location FROM iceberg_tables "
            "WHERE table_namespace = ? AND table_name = ?",
            (f"blocklake_{tenant}", table),
        ).fetchone()
    finally:
        catalog.close()
    return row[0] if row else None


def rows(root: Path, tenant: str, table: str, sql: str = "SELECT * FROM t") -> list[tuple]:
    """``sql`` over the table as ``t`` (no rows when the table does not exist)."""
    location = metadata_location(root, tenant, table)
    if location is None:
        return []
    connection = duckdb.connect(":memory:")
    try:
        load_iceberg(connection)
        connection.execute(f"CREATE VIEW t AS SELECT * FROM iceberg_scan('{location}')")
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def count(root: Path, tenant: str, table: str) -> int:
    found = rows(root, tenant, table, "SELECT count(*) FROM t")
    return found[0][0] if found else 0
