"""The lake's tables: Apache Iceberg tables in a catalog, written in two steps and read by plan.

Shape of the port (``Lake``), what every writer and reader of table rows goes through:

- ``append_fragments(table, tenant, fragments)``: stages rows, never commits. Each ``Fragment``
  is ``(partition, pa.Table, sources)``: ``partition`` the ``date=YYYY-MM-DD/hour=HH`` its rows
  belong to (informative: the Iceberg table partitions them itself), ``sources`` the ids of the
  blocks (or processes, streams) the rows come from. A fragment is one Parquet object named
  after its table, tenant and sources: staging the same fragment twice (a retried conversion)
  overwrites the same object. Any ``(table name, pa.Table)`` is accepted: a table that does not
  exist yet is created on its first commit, and new (nullable) columns are added by name.
- ``commit_pending(...) -> CommitReport``: folds the staged fragments into their tables, one
  Iceberg commit per (table, tenant) per batch, exactly once even if the committer crashed
  halfway before (see ``blocklake.lake.committer``).
- ``compact(now_ns) -> CompactionReport``: deletes rows past the retention, replaces each hour's
  small files by one (atomically), then expires old snapshots and removes files no snapshot
  references.
- ``plan(table, tenant, begin_ns, end_ns) -> TablePlan``: what DuckDB reads for a time range,
  from the table's metadata (no listing): ``iceberg_scan`` of ``metadata_location``, opening
  exactly ``metadata_files`` and ``data_files``.
- ``tables(tenant)``: the tables the catalog holds for a tenant (those of ``schemas/tables.toml``
  and any other table written, such as ``events_<name>``).
- ``delete(table, tenant, column, values)``: deletes rows (copy-on-write, one snapshot).

The adapter is ``blocklake.lake.iceberg.IcebergLake`` (``blocklake.lake.catalog.open_lake``
builds it from the settings); the query side plans without pyiceberg
(``blocklake.lake.reader``).

Times are nanoseconds since the epoch (UTC); sizes bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa


@dataclass(frozen=True)
class Fragment:
    partition: str
    """``date=YYYY-MM-DD/hour=HH`` of the rows (``blocklake.stores.layout.partition``)."""
    data: pa.Table
    sources: tuple[str, ...]
    """Ids of what the rows were built from (block ids; a process or stream id)."""


@dataclass(frozen=True)
class DataFile:
    path: str
    """What DuckDB opens: a local path or an ``s3://`` URL."""
    size: int
    """Bytes."""
    rows: int


@dataclass(frozen=True)
class TablePlan:
    table: str
    tenant: str
    metadata_location: str | None
    """The table's current ``metadata.json`` (what ``iceberg_scan`` reads), or None when the
    table holds no rows yet (it does not exist)."""
    metadata_files: list[str] = field(default_factory=list)
    """``metadata.json``, the manifest list and the manifests a reader opens."""
    data_files: list[DataFile] = field(default_factory=list)
    """The data files whose partition and column statistics overlap the range."""
    partitions: list[str] = field(default_factory=list)
    """``date=YYYY-MM-DD/hour=HH`` of the partitions the data files belong to (empty for an
    unpartitioned table)."""

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.data_files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.data_files)


@dataclass
class CommitReport:
    fragments: int = 0
    """Staged fragments folded into tables."""
    rows: int = 0
    commits: int = 0
    """Iceberg commits (one per table and tenant of the batch)."""
    tables: list[str] = field(default_factory=list)
    """``<tenant>/<table>`` of each commit."""


@dataclass
class CompactionReport:
    partitions: int = 0
    """Hour partitions whose files were replaced by one."""
    files_replaced: int = 0
    tables_trimmed: int = 0
    """Tables whose rows past the retention were deleted."""
    snapshots_expired: int = 0
    orphans_removed: int = 0


class Lake(Protocol):
    def append_fragments(self, table: str, tenant: str, fragments: Sequence[Fragment]) -> list[str]:
        """Stages ``fragments`` (not visible to readers until committed); the staged keys."""
        ...

    def commit_pending(self, max_fragments: int | None = None) -> CommitReport:
        """Commits what is staged (at most ``max_fragments``, oldest first)."""
        ...

    def compact(self, now_ns: int) -> CompactionReport: ...

    def plan(self, table: str, tenant: str, begin_ns: int, end_ns: int) -> TablePlan: ...

    def tables(self, tenant: str) -> list[str]: ...

    def delete(self, table: str, tenant: str, column: str, values: Sequence[str]) -> None: ...
