"""Athena over the Glue tables the stack defines, answering the same SQL as the DuckDB engine.

A query goes through the same allow-list as on DuckDB (``blocklake.query.duckdb_sql``: one query
over the views, allowed functions only), is transpiled by sqlglot from DuckDB's dialect to
Athena's, and reads the views of ``schemas/views.toml`` as common table expressions over the
tenant's Iceberg tables, ``"<database>_<tenant>"."<table>"`` (each tenant's tables are in a
Glue database of their own, registered by the committer: ``blocklake.lake.catalog``),
restricted to the time range, which Athena prunes by the tables' hidden ``hour()`` partitions
and column statistics (``blocklake.lake.layout``); derived views are common table expressions
over those.

It runs through pyathena in the stack's workgroup, whose per-query scan cap Athena enforces;
the query is cancelled (``StopQueryExecution``) when it outlasts ``QueryLimits.timeout_s``.
Results come back in pages of ``GetQueryResults`` until ``max_rows``; maps, arrays and rows
arrive as JSON text. ``DESCRIBE``, ``SHOW TABLES`` and ``SUMMARIZE`` run on the DuckDB engine
only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from blocklake.config import QueryLimits
from blocklake.errors import ClientError
from blocklake.query.duckdb_sql import check_query
from blocklake.query.engine import QueryRequest, QueryResult
from blocklake.query.views import derived_views, view_names, views, views_read

ATHENA_TYPES = {
    "boolean": (pa.bool_(), "BOOLEAN"),
    "tinyint": (pa.int8(), "TINYINT"),
    "smallint": (pa.int16(), "SMALLINT"),
    "integer": (pa.int32(), "INTEGER"),
    "bigint": (pa.int64(), "BIGINT"),
    "real": (pa.float32(), "FLOAT"),
    "float": (pa.float32(), "FLOAT"),
    "double": (pa.float64(), "DOUBLE"),
    "char": (pa.string(), "VARCHAR"),
    "varchar": (pa.string(), "VARCHAR"),
    "date": (pa.date32(), "DATE"),
    "timestamp": (pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE"),
    "timestamp with time zone": (pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE"),
    "varbinary": (pa.binary(), "BLOB"),
}
"""Arrow type and SQL type name (as DuckDB names it, so answers look alike) of Athena's types;
any other (``array``, ``map``, ``row``, ``json``) is answered as JSON text, ``decimal`` as a
decimal of its precision and scale."""
SCAN_LIMIT_REASON = "Bytes scanned limit was exceeded"


def athena_sql(request: QueryRequest, database: str) -> str:
    """The tenant's query in Athena's dialect, reading each view it names as a CTE over the
    tenant's table ``"<database>_<tenant>"."<table>"`` restricted to the range."""
    try:
        tree = sqlglot.parse_one(request.sql, read="duckdb")
    except sqlglot.errors.ParseError as error:
        raise _untranslatable(error) from None
    if not isinstance(tree, exp.Query):
        raise ClientError(
            400,
            "not_allowed",
            "on the athena engine only queries run: DESCRIBE, SHOW TABLES and SUMMARIZE run "
            "on duckdb",
        )
    tree = tree.transform(_map_lookup)
    # A name that no CTE of ours answers would resolve to a table of the session's database,
    # not the view: so no CTE of the query may take a view's name, at any depth, and every
    # view the query names gets its pinned CTE at the top.
    shadowing = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)} & view_names()
    if shadowing:
        raise ClientError(
            400,
            "not_allowed",
            f"on the athena engine a WITH query cannot take a view's name "
            f"({', '.join(sorted(shadowing))}): rename it",
        )
    named = {table.name.lower() for table in tree.find_all(exp.Table)}
    tenant_database = f"{database}_{request.tenant}"
    ctes = []
    for name in sorted(views_read(named)):
        view = views()[name]
        # Glue declares the lake's timestamps without a zone: they hold UTC wall time.
        select = view.select(
            f'"{tenant_database}"."{name}"', request.begin_ns, request.end_ns, zoned=False
        )
        ctes.append(
            exp.CTE(this=sqlglot.parse_one(select, read="duckdb"), alias=exp.to_identifier(name))
        )
    for name in sorted(named & set(derived_views())):  # after the views they read
        derived = sqlglot.parse_one(derived_views()[name].sql, read="duckdb")
        ctes.append(exp.CTE(this=derived, alias=exp.to_identifier(name)))
    if ctes:
        existing = tree.args.get("with_")
        tree.set(
            "with_",
            exp.With(
                expressions=ctes + (existing.expressions if existing else []),
                recursive=existing.args.get("recursive") if existing else None,
            ),
        )
    try:
        return tree.sql(dialect="athena", unsupported_level=ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as error:
        raise _untranslatable(error) from None


def _untranslatable(error: Exception) -> ClientError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ClientError(
        400,
        "not_translatable",
        f"the athena engine cannot run this query ({first}); the duckdb engine can",
    )


def _map_columns() -> frozenset[str]:
    return frozenset(
        column.name
        for view in views().values()
        for column in view.table.columns
        if column.type.startswith("map<")
    )


def _map_lookup(node: exp.Expression) -> exp.Expression:
    """``properties['k']`` as ``element_at(properties, 'k')``: null for a missing key, as in
    DuckDB, where Athena's subscript fails the query."""
    if (
        isinstance(node, exp.Bracket)
        and isinstance(node.this, exp.Column)
        and node.this.name in _map_columns()
        and len(node.expressions) == 1
    ):
        return exp.Anonymous(this="ELEMENT_AT", expressions=[node.this, node.expressions[0]])
    return node


def _arrow_column(values: list[Any], athena_type: str, precision: int, scale: int) -> pa.Array:
    if athena_type in ATHENA_TYPES:
        arrow_type = ATHENA_TYPES[athena_type][0]
        if pa.types.is_timestamp(arrow_type):
            values = [
                v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
                for v in values
            ]
        return pa.array(values, arrow_type)
    if athena_type == "decimal":
        return pa.array(values, pa.decimal128(max(precision, 1), scale))
    return pa.array(
        [None if v is None else json.dumps(v, default=str) for v in values], pa.string()
    )


def _sql_type(athena_type: str, precision: int, scale: int) -> str:
    if athena_type in ATHENA_TYPES:
        return ATHENA_TYPES[athena_type][1]
    if athena_type == "decimal":
        return f"DECIMAL({precision},{scale})"
    return athena_type.upper()


class AthenaEngine:
    """``QueryEngine`` on Athena; ``connect`` gives a pyathena connection (``pyathena.connect``
    with the workgroup and the Glue database as schema)."""

    dialect = "athena"

    def __init__(
        self,
        connect: Callable[[], Any],
        database: str,
        workgroup: str,
        limits: QueryLimits | None = None,
    ) -> None:
        self._connect = connect
        self.database = database
        self.workgroup = workgroup
        self.limits = limits or QueryLimits()

    @cached_property
    def connection(self) -> Any:
        return self._connect()

    @cached_property
    def scan_cap_bytes(self) -> int | None:
        """The workgroup's bytes-scanned cutoff per query, as Athena enforces it."""
        response = self.connection.client.get_work_group(WorkGroup=self.workgroup)
        configuration = response["WorkGroup"].get("Configuration", {})
        return configuration.get("BytesScannedCutoffPerQuery")

    def run(self, request: QueryRequest) -> QueryResult:
        check_query(request.sql, view_names())
        sql = athena_sql(request, self.database)
        cursor = self.connection.cursor()
        started: list[str] = []
        timed_out = threading.Event()
        lock = threading.Lock()

        def cancel() -> None:
            with lock:
                timed_out.set()
                if started:
                    cursor.cancel()

        def on_start(query_id: str) -> None:
            with lock:
                started.append(query_id)
                if timed_out.is_set():  # the timer fired before Athena named the query
                    cursor.cancel()

        timer = threading.Timer(self.limits.timeout_s, cancel)
        timer.start()
        try:
            cursor.execute(sql, work_group=self.workgroup, on_start_query_execution=on_start)
        except Exception as error:  # pyathena's OperationalError and DatabaseError
            raise self._error_for(cursor, error, timed_out.is_set()) from None
        finally:
            timer.cancel()
        rows: list[tuple] = []
        while len(rows) <= request.max_rows:
            page = cursor.fetchmany(min(1000, request.max_rows + 1 - len(rows)))
            if not page:
                break
            rows.extend(page)
        truncated_by = "max_rows" if len(rows) > request.max_rows else None
        rows = rows[: request.max_rows]
        description = cursor.description or []
        columns, arrays = [], []
        for index, (name, athena_type, _, _, precision, scale, _) in enumerate(description):
            athena_type = athena_type.lower()
            columns.append((name, _sql_type(athena_type, precision, scale)))
            values = [row[index] for row in rows]
            arrays.append(_arrow_column(values, athena_type, precision, scale))
        table = pa.table(arrays, names=[name for name, _ in columns]) if columns else pa.table({})
        return QueryResult(
            columns, table, truncated_by, scanned_bytes=cursor.data_scanned_in_bytes or 0
        )

    def _error_for(self, cursor: Any, error: Exception, timed_out: bool) -> ClientError:
        """Which limit stopped the query, or Athena's own message when the query failed."""
        if timed_out:
            return ClientError(
                504,
                "query_timeout",
                f"the query ran longer than {self.limits.timeout_s:g} s "
                "(BLOCKLAKE_QUERY_TIMEOUT_S) and was cancelled",
            )
        reason = str(error)
        if SCAN_LIMIT_REASON in reason:
            return ClientError(
                400,
                "athena_scan_limit",
                f"the query scanned more than the workgroup's cap of {self.scan_cap_bytes} "
                "bytes per query (the stack's athena_bytes_scanned_per_query setting) and was "
                "cancelled: narrow the time range or the columns",
            )
        if "SCHEMA_NOT_FOUND" in reason or "TABLE_NOT_FOUND" in reason:
            # A tenant's database and tables are registered by its first commit.
            return ClientError(
                404,
                "no_tables",
                "no rows were ever recorded for this tenant: its tables do not exist yet",
            )
        query_id = getattr(cursor, "query_id", None)
        if query_id is None:  # never started: Athena refused the request itself
            return ClientError(502, "athena_unavailable", "Athena did not accept the query")
        return ClientError(400, "query_failed", reason)
