"""How each lake table is partitioned and sorted, and which columns bound its rows in time.

Chosen for the queries people run:

- **A tenant's time range** is the filter of every query: each tenant has tables of its own
  (namespace ``<prefix><tenant>``, location ``tables/<table>/tenant=<tenant>/``), so a query
  never opens another tenant's metadata or files, and the S3 credentials scoped to that prefix
  (``blocklake.query.duckdb_s3``) read the whole table. Within a table, files are partitioned by
  ``hour(<end column>)`` (Iceberg hidden partitioning: no extra column; Athena, Spark and DuckDB
  prune on it): an hour is small enough that a one-hour query reads about one partition, large
  enough that a compacted hour is one file of useful size.
- **Rows with a duration** (spans, blocks) are partitioned by their *end* and kept when
  ``end >= range begin AND begin < range end``: a span is found by every window it overlaps,
  however long. Partitions that ended before the range are pruned from the manifest list's
  partition summaries without being opened (so a query over the last hour reads that hour,
  whatever the history); later partitions are pruned file by file on the ``begin`` column's
  statistics.
- **Within a file** rows are sorted by process, then time (metrics by name first): a query for
  one process, or one metric, reads the row groups whose statistics hold it. Trace and request
  ids sit in ``properties``, a map Parquet statistics do not cover.
- ``processes``, ``streams`` and ``conversion_failures`` are small and timeless: unpartitioned,
  compacted into few files.

A table this file does not know (``events_<name>``) is partitioned by ``hour(time)`` when it has
a ``time`` timestamp column, and sorted by ``process_id`` and time when it has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class TableLayout:
    begin: str | None
    """Column holding when a row starts (its time, for instantaneous events), or None."""
    end: str | None
    """Column holding when a row ends: the partition source, ``hour(end)``."""
    sort: tuple[str, ...] = ()
    """Columns the rows of a file are sorted by."""


_KNOWN = {
    "log_entries": TableLayout("time", "time", ("process_id", "time")),
    "measures": TableLayout("time", "time", ("name", "process_id", "time")),
    "thread_spans": TableLayout("begin", "end", ("process_id", "begin")),
    "async_spans": TableLayout("begin", "end", ("process_id", "begin")),
    "blocks": TableLayout("begin_time", "end_time", ("stream_id", "begin_time")),
    "unmatched_spans": TableLayout("block_begin", "block_end", ("stream_id", "block_begin")),
    "attachments": TableLayout("time", "time", ("process_id", "time")),
    "processes": TableLayout(None, None, ("process_id",)),
    "streams": TableLayout(None, None, ("process_id", "stream_id")),
    "conversion_failures": TableLayout(None, None, ("block_id",)),
}


def layout(table: str, schema: pa.Schema) -> TableLayout:
    """The layout of ``table``, whose rows have ``schema``."""
    known = _KNOWN.get(table)
    if known is not None:
        return known
    names = set(schema.names)
    timed = "time" in names and pa.types.is_timestamp(schema.field("time").type)
    sort = tuple(name for name in ("process_id", "time") if name in names)
    return TableLayout("time", "time", sort) if timed else TableLayout(None, None, sort)
