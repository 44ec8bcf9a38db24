"""The query use case: a request document in, a result shaped as JSON, CSV, Arrow IPC or Parquet
out.

Every answer is at most ``max_bytes`` long: rows past that are cut, and the answer says so in
every format: the ``X-Blocklake-Truncated`` header (``max_rows`` or ``max_result_bytes``), the
``truncated`` and ``truncated_by`` fields of JSON, and the ``blocklake.truncated_by`` schema
metadata of Arrow and Parquet. JSON is strict (RFC 8259) and safe for every parser: ``NaN`` and
``±Infinity`` are ``null``, integers are numbers up to 2^53 - 1 in magnitude (what a double, and
so JavaScript, holds exactly) and decimal strings past it, maps are objects.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from blocklake.config import QueryLimits
from blocklake.errors import ClientError
from blocklake.query.budget import DailyBudget
from blocklake.query.duckdb_engine import DuckDbEngine
from blocklake.query.engine import QueryEngine, QueryRequest, QueryResult, parse_time
from blocklake.query.plan import Scan, check_scan, dry_run
from blocklake.query.views import views

FORMATS = {
    "json": "application/json",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}
ENGINES = ["duckdb", "athena"]
MAX_SQL_CHARS = 100_000
SLICE_ROWS = 1024
"""Rows serialized at a time while the answer grows towards its byte cap."""
TRUNCATED_HEADER = "X-Blocklake-Truncated"
TRUNCATED_METADATA = b"blocklake.truncated_by"
"""Schema metadata key of Arrow and Parquet answers that were cut."""
FIELDS = ("sql", "begin", "end", "format", "max_rows", "engine", "dry_run")
"""Every field a query document may have; any other is refused, not ignored."""
MAX_JSON_INTEGER = 2**53 - 1
"""Largest integer every JSON parser reads exactly; larger ones are written as strings."""


def request_from(
    document: dict, tenant: str, max_rows: int, engines: Collection[str] = ("duckdb",)
) -> tuple[QueryRequest, str]:
    """The query a request document asks for, and its output format; ``ClientError`` 400
    naming the field for anything malformed or unknown, or an engine not in ``engines``."""
    unknown = sorted(str(name) for name in document if name not in FIELDS)
    if unknown:
        raise ClientError(
            400,
            "invalid_field",
            f"unknown field {unknown[0]!r}"
            + (f" (and {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else "")
            + f": the fields are {', '.join(FIELDS)}",
        )
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
    output = document.get("format", "json")
    if not isinstance(output, str) or output not in FORMATS:
        raise ClientError(400, "invalid_field", f"field 'format': expected one of {list(FORMATS)}")
    limit = document.get("max_rows", max_rows)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= max_rows:
        raise ClientError(
            400,
            "invalid_field",
            f"field 'max_rows': expected 1..{max_rows} (BLOCKLAKE_QUERY_MAX_ROWS)",
        )
    engine = document.get("engine", "duckdb")
    if engine not in ENGINES:
        raise ClientError(400, "invalid_field", f"field 'engine': expected one of {ENGINES}")
    if engine not in engines:
        raise ClientError(
            400, "invalid_field", f"field 'engine': {engine} is not configured on this server"
        )
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ClientError(400, "invalid_field", "field 'dry_run': expected true or false")
    return QueryRequest(tenant, sql, begin, end, limit, engine, dry_run), output


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
            return _plain(int(value))
        nearest = float(value)
        return nearest if decimal.Decimal(repr(nearest)) == value else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def _plain(value: object) -> object:
    """``value`` as strict JSON holds it: non-finite floats as null, integers past 2^53 as
    strings, within lists and objects too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INTEGER:
        return str(value)
    if isinstance(value, pa.MonthDayNano):  # an INTERVAL: its three parts, as SQL keeps them
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _plain(v) for k, v in value.items()}
    return value


def _key(key: object) -> str:
    """A map key as a JSON object key: strings as they are, anything else as its JSON text."""
    if isinstance(key, str):
        return key
    return json.dumps(_plain(key), default=_json_value).strip('"')


def _column_values(column: pa.ChunkedArray) -> list[object]:
    """Python values of ``column``; values Python cannot hold (DuckDB's ``infinity`` dates and
    timestamps, years past 9999) become text: ``"infinity"``, ``"-infinity"``, or Arrow's. Maps
    are dicts, or lists of ``[key, value]`` pairs when their keys are lists or structs."""
    try:
        return column.to_pylist(maps_as_pydicts="lossy")
    except TypeError:  # map keys Python cannot hash: the pairs as they are
        return column.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        values: list[object] = []
        for chunk in column.chunks:
            for index, scalar in enumerate(chunk):
                try:
                    values.append(scalar.as_py(maps_as_pydicts="lossy"))
                except (OverflowError, ValueError, pa.ArrowException):
                    values.append(_out_of_range(chunk.slice(index, 1)))
        return values


def _out_of_range(value: pa.Array) -> str | None:
    """Text for the one value of ``value`` that Python cannot hold."""
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


def to_json(result: QueryResult, max_bytes: int) -> tuple[str, str | None]:
    """The JSON answer: ``{columns: [{name, type}], rows: [[...]], row_count, truncated,
    truncated_by}``, at most ``max_bytes`` UTF-8 bytes, and the limit that cut it or None."""
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
    text = json.dumps(head)[:-1] + ', "rows": [' + ",".join(rows) + "], " + tail[1:]
    return text, truncated_by


def _write_csv(table: pa.Table, sink: io.BytesIO, first: bool) -> None:
    options = pa_csv.WriteOptions(include_header=first)
    pa_csv.write_csv(table, sink, write_options=options)


def to_bytes(result: QueryResult, output: str, max_bytes: int) -> tuple[bytes, str | None]:
    """CSV, Arrow IPC or Parquet of the result, at most ``max_bytes`` long, and the limit that
    cut it (``"max_rows"``, ``"max_result_bytes"``) or None. Maps, lists and structs are written
    as JSON text in CSV; Arrow and Parquet keep their types and name the limit that cut them in
    the schema metadata (``blocklake.truncated_by``)."""
    if output == "parquet":
        return _parquet(result, max_bytes)
    table = _csv_ready(result.table) if output == "csv" else result.table
    sink = io.BytesIO()
    truncated_by = result.truncated_by
    parts = [table.slice(start, SLICE_ROWS) for start in range(0, table.num_rows, SLICE_ROWS)]
    write: Callable[[pa.Table], None]
    if output == "csv":
        _write_csv(table.slice(0, 0), sink, True)  # the header says what was asked, even empty
        write = lambda part: _write_csv(part, sink, False)  # noqa: E731
    else:
        writer = pa.ipc.new_stream(sink, _marked(table.schema, truncated_by))
        write = writer.write_table
    for part in parts:
        mark = sink.tell()
        write(part)
        if sink.tell() > max_bytes:
            sink.seek(mark)
            sink.truncate()
            truncated_by = "max_result_bytes"
            break
    if output == "csv":
        return sink.getvalue(), truncated_by
    writer.close()
    if truncated_by != result.truncated_by:  # the schema came first: write it anew, marked
        kept = pa.ipc.open_stream(sink.getvalue()).read_all()
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, _marked(kept.schema, truncated_by)) as writer:
            writer.write_table(kept)
    return sink.getvalue(), truncated_by


def _marked(schema: pa.Schema, truncated_by: str | None) -> pa.Schema:
    if truncated_by is None:
        return schema
    return schema.with_metadata({**(schema.metadata or {}), TRUNCATED_METADATA: truncated_by})


def _holds(data_type: pa.DataType, test: Callable[[pa.DataType], bool]) -> bool:
    """Whether ``data_type`` or a type nested in it passes ``test``."""
    if test(data_type):
        return True
    return any(
        _holds(data_type.field(i).type, test) for i in range(getattr(data_type, "num_fields", 0))
    )


def _not_parquet(data_type: pa.DataType) -> bool:
    return pa.types.is_interval(data_type) or pa.types.is_union(data_type)


INTERVAL_PARTS = pa.struct(
    [("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())]
)
"""An INTERVAL in Parquet, which has no type for it: its three parts, as JSON gives them (months
and days are not a fixed number of nanoseconds)."""


def _parquet_ready(table: pa.Table) -> pa.Table:
    """Columns Parquet cannot hold as they are: intervals as ``INTERVAL_PARTS``; unions, and
    intervals within lists, maps or structs, as JSON text (as CSV writes them)."""
    for index, field in enumerate(table.schema):
        if not _holds(field.type, _not_parquet):
            continue
        values = _column_values(table.column(index))
        if pa.types.is_interval(field.type):
            column = pa.array([_plain(v) for v in values], INTERVAL_PARTS)
        else:
            column = pa.array(
                [None if v is None else json.dumps(_plain(v), default=_json_value) for v in values],
                pa.string(),
            )
        table = table.set_column(index, field.name, column)
    return table


def _parquet_bytes(table: pa.Table, truncated_by: str | None) -> bytes:
    sink = io.BytesIO()
    pa_parquet.write_table(
        table.replace_schema_metadata(_marked(table.schema, truncated_by).metadata), sink
    )
    return sink.getvalue()


def _parquet(result: QueryResult, max_bytes: int) -> tuple[bytes, str | None]:
    """A Parquet file is written whole: when it is too long, fewer rows are written, in
    proportion to the size, until it fits."""
    table, truncated_by = _parquet_ready(result.table), result.truncated_by
    body = _parquet_bytes(table, truncated_by)
    while len(body) > max_bytes and table.num_rows:
        truncated_by = "max_result_bytes"
        keep = min(table.num_rows - 1, int(table.num_rows * max_bytes / len(body) * 0.9))
        table = table.slice(0, keep)
        body = _parquet_bytes(table, truncated_by)
    return body, truncated_by


def render(result: QueryResult, output: str, max_bytes: int) -> tuple[str | bytes, dict[str, str]]:
    """The answer's body in ``output`` (a key of ``FORMATS``) and its headers: the content type
    and, when rows were cut, ``X-Blocklake-Truncated`` naming the limit."""
    body: str | bytes
    if output == "json":
        body, truncated_by = to_json(result, max_bytes)
    else:
        body, truncated_by = to_bytes(result, output, max_bytes)
    headers = {"Content-Type": FORMATS[output]}
    if truncated_by:
        headers[TRUNCATED_HEADER] = truncated_by
    return body, headers


def _is_binary(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
    )


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns CSV cannot hold as they are, as text: nested values (maps, lists, structs) and
    intervals as JSON, blobs in base64 (as JSON writes them), dates and times Python cannot
    hold as ``_column_values`` gives them."""
    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_nested(field.type) or pa.types.is_interval(field.type):
            text = [
                None if value is None else json.dumps(_plain(value), default=_json_value)
                for value in _column_values(column)
            ]
        elif _is_binary(field.type):
            text = [None if v is None else _json_value(v) for v in column.to_pylist()]
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


_SUMMARIZE = re.compile(r"^\s*SUMMARIZE\s+(?:TABLE\s+)?\"?(\w+)\"?\s*;?\s*$", re.IGNORECASE)


def _explained(error: ClientError, sql: str) -> ClientError:
    """``error`` with a hint where DuckDB's message leaves the cause out (``STDDEV_SAMP is out
    of range`` of an infinite value). (The limits' own errors name their settings already.)"""
    message = error.message
    if error.code == "query_failed" and re.search(r"STDDEV_\w+ is out of range", message):
        summarized = _SUMMARIZE.match(sql)
        view = views().get(summarized.group(1).lower()) if summarized else None
        doubles = [c.name for c in view.table.columns if c.type == "float64"] if view else []
        where = f"a DOUBLE column of {view.name} ({', '.join(doubles)})" if doubles else "a column"
        example = (
            f"SUMMARIZE SELECT * FROM {view.name} WHERE isfinite({doubles[0]})"
            if view and doubles
            else "SUMMARIZE SELECT * FROM <view> WHERE isfinite(<column>)"
        )
        message += (
            f" (hint: {where} holds inf or -inf beside finite values, and the standard "
            f"deviation of those is out of range: leave them out, as in {example})"
        )
    else:
        return error
    return ClientError(error.status, error.code, message, error.headers)


@dataclass
class QueryService:
    """The query request, from its document to its answer, through every guard-rail: the
    request's fields; the files and bytes it would read, counted before it runs on the DuckDB
    engine's listing of the lake (whichever engine runs it) against the per-query scan limits
    and the tenant's daily budget; then the engine's own limits (time, memory, rows, bytes)."""

    duckdb: DuckDbEngine
    limits: QueryLimits
    athena: QueryEngine | None = None
    budget: DailyBudget | None = None

    def _admit(self, tenant: str) -> Callable[[Scan], None]:
        def admit(scan: Scan) -> None:
            if self.budget is not None:
                self.budget.check(tenant, scan.bytes)

        return admit

    def answer(self, document: dict, tenant: str) -> tuple[str | bytes, dict[str, str], int]:
        """The body, headers (``Content-Type`` first) and rows of the answer to ``document``;
        ``ClientError`` for a refusal."""
        engines = ["duckdb", "athena"] if self.athena is not None else ["duckdb"]
        request, output = request_from(document, tenant, self.limits.max_rows, engines)
        if request.dry_run:
            scan = self.duckdb.scan(request)
            plan = dry_run(scan, request.engine, self.limits)
            if self.budget is not None:
                usage = self.budget.used(tenant)
                plan["today"] = {"queries": usage.queries, "scanned_bytes": usage.scanned_bytes}
                try:
                    self.budget.check(tenant, scan.bytes)
                except ClientError as refusal:
                    plan["within_limits"] = False
                    plan["limits_exceeded"] = [*plan["limits_exceeded"], refusal.message]
            return json.dumps(plan), {"Content-Type": FORMATS["json"]}, 0
        try:
            if request.engine == "athena" and self.athena is not None:
                scan = self.duckdb.scan(request)
                check_scan(scan, self.limits)
                self._admit(tenant)(scan)
                result = self.athena.run(request)
            else:  # DuckDB counts its files as it makes its views, and admits before running
                result = self.duckdb.run(request, self._admit(tenant))
        except ClientError as error:
            raise _explained(error, request.sql) from None
        if self.budget is not None:
            self.budget.record(tenant, result.scanned_bytes)
        body, headers = render(result, output, self.limits.max_result_bytes)
        return body, headers, result.table.num_rows
