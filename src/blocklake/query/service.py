"""The query use case: a request document in, a result shaped as JSON, CSV or Arrow IPC out."""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json

import pyarrow as pa
import pyarrow.csv as pa_csv

from blocklake.errors import ClientError
from blocklake.query.engine import QueryRequest, QueryResult, parse_time

FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
}


def _json_value(value: object) -> object:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def request_from(document: dict, tenant: str, max_rows: int) -> tuple[QueryRequest, str]:
    sql = document.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ClientError(400, "invalid_field", "field 'sql': expected a non-empty string")
    for name in ("begin", "end"):
        if name not in document:
            raise ClientError(
                400, "invalid_field", f"field {name!r} is missing: give the time range"
            )
    begin, end = parse_time(document["begin"], "begin"), parse_time(document["end"], "end")
    if begin >= end:
        raise ClientError(400, "invalid_field", "field 'begin' must be before 'end'")
    output = document.get("format", "json")
    if output not in FORMATS:
        raise ClientError(400, "invalid_field", f"field 'format': expected one of {list(FORMATS)}")
    limit = document.get("max_rows", max_rows)
    if not isinstance(limit, int) or not 0 < limit <= max_rows:
        raise ClientError(400, "invalid_field", f"field 'max_rows': expected 1..{max_rows}")
    return QueryRequest(tenant, sql, begin, end, limit), output


def to_json(result: QueryResult) -> dict:
    table = result.table
    maps = {i for i, field in enumerate(table.schema) if pa.types.is_map(field.type)}
    rows = [
        [dict(value) if i in maps and value is not None else value for i, value in enumerate(row)]
        for row in zip(*(column.to_pylist() for column in table.columns), strict=True)
    ]
    return {
        "columns": [{"name": name, "type": sql_type} for name, sql_type in result.columns],
        "rows": json.loads(json.dumps(rows, default=_json_value)),
        "row_count": result.table.num_rows,
        "truncated": result.truncated,
    }


def to_bytes(result: QueryResult, output: str) -> bytes:
    sink = io.BytesIO()
    if output == "csv":
        pa_csv.write_csv(result.table, sink)
    else:
        with pa.ipc.new_stream(sink, result.table.schema) as writer:
            writer.write_table(result.table)
    return sink.getvalue()
