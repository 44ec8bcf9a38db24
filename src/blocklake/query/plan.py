"""What a query will read, counted before it runs: the per-query scan limits, and the dry run
that answers with the partitions, files, bytes and estimated cost instead of running.

Files, bytes and rows are those of the data files of the views a query names, as planned from
their Iceberg tables' manifests (partitions and column statistics against the time range,
``blocklake.lake.reader``): what DuckDB may read (it reads less when it needs fewer columns or
row groups) and what Athena bills at most.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blocklake.config import QueryLimits
from blocklake.errors import ClientError

ATHENA_USD_PER_TB = 5.0
"""Athena's price per TB (10^12 bytes) scanned, most regions (2026)."""
ATHENA_MIN_BYTES = 10 * 1024**2
"""Athena bills at least 10 MB per query."""
LAMBDA_USD_PER_GB_S = 0.0000133334
"""Lambda on arm64, per GB-second (2026, us-east-1)."""
LAMBDA_MEMORY_GB = 2.0
"""The query Lambda's memory (``infra/stack.py``)."""
DUCKDB_ROWS_PER_S = 6_000_000
"""Rows DuckDB filters or aggregates per second on two cores, from ``bench/query_latency.py``
(4 M rows in 0.4-0.8 s; quantiles per group take several times longer). Rows, not bytes: the
lake's Parquet is so compressed that decoding, not reading, is the cost."""
LAMBDA_BASE_S = 0.15
"""A query's fixed part: planning from the tables' metadata, answering."""


@dataclass
class TableScan:
    partitions: list[str] = field(default_factory=list)
    """``date=YYYY-MM-DD/hour=HH`` of each hour partition read (empty for unpartitioned
    tables)."""
    files: int = 0
    bytes: int = 0
    rows: int = 0


@dataclass
class Scan:
    tables: dict[str, TableScan] = field(default_factory=dict)
    """The views the query names, each with what it reads."""

    @property
    def files(self) -> int:
        return sum(t.files for t in self.tables.values())

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables.values())

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def scan_refusals(scan: Scan, limits: QueryLimits) -> list[str]:
    """Why the query may not read what it would, one message per limit it goes past, each
    naming the limit, its value and its setting; empty when within the limits."""
    refusals = []
    if scan.files > limits.max_scan_files:
        refusals.append(
            f"the query would read {scan.files} files; one query may read "
            f"{limits.max_scan_files} (BLOCKLAKE_QUERY_MAX_SCAN_FILES): narrow the time range"
        )
    if scan.bytes > limits.max_scan_bytes:
        refusals.append(
            f"the query would read {scan.bytes} bytes; one query may read "
            f"{limits.max_scan_bytes} (BLOCKLAKE_QUERY_MAX_SCAN_BYTES): narrow the time range"
        )
    return refusals


def check_scan(scan: Scan, limits: QueryLimits) -> None:
    """``ClientError`` 400 ``query_scan_limit`` naming the limit and its value when the query
    would read more files or bytes than one query may."""
    refusals = scan_refusals(scan, limits)
    if refusals:
        raise ClientError(400, "query_scan_limit", refusals[0])


def _usd(amount: float) -> float:
    """Dollars to six significant digits: ``5.24288e-05``, not ``5.2428799999999995e-05``."""
    return float(f"{amount:.6g}")


def dry_run(scan: Scan, engine: str, limits: QueryLimits) -> dict:
    """The dry run's answer: what the query would read, per view and in all, and what it would
    cost on each engine (USD, seconds), whether it is within the per-query limits and, when
    not, ``limits_exceeded``: which, each as its refusal would say."""
    refusals = scan_refusals(scan, limits)
    billed = max(scan.bytes, ATHENA_MIN_BYTES)
    seconds = LAMBDA_BASE_S + scan.rows / DUCKDB_ROWS_PER_S
    return {
        "dry_run": True,
        "engine": engine,
        "tables": {
            name: {
                "partitions": table.partitions,
                "files": table.files,
                "bytes": table.bytes,
                "rows": table.rows,
            }
            for name, table in sorted(scan.tables.items())
        },
        "partitions": sum(len(t.partitions) for t in scan.tables.values()),
        "files": scan.files,
        "bytes": scan.bytes,
        "rows": scan.rows,
        "estimate": {
            "athena_usd": _usd(billed / 1e12 * ATHENA_USD_PER_TB),
            "athena_bytes_billed": billed,
            "lambda_seconds": round(seconds, 3),
            "lambda_usd": _usd(seconds * LAMBDA_MEMORY_GB * LAMBDA_USD_PER_GB_S),
            # Every table is converted as its blocks arrive (just-in-time conversion is not
            # built), so a query never waits for conversions.
            "conversions": 0,
        },
        "within_limits": not refusals,
        "limits_exceeded": refusals,
    }
