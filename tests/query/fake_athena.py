"""Athena as pyathena calls it, recording every call, answering from the lake's own files.

No AWS account is reachable from the tests, so ``FakeAthena`` plays boto3's Athena client:
``StartQueryExecution`` turns Athena's SQL back into DuckDB's with sqlglot and runs it over the
Iceberg tables of a local lake, read as Athena reads the Glue tables (``iceberg_scan`` of each
table's metadata location, one database per tenant); ``GetQueryExecution`` walks the query
through QUEUED and RUNNING; ``GetQueryResults`` pages the rows as Athena does (text values, a
header row first, ``NextToken``); ``StopQueryExecution`` cancels. ``script`` makes a query fail
or hang, as a test needs.
"""

from __future__ import annotations

import datetime
import decimal
import importlib.util
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot


def load_iceberg(connection: duckdb.DuckDBPyConnection) -> None:
    """DuckDB's avro and iceberg extensions, from their wheels."""
    for name in ("avro", "iceberg"):
        root = Path(importlib.util.find_spec(f"duckdb_extension_{name}").origin).parent
        (path,) = root.rglob(f"v{duckdb.__version__}/{name}.duckdb_extension")
        connection.execute(f"LOAD '{path}'")


ATHENA_OF_DUCKDB = {
    "VARCHAR": "varchar",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "real",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp",  # the Glue tables' timestamps have no zone
}


def _athena_type(duckdb_type: str) -> tuple[str, int, int]:
    if duckdb_type in ATHENA_OF_DUCKDB:
        return ATHENA_OF_DUCKDB[duckdb_type], 0, 0
    if duckdb_type == "HUGEINT":
        return "decimal", 38, 0
    if duckdb_type.startswith("DECIMAL("):
        precision, scale = duckdb_type[8:-1].split(",")
        return "decimal", int(precision), int(scale)
    if duckdb_type.startswith("MAP("):
        return "map", 0, 0
    if duckdb_type.endswith("[]"):
        return "array", 0, 0
    return "varchar", 0, 0


def _text(value: Any) -> str:
    """A value as Athena writes it in GetQueryResults."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        utc = value.astimezone(datetime.UTC) if value.tzinfo else value
        return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, float | decimal.Decimal | int):
        return str(value)
    return str(value)


@dataclass
class Execution:
    request: dict
    state: str = "QUEUED"
    reason: str | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    scanned: int = 0
    polls_left: int = 2
    hang: bool = False


class FakeAthena:
    def __init__(self, lake_root: Path, database: str, workgroup: str, scan_cap: int) -> None:
        self.root = lake_root
        self.database = database
        self.workgroup = workgroup
        self.scan_cap = scan_cap
        self.calls: list[tuple[str, dict]] = []
        self.executions: dict[str, Execution] = {}
        self.locations: dict[str, str] = {}
        """``"<database>"."<table>"``: its metadata location."""
        self.script: dict[str, Any] = {}
        """``fail``: a reason to fail the next query with; ``hang``: never finish on its own;
        ``page_size``: rows per GetQueryResults page at most (Athena: 1000)."""

    # -- the lake as the Glue tables describe it ----------------------------------------------

    def _database(self) -> duckdb.DuckDBPyConnection:
        """Each tenant's Glue database, its tables read as a plain Iceberg reader reads them:
        ``iceberg_scan`` of the metadata location the catalog holds (the local lake's SQLite
        catalog stands for Glue), with nothing of the project's code."""
        connection = duckdb.connect(":memory:")
        connection.execute("SET TimeZone = 'UTC'")  # Athena's sessions are in UTC
        load_iceberg(connection)
        catalog = sqlite3.connect(self.root / "catalog.db")
        try:
            rows = catalog.execute(
                "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"
            ).fetchall()
        finally:
            catalog.close()
        for namespace, table, location in rows:
            schema = f"{self.database}_{namespace.removeprefix('blocklake_')}"
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            connection.execute(
                f'CREATE VIEW "{schema}"."{table}" AS SELECT * FROM iceberg_scan(\'{location}\')'
            )
            self.locations[f'"{schema}"."{table}"'] = location
        return connection

    def _run(self, execution: Execution) -> None:
        sql = execution.request["QueryString"]
        try:
            (duckdb_sql,) = sqlglot.transpile(sql, read="athena", write="duckdb")
            relation = self._database().sql(duckdb_sql)
            execution.columns = list(zip(relation.columns, map(str, relation.types), strict=True))
            table = relation.to_arrow_table()
            columns = [column.to_pylist(maps_as_pydicts="lossy") for column in table.columns]
            execution.rows = list(zip(*columns, strict=True))
        except duckdb.CatalogException as error:  # as Athena names a table or schema it lacks
            execution.state, execution.reason = "FAILED", f"TABLE_NOT_FOUND: {error}"
            return
        except (duckdb.Error, sqlglot.errors.SqlglotError) as error:
            execution.state, execution.reason = "FAILED", str(error)
            return
        for name, location in self.locations.items():
            if name in sql:
                files = (Path(location).parent.parent / "data").rglob("*.parquet")
                execution.scanned += sum(f.stat().st_size for f in files)
        if execution.scanned > self.scan_cap:
            execution.state = "FAILED"
            execution.reason = "Query cancelled! : Bytes scanned limit was exceeded"

    # -- boto3's Athena client, the calls pyathena makes --------------------------------------

    def start_query_execution(self, **request: Any) -> dict:
        self.calls.append(("start_query_execution", request))
        query_id = str(uuid.uuid4())
        execution = Execution(request, hang=bool(self.script.get("hang")))
        if "fail" in self.script:
            execution.state, execution.reason = "FAILED", self.script["fail"]
        elif not execution.hang:
            self._run(execution)
        self.executions[query_id] = execution
        return {"QueryExecutionId": query_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict:
        self.calls.append(("get_query_execution", {"QueryExecutionId": QueryExecutionId}))
        execution = self.executions[QueryExecutionId]
        state = execution.state
        if state not in ("FAILED", "CANCELLED"):
            if execution.hang or execution.polls_left > 0:
                execution.polls_left -= 1
                state = "RUNNING" if execution.polls_left < 1 else "QUEUED"
            else:
                state = execution.state = "SUCCEEDED"
        status: dict[str, Any] = {"State": state}
        if execution.reason:
            status["StateChangeReason"] = execution.reason
        return {
            "QueryExecution": {
                "QueryExecutionId": QueryExecutionId,
                "Query": execution.request["QueryString"],
                "StatementType": "DML",
                "WorkGroup": execution.request.get("WorkGroup"),
                "Status": status,
                "Statistics": {"DataScannedInBytes": execution.scanned},
                "ResultConfiguration": {"OutputLocation": f"s3://results/{QueryExecutionId}.csv"},
            }
        }

    def get_query_results(
        self, QueryExecutionId: str, MaxResults: int, NextToken: str | None = None
    ) -> dict:
        self.calls.append(
            ("get_query_results", {"QueryExecutionId": QueryExecutionId, "NextToken": NextToken})
        )
        execution = self.executions[QueryExecutionId]
        size = min(MaxResults, self.script.get("page_size", 1000))
        start = int(NextToken or 0)
        rows = []
        if start == 0:  # Athena's first page starts with the column labels
            rows.append({"Data": [{"VarCharValue": name} for name, _ in execution.columns]})
            size -= 1
        for row in execution.rows[start : start + size]:
            rows.append({"Data": [{} if v is None else {"VarCharValue": _text(v)} for v in row]})
        info = []
        for name, duckdb_type in execution.columns:
            athena_type, precision, scale = _athena_type(duckdb_type)
            info.append(
                {
                    "Name": name,
                    "Label": name,
                    "Type": athena_type,
                    "Precision": precision,
                    "Scale": scale,
                    "Nullable": "UNKNOWN",
                }
            )
        response: dict[str, Any] = {
            "ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": info}}
        }
        if start + size < len(execution.rows):
            response["NextToken"] = str(start + size)
        return response

    def stop_query_execution(self, QueryExecutionId: str) -> dict:
        self.calls.append(("stop_query_execution", {"QueryExecutionId": QueryExecutionId}))
        execution = self.executions[QueryExecutionId]
        execution.state, execution.reason = "CANCELLED", "Query was cancelled by user"
        return {}

    def get_work_group(self, WorkGroup: str) -> dict:
        self.calls.append(("get_work_group", {"WorkGroup": WorkGroup}))
        return {
            "WorkGroup": {
                "Name": WorkGroup,
                "Configuration": {"BytesScannedCutoffPerQuery": self.scan_cap},
            }
        }

    def called(self, name: str) -> list[dict]:
        return [request for call, request in self.calls if call == name]


class FakeSession:
    """A boto3 session whose only client is the fake Athena (pyathena makes nothing else
    unless it reads results from S3, which these queries never ask it to)."""

    def __init__(self, athena: FakeAthena) -> None:
        self.athena = athena

    def client(self, service: str, **kwargs: Any) -> Any:
        if service == "athena":
            return self.athena
        return None
