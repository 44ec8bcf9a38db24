"""Arrow schemas of the lake tables, derived from schemas/tables.toml."""

from __future__ import annotations

import functools

import pyarrow as pa

from blocklake.format.schema import TableDef, tables

ARROW_COLUMN_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    # Microseconds: the precision every reader of the lake takes (Athena, Spark, DuckDB); span
    # durations keep their nanoseconds in duration_ns.
    "timestamp": pa.timestamp("us", tz="UTC"),
    "map<string,string>": pa.map_(pa.string(), pa.string()),
    "map<string,float64>": pa.map_(pa.string(), pa.float64()),
    "list<string>": pa.list_(pa.string()),
}


def arrow_schema_of(table: TableDef) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_COLUMN_TYPES[c.type]) for c in table.columns])


@functools.cache
def arrow_schema(name: str) -> pa.Schema:
    return arrow_schema_of(tables()[name])
