"""QueryEngine port, its request and result, and the checks every engine shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from blocklake.errors import ClientError


@dataclass(frozen=True)
class QueryRequest:
    tenant: str
    sql: str
    begin_ns: int
    end_ns: int
    """Events in [begin, end): the views hold nothing else, and partitions outside are not read."""
    max_rows: int


@dataclass(frozen=True)
class QueryResult:
    columns: list[tuple[str, str]]
    """(name, SQL type) of each result column."""
    table: pa.Table
    truncated: bool
    """True when the query had more than ``max_rows`` rows and only those were kept."""


class QueryEngine(Protocol):
    def run(self, request: QueryRequest) -> QueryResult: ...


def parse_time(value: object, field: str) -> int:
    """Nanoseconds since the epoch from an integer (ns) or an ISO 8601 string (UTC if no zone)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    raise ClientError(
        400,
        "invalid_field",
        f"field {field!r}: expected an ISO 8601 time or nanoseconds, got {value!r}",
    )


HIDDEN_FUNCTIONS = frozenset(
    {"duckdb_secrets", "which_secret", "duckdb_settings", "current_setting", "duckdb_extensions"}
)
"""Engine introspection that would show a tenant the service's credentials or configuration."""


def check_read_only(sql: str, dialect: str) -> None:
    """One query statement and nothing else: no DDL, no COPY, no SET, no second statement."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except ParseError as error:
        raise ClientError(400, "invalid_sql", f"SQL does not parse: {error}") from None
    if len(statements) != 1:
        raise ClientError(400, "invalid_sql", f"expected one statement, got {len(statements)}")
    if not isinstance(statements[0], exp.Query):
        kind = type(statements[0]).__name__.upper()
        raise ClientError(400, "invalid_sql", f"only queries are allowed, not {kind}")
    for function in statements[0].find_all(exp.Func):
        name = function.name if isinstance(function, exp.Anonymous) else function.sql_name()
        if name.lower() in HIDDEN_FUNCTIONS:
            raise ClientError(400, "invalid_sql", f"function {name} is not available to queries")
