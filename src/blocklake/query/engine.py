"""QueryEngine port, its request and result, and the time range every engine shares."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from blocklake.errors import ClientError


@dataclass(frozen=True)
class QueryRequest:
    tenant: str
    sql: str
    begin_ns: int
    end_ns: int
    """Events in [begin, end): the views hold nothing else, and partitions outside are not read."""
    max_rows: int
    engine: str = "duckdb"
    """Which engine answers: ``duckdb`` or ``athena``."""
    dry_run: bool = False
    """Say what the query would read and cost instead of running it."""


@dataclass(frozen=True)
class QueryResult:
    columns: list[tuple[str, str]]
    """(name, SQL type) of each result column."""
    table: pa.Table
    truncated_by: str | None = None
    """Why rows were cut: ``"max_rows"`` or ``"max_result_bytes"`` (the limit that was reached),
    or None when ``table`` holds every row of the answer."""
    scanned_bytes: int = 0
    """Bytes the engine read or may have read: Athena's ``DataScannedInBytes``; on DuckDB the
    size of the files of the views the query names."""


class QueryEngine(Protocol):
    def run(self, request: QueryRequest) -> QueryResult: ...


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME_NS = 2**63 - 1
"""The last instant the lake's timestamps can hold (2262-04-11); times are kept in
[0, MAX_TIME_NS]: a range reaching past either end means "from the start" or "to the end"."""


def parse_time(value: object, field: str) -> int:
    """Nanoseconds since the epoch from an integer (ns) or an ISO 8601 string (UTC if no zone),
    clamped to [0, ``MAX_TIME_NS``]; ``ClientError`` 400 naming ``field`` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return min(max(value, 0), MAX_TIME_NS)
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = int((moment - EPOCH).total_seconds())
            return min(max(seconds * 1_000_000_000 + moment.microsecond * 1000, 0), MAX_TIME_NS)
    raise ClientError(
        400,
        "invalid_field",
        f"field {field!r}: expected an ISO 8601 time or nanoseconds, got {value!r}",
    )
