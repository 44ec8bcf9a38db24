"""The query use case: a request document in, a result shaped as JSON, CSV or Arrow IPC out.

Every answer is at most ``max_bytes`` long: rows past that are cut, and the answer says so (the
``truncated`` and ``truncated_by`` fields of JSON, the ``X-Blocklake-Truncated`` header of CSV and
Arrow). JSON is strict (RFC 8259): no ``NaN`` or ``Infinity`` literals.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import math
from collections.abc import Callable

import pyarrow as pa
import pyarrow.csv as pa_csv

from blocklake.errors import ClientError
from blocklake.query.engine import QueryRequest, QueryResult, parse_time

FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
}
ENGINES = ("duckdb",)
"""Engines a request may name in ``engine`` (Athena is still to come)."""
MAX_SQL_CHARS = 100_000
SLICE_ROWS = 1024
"""Rows serialized at a time while the answer grows towards its byte cap."""
TRUNCATED_HEADER = "X-Blocklake-Truncated"

_SPECIAL_FLOATS = {math.inf: "Infinity", -math.inf: "-Infinity"}


def request_from(document: dict, tenant: str, max_rows: int) -> tuple[QueryRequest, str]:
    """The query a request document asks for, and its output format; ``ClientError`` 400
    naming the field for anything malformed."""
    sql = document.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ClientError(400, "invalid_field", "field 'sql': expected a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise ClientError(400, "invalid_field", f"field 'sql': over {MAX_SQL_CHARS} characters")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError(
            400, "invalid_field", "field 'sql': not valid Unicode (a lone surrogate)"
        ) from None
    for name in ("begin", "end"):
        if name not in document:
            raise ClientError(
                400, "invalid_field", f"field {name!r} is missing: give the time range"
            )
    begin, end = parse_time(document["begin"], "begin"), parse_time(document["end"], "end")
    if begin >= end:
        raise ClientError(400, "invalid_field", "field 'begin' must be before 'end'")
    engine = document.get("engine", "duckdb")
    if engine not in ENGINES:
        raise ClientError(400, "invalid_field", f"field 'engine': expected one of {list(ENGINES)}")
    output = document.get("format", "json")
    if output not in FORMATS:
        raise ClientError(400, "invalid_field", f"field 'format': expected one of {list(FORMATS)}")
    limit = document.get("max_rows", max_rows)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= max_rows:
        raise ClientError(400, "invalid_field", f"field 'max_rows': expected 1..{max_rows}")
    return QueryRequest(tenant, sql, begin, end, limit), output


def _json_value(value: object) -> object:
    """``json.dumps``'s fallback for what it cannot encode itself."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        # Integers stay exact (HUGEINT sums); a fraction is a number when a double holds it
        # exactly, else its digits as a string.
        if value == value.to_integral_value():
            return int(value)
        nearest = float(value)
        return nearest if decimal.Decimal(repr(nearest)) == value else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _plain(value: object) -> object:
    """``value`` with maps as objects and non-finite floats as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _SPECIAL_FLOATS.get(value, "NaN")
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL: its three parts, as SQL keeps them
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # a map
            return {_key(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _key(key: object) -> str:
    """A map key as a JSON object key: strings as they are, anything else as its JSON text."""
    if isinstance(key, str):
        return key
    return json.dumps(_plain(key), default=_json_value).strip('"')


def _column_values(column: pa.ChunkedArray) -> list[object]:
    """Python values of ``column``; values Python cannot hold (DuckDB's ``infinity`` dates and
    timestamps, years past 9999) become text: ``"infinity"``, ``"-infinity"``, or Arrow's."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        values: list[object] = []
        for chunk in column.chunks:
            for index, scalar in enumerate(chunk):
                try:
                    values.append(scalar.as_py())
                except (OverflowError, ValueError, pa.ArrowException):
                    values.append(_out_of_range(chunk.slice(index, 1)))
        return values


def _out_of_range(value: pa.Array) -> str | None:
    """Text for the one value of ``value`` that Python cannot hold; None when Arrow has no text
    for it either (a list holding such a value)."""
    if pa.types.is_temporal(value.type):
        raw = value.view(pa.int32() if value.type.bit_width == 32 else pa.int64())[0].as_py()
        if abs(raw) in (2**31 - 1, 2**63 - 1):  # DuckDB's ±infinity
            return "infinity" if raw > 0 else "-infinity"
    try:
        return value.cast(pa.string())[0].as_py()
    except pa.ArrowException:
        return None


def _rows_json(table: pa.Table) -> list[str]:
    columns = [_column_values(column) for column in table.columns]
    return [
        json.dumps([_plain(value) for value in row], default=_json_value, allow_nan=False)
        for row in zip(*columns, strict=True)
    ]


def to_json(result: QueryResult, max_bytes: int) -> str:
    """The JSON answer: ``{columns: [{name, type}], rows: [[...]], row_count, truncated,
    truncated_by}``, at most ``max_bytes`` UTF-8 bytes."""
    head = {
        "columns": [{"name": name, "type": sql_type} for name, sql_type in result.columns],
    }
    budget = max_bytes - len(json.dumps(head)) - 100
    rows: list[str] = []
    size, full, truncated_by = 0, False, result.truncated_by
    for start in range(0, result.table.num_rows, SLICE_ROWS):
        for row in _rows_json(result.table.slice(start, SLICE_ROWS)):
            size += len(row.encode()) + 1
            full = size > budget
            if full:
                truncated_by = "max_result_bytes"
                break
            rows.append(row)
        if full:
            break
    tail = json.dumps(
        {
            "row_count": len(rows),
            "truncated": truncated_by is not None,
            "truncated_by": truncated_by,
        }
    )
    return json.dumps(head)[:-1] + ', "rows": [' + ",".join(rows) + "], " + tail[1:]


def _write_csv(table: pa.Table, sink: io.BytesIO, first: bool) -> None:
    options = pa_csv.WriteOptions(include_header=first)
    pa_csv.write_csv(table, sink, write_options=options)


def to_bytes(result: QueryResult, output: str, max_bytes: int) -> tuple[bytes, str | None]:
    """CSV or Arrow IPC of the result, at most ``max_bytes`` long, and the limit that cut it
    (``"max_rows"``, ``"max_result_bytes"``) or None. Maps, lists and structs are written as
    JSON text in CSV."""
    table = _csv_ready(result.table) if output == "csv" else result.table
    sink = io.BytesIO()
    truncated_by = result.truncated_by
    if output == "csv":
        write: Callable[[pa.Table, bool], None] = lambda part, first: _write_csv(  # noqa: E731
            part, sink, first
        )
        writer = None
    else:
        writer = pa.ipc.new_stream(sink, table.schema)
        write = lambda part, first: writer.write_table(part)  # noqa: E731
    for start in range(0, max(table.num_rows, 1), SLICE_ROWS):
        part = table.slice(start, SLICE_ROWS)
        mark = sink.tell()
        write(part, start == 0)
        if sink.tell() > max_bytes:
            sink.seek(mark)
            sink.truncate()
            if start == 0 and output == "csv":
                _write_csv(part.slice(0, 0), sink, True)  # the header still says what was asked
            truncated_by = "max_result_bytes"
            break
    if writer is not None:
        writer.close()
    return sink.getvalue(), truncated_by


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns CSV cannot hold as they are, as text: nested values (maps, lists, structs) and
    intervals as JSON, dates and times Python cannot hold as ``_column_values`` gives them."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_nested(field.type) or pa.types.is_interval(field.type):
            text = [
                None if value is None else json.dumps(_plain(value), default=_json_value)
                for value in _column_values(column)
            ]
        elif pa.types.is_temporal(field.type) and _has_out_of_range(column):
            text = [None if v is None else _json_value(v) for v in _column_values(column)]
        else:
            continue
        table = table.set_column(index, field.name, pa.array(text, pa.string()))
    return table


def _has_out_of_range(column: pa.ChunkedArray) -> bool:
    try:
        column.to_pylist()
    except (OverflowError, ValueError):
        return True
    return False
