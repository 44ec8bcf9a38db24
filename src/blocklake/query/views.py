"""The views a tenant's SQL reads, defined once in ``schemas/views.toml`` for every engine.

A view is a lake table (its columns from ``schemas/tables.toml``) restricted to the query's time
range. ``View.select`` gives the view's ``SELECT`` over any source relation, in DuckDB's SQL: the
DuckDB engine reads the tenant's files with it, the Athena engine transpiles it over the Glue
table with the tenant and date partitions pinned.

A derived view (``DerivedView``: ``open_spans``, ``span_tree``) is SQL over those views; an
engine defines it after the views it reads.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from blocklake.format.schema import Column, TableDef, schemas_dir, tables

DUCKDB_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "int32": "INTEGER",
    "float64": "DOUBLE",
    "timestamp": "TIMESTAMPTZ",
    "map<string,string>": "MAP(VARCHAR, VARCHAR)",
    "map<string,float64>": "MAP(VARCHAR, DOUBLE)",
    "list<string>": "VARCHAR[]",
}
"""DuckDB's type of each column type of ``schemas/tables.toml``."""


def timestamp_literal(time_ns: int, zoned: bool = True) -> str:
    """A UTC instant as a DuckDB literal, to the microsecond (what the lake holds), rounded up
    to the next microsecond: a row at ``t`` µs is at or after the literal exactly when
    ``t * 1000 >= time_ns``, so ``[begin, end)`` in nanoseconds keeps exactly the rows it
    should at both ends. A ``TIMESTAMPTZ``, or (``zoned`` false) a ``TIMESTAMP`` of UTC wall
    time, for engines whose tables declare the lake's timestamps without a zone (Glue's
    ``timestamp``)."""
    time_us = -(-time_ns // 1000)  # the ceiling
    moment = datetime.fromtimestamp(time_us // 1_000_000, UTC)
    micros = time_us % 1_000_000
    text = f"{moment:%Y-%m-%d %H:%M:%S}.{micros:06d}"
    return f"TIMESTAMPTZ '{text}+00'" if zoned else f"TIMESTAMP '{text}'"


@dataclass(frozen=True)
class View:
    name: str
    table: TableDef
    time_filter: str | None
    """Condition on ``$begin``/``$end`` the rows meet; None: the table is read whole."""

    def columns(self) -> str:
        """The table's columns; every column of the files for a user-defined event type's
        table (its columns are those its layouts declared, ``schemas/tables.toml``)."""
        if not self.table.columns:
            return "*"
        return ", ".join(f'"{column.name}"' for column in self.table.columns)

    def condition(self, begin_ns: int, end_ns: int, zoned: bool = True) -> str | None:
        """The time filter with the range filled in (``timestamp_literal``), or None."""
        if self.time_filter is None:
            return None
        return self.time_filter.replace("$begin", timestamp_literal(begin_ns, zoned)).replace(
            "$end", timestamp_literal(end_ns, zoned)
        )

    def select(
        self, source: str, begin_ns: int, end_ns: int, *extra: str, zoned: bool = True
    ) -> str:
        """``SELECT <columns> FROM <source> WHERE <time filter> AND <extra...>`` (DuckDB SQL)."""
        conditions = [c for c in (self.condition(begin_ns, end_ns, zoned), *extra) if c]
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {self.columns()} FROM {source}{where}"

    def empty(self) -> str:
        """A ``SELECT`` of no rows with the view's columns and types (DuckDB SQL)."""
        columns = self.table.columns or (Column("time", "timestamp"),)
        typed = ", ".join(
            f'CAST(NULL AS {DUCKDB_TYPES[column.type]}) AS "{column.name}"' for column in columns
        )
        return f"SELECT {typed} WHERE false"


@dataclass(frozen=True)
class DerivedView:
    name: str
    reads: tuple[str, ...]
    """The views its SQL reads: a query naming it reads them."""
    sql: str
    """A query (DuckDB's SQL) over ``reads``; its CTEs are named ``<name>_...``."""


@functools.cache
def views() -> dict[str, View]:
    """Every view by name; ``ValueError`` when ``views.toml`` and ``tables.toml`` disagree."""
    with open(schemas_dir() / "views.toml", "rb") as file:
        document = tomllib.load(file)["views"]
    known = tables()
    if set(document) != set(known):
        raise ValueError(f"views.toml defines {sorted(document)}, tables.toml {sorted(known)}")
    return {
        name: View(name, known[name], definition.get("time_filter"))
        for name, definition in document.items()
    }


@functools.cache
def derived_views() -> dict[str, DerivedView]:
    """Every derived view by name; ``ValueError`` when one reads what is not a view or takes a
    view's name."""
    with open(schemas_dir() / "views.toml", "rb") as file:
        document = tomllib.load(file).get("derived", {})
    known = views()
    derived = {}
    for name, definition in document.items():
        reads = tuple(definition["reads"])
        if name in known or not set(reads) <= set(known):
            raise ValueError(f"derived view {name!r}: a view's name, or reads {reads} not views")
        derived[name] = DerivedView(name, reads, definition["sql"].strip())
    return derived


def view_names() -> frozenset[str]:
    """What a query may read: every view and derived view."""
    return frozenset(views()) | frozenset(derived_views())


def views_read(
    named: frozenset[str] | set[str], available: Collection[str] | None = None
) -> set[str]:
    """The views a query naming ``named`` reads: those named, and those the derived views among
    them read; other names (the query's own CTEs) dropped. ``available``: the views the query
    may read (default: the lake's tables; the engine adds the tenant's own, ``events_<name>``)."""
    derived = derived_views()
    known = views() if available is None else available
    found = {name for name in named if name in known}
    for name in named & set(derived):
        found.update(derived[name].reads)
    return found
