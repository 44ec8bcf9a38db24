"""A throwaway database on the real PostgreSQL the tests use, dropped when done."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

POSTGRES_URL = os.environ.get("BLOCKLAKE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A database of this run's own; yields the URL to reach it. Fails (never skips) when
    PostgreSQL cannot be reached: the metadata stores are tested for real or not at all."""
    try:
        admin = psycopg.connect(f"{POSTGRES_URL}/test", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL is needed at {POSTGRES_URL} (set BLOCKLAKE_TEST_POSTGRES_URL): {error}",
            pytrace=False,
        )
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()
