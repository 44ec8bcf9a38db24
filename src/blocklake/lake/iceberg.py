"""``IcebergLake``: the ``Lake`` port over Apache Iceberg tables (pyiceberg), any catalog.

Writing is two steps, so that a table is not committed once per block:

1. ``append_fragments`` stages each fragment as a Parquet object, then writes the call's mark
   (keys in ``blocklake.lake.staging``). A call whose mark exists is a retry of one
   that completed: it stages nothing (a redelivered block never duplicates rows). A call that
   crashed before its mark left fragments the committer ignores; its retry rewrites them.
2. ``commit_pending`` takes the marked fragments and, per (tenant, table), writes a batch record
   ``lake/batches/<id>.json`` naming them, appends their rows in one Iceberg commit whose
   snapshot summary carries ``blocklake.batch=<id>``, deletes the fragments, then the record. A
   record left by a crash is finished first: committed again only if no snapshot carries its
   id. One committer runs at a time (the local server's thread; on AWS the scheduled committer,
   its runs taking turns, ``blocklake.lake.turns``): commits to one table are never raced.

``compact`` (the same single writer) replaces the files of each recent hour partition holding
more than one by one sorted file in one atomic overwrite, expires snapshots older than
``SNAPSHOT_RETENTION`` and deletes files no snapshot references (orphans: a replaced file, the
data of a crashed commit) once older than that too, so that no running query loses a file.
"""

from __future__ import annotations

import io
import json
import posixpath
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    LessThan,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
from pyiceberg.schema import assign_fresh_schema_ids
from pyiceberg.table import Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortField, SortOrder
from pyiceberg.transforms import HourTransform, IdentityTransform

from blocklake.format.schema import tables as schema_tables
from blocklake.format.tables import arrow_schema
from blocklake.lake import CommitReport, CompactionReport, Fragment, TablePlan
from blocklake.lake.layout import TableLayout, layout
from blocklake.lake.reader import IcebergPlanner, local_connection
from blocklake.lake.staging import (
    BATCHES,
    MARKS,
    ORPHANS,
    STAGING,
    mark_key,
    parquet_bytes,
    staged_key,
)
from blocklake.stores.blobs import BlobStore

BATCH_PROPERTY = "blocklake.batch"
HOUR_NS = 3600 * 1_000_000_000
SNAPSHOT_RETENTION = timedelta(minutes=30)
"""Snapshots (and files only they reference) are kept this long: longer than any query that
planned from them could still be reading (the query Lambda's timeout)."""
COMPACT_HOURS_BACK = 3
"""Hours before the current one whose partitions each compaction revisits (late blocks)."""
COMPACT_OPEN_HOUR_FILES = 32
"""The current (open) hour is compacted too once it holds this many files: a query on the last
minutes opens few files even at high rates."""
PARTITION_FIELD_ID = 1000
"""Iceberg's first partition field id."""
DIRECT_TABLES = frozenset({"conversion_failures"})
"""Tables written by ``upsert`` (not by the committer): compaction, the committer's work, leaves
them alone, so that only one writer ever commits to a table."""
TABLE_PROPERTIES = {
    # Few manifests however many commits: a query opens the manifest list and a handful.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "8",
    # Old metadata.json files go as new ones are written.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "10",
    "write.parquet.compression-codec": "zstd",
    # Row groups a reader can skip on their statistics (files are sorted by process, time).
    "write.parquet.row-group-limit": "131072",
}


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded: Iceberg has no dictionary type (Parquet still encodes)."""
    columns = [
        pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _time(ns: int) -> str:
    """An Iceberg timestamp literal (microseconds, UTC)."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC).isoformat(timespec="microseconds")


def range_filter(table_layout: TableLayout, begin_ns: int, end_ns: int) -> BooleanExpression:
    """Rows of [begin, end): ending at or after its begin and starting before its end."""
    if table_layout.end is None or table_layout.begin is None:
        return AlwaysTrue()
    return And(
        GreaterThanOrEqual(table_layout.end, _time(begin_ns)),
        LessThan(table_layout.begin, _time(end_ns)),
    )


class IcebergLake:
    """The lake's tables in ``catalog``; fragments, marks and batch records in ``blobs``.

    ``location`` is the URL of the blob store's root as the catalog records it (a directory, or
    ``s3://bucket``); tables live at ``<location>/tables/<table>/tenant=<tenant>``."""

    def __init__(
        self,
        catalog: Catalog,
        blobs: BlobStore,
        location: str,
        namespace_prefix: str = "blocklake_",
        retention_days: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.location = location.rstrip("/")
        self.namespace_prefix = namespace_prefix
        self.retention_days = retention_days
        """Rows whose hour ended longer ago than this are deleted by ``compact``."""

    # -- names ---------------------------------------------------------------------------

    def identifier(self, table: str, tenant: str) -> tuple[str, str]:
        """(namespace, table) of a tenant's table in the catalog."""
        return (f"{self.namespace_prefix}{tenant}", table)

    def load(self, table: str, tenant: str) -> Table | None:
        """The tenant's table, or None when nothing was ever committed to it."""
        try:
            return self.catalog.load_table(self.identifier(table, tenant))
        except NoSuchTableError:
            return None

    def tables(self, tenant: str) -> list[str]:
        namespace = f"{self.namespace_prefix}{tenant}"
        try:
            return sorted(name for _, name in self.catalog.list_tables(namespace))
        except Exception as error:  # no namespace yet: the tenant has no tables
            if type(error).__name__ == "NoSuchNamespaceError":
                return []
            raise

    # -- staging -------------------------------------------------------------------------

    def append_fragments(self, table: str, tenant: str, fragments: Sequence[Fragment]) -> list[str]:
        fragments = [f for f in fragments if f.data.num_rows]
        if not fragments:
            return []
        sources = [s for f in fragments for s in f.sources]
        mark = mark_key(table, tenant, sources)
        if self.blobs.exists(mark):
            return []
        keys = []
        for number, fragment in enumerate(fragments):
            key = staged_key(table, tenant, sources, number)
            self.blobs.put(key, parquet_bytes(fragment.data))
            keys.append(key)
        self.blobs.put(mark, json.dumps({"fragments": len(keys)}).encode())
        return keys

    def appended(self, table: str, tenant: str, sources: Sequence[str]) -> bool:
        """Whether ``append_fragments`` of rows from ``sources`` completed before."""
        return self.blobs.exists(mark_key(table, tenant, sources))

    def _ready(self, limit: int | None) -> dict[tuple[str, str], list[str]]:
        """Staged fragments whose call completed, by (tenant, table), at most ``limit``."""
        groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for key in self.blobs.list(STAGING):
            parts = key.split("/")
            if len(parts) == 5 and parts[1].startswith("tenant="):
                groups[(parts[1].removeprefix("tenant="), parts[2], parts[3])].append(key)
        ready: dict[tuple[str, str], list[str]] = defaultdict(list)
        count = 0
        for (tenant, table, digest), keys in sorted(groups.items()):
            if limit is not None and count >= limit:
                break
            mark = f"{MARKS}tenant={tenant}/{table}/{digest}"
            if self.blobs.exists(mark):
                expected = json.loads(self.blobs.get(mark))["fragments"]
                if len(keys) == expected:
                    ready[(tenant, table)].extend(sorted(keys))
                    count += len(keys)
        return ready

    # -- committing ----------------------------------------------------------------------

    def commit_pending(self, max_fragments: int | None = None) -> CommitReport:
        report = CommitReport()
        for record_key in sorted(self.blobs.list(BATCHES)):
            self._finish(record_key, json.loads(self.blobs.get(record_key)), report)
        for (tenant, table), keys in sorted(self._ready(max_fragments).items()):
            batch = {"id": uuid.uuid4().hex, "tenant": tenant, "table": table, "keys": keys}
            record_key = f"{BATCHES}{batch['id']}.json"
            self.blobs.put(record_key, json.dumps(batch).encode())
            self._finish(record_key, batch, report)
        return report

    def _finish(self, record_key: str, batch: dict, report: CommitReport) -> None:
        table = self.load(batch["table"], batch["tenant"])
        committed = table is not None and any(
            snapshot.summary is not None
            and snapshot.summary.additional_properties.get(BATCH_PROPERTY) == batch["id"]
            for snapshot in table.metadata.snapshots
        )
        if not committed:
            keys = [key for key in batch["keys"] if self.blobs.exists(key)]
            if keys:
                # Decoded one by one: fragments of one table may differ in encoding (a column
                # a revision 1 block lacks is a plain null string beside others' dictionaries).
                data = pa.concat_tables(
                    [_plain(pq.read_table(io.BytesIO(self.blobs.get(key)))) for key in keys],
                    promote_options="permissive",
                )
                self._append(batch["table"], batch["tenant"], data, batch["id"])
                report.rows += data.num_rows
                report.fragments += len(keys)
                report.commits += 1
                report.tables.append(f"{batch['tenant']}/{batch['table']}")
        self.blobs.delete(list(batch["keys"]))
        self.blobs.delete([record_key])

    def _append(self, name: str, tenant: str, data: pa.Table, batch_id: str) -> None:
        table = self._table_for(name, tenant, data.schema)
        data = self._aligned(table, data)
        table.append(data, snapshot_properties={BATCH_PROPERTY: batch_id})

    def _table_for(self, name: str, tenant: str, schema: pa.Schema) -> Table:
        """The table, created on first write, with any new column of ``schema`` added."""
        table = self.load(name, tenant)
        if table is None:
            return self._create(name, tenant, schema)
        # A table of schemas/tables.toml takes the columns added there since it was made (its
        # views name them all) even when these rows come from an older writer.
        wanted = [arrow_schema(name), schema] if name in schema_tables() else [schema]
        known = set(table.schema().column_names)
        if any(field.name not in known for wanted_schema in wanted for field in wanted_schema):
            with table.update_schema() as update:
                for wanted_schema in wanted:
                    update.union_by_name(wanted_schema)
            table = self.catalog.load_table(self.identifier(name, tenant))
        return table

    def _create(self, name: str, tenant: str, schema: pa.Schema) -> Table:
        """Creates the table; with a tenant's first table, the schema's tables too (empty), so
        that every view of ``schemas/tables.toml`` has its table for Athena."""
        identifier = self.identifier(name, tenant)
        namespace = identifier[0]
        if namespace not in {n for (n, *_) in self.catalog.list_namespaces()}:
            self.catalog.create_namespace_if_not_exists(namespace)
            for other in sorted(set(schema_tables()) - {name}):
                self._create(other, tenant, arrow_schema(other))
        table_layout = layout(name, schema)
        # One catalog commit: the schema with ids, so that the partition spec and sort order
        # can name their source columns (the catalog re-assigns ids, by name, consistently).
        iceberg_schema = assign_fresh_schema_ids(Catalog._convert_schema_if_needed(schema))
        spec = UNPARTITIONED_PARTITION_SPEC
        if table_layout.end is not None:
            spec = PartitionSpec(
                PartitionField(
                    iceberg_schema.find_field(table_layout.end).field_id,
                    PARTITION_FIELD_ID,
                    HourTransform(),
                    f"{table_layout.end}_hour",
                )
            )
        order = SortOrder(
            *(
                SortField(iceberg_schema.find_field(column).field_id, IdentityTransform())
                for column in table_layout.sort
                if column in schema.names
            )
        )
        return self.catalog.create_table_if_not_exists(
            identifier,
            schema=iceberg_schema,
            location=f"{self.location}/tables/{name}/tenant={tenant}",
            partition_spec=spec,
            sort_order=order if order.fields else UNSORTED_SORT_ORDER,
            properties=TABLE_PROPERTIES,
        )

    @staticmethod
    def _aligned(table: Table, data: pa.Table) -> pa.Table:
        """``data`` in the table's column order and types, absent columns null, sorted."""
        schema = table.schema().as_arrow()
        columns = [
            data.column(field.name).cast(field.type)
            if field.name in data.column_names
            else pa.nulls(data.num_rows, field.type)
            for field in schema
        ]
        aligned = pa.Table.from_arrays(columns, schema=schema)
        table_layout = layout(table.name()[-1], schema)
        keys = [(c, "ascending") for c in table_layout.sort if c in aligned.column_names]
        return aligned.sort_by(keys) if keys else aligned

    # -- reading -------------------------------------------------------------------------

    def metadata_location(self, table: str, tenant: str) -> str | None:
        """The table's current ``metadata.json``, None when the table does not exist."""
        iceberg = self.load(table, tenant)
        return None if iceberg is None else iceberg.metadata_location

    def plan(self, table: str, tenant: str, begin_ns: int, end_ns: int) -> TablePlan:
        """What a reader of the range opens, planned as the query side plans it
        (``blocklake.lake.reader``)."""
        return self.planner().plan(table, tenant, begin_ns, end_ns)

    def planner(self, setup: tuple[str, ...] = ()) -> IcebergPlanner:
        """A planner over this lake's catalog; ``setup`` runs first on each of its DuckDB
        connections (on S3: httpfs and credentials, ``blocklake.query.duckdb_s3``)."""
        return IcebergPlanner(self, lambda tenant: local_connection(setup))

    # -- maintenance ---------------------------------------------------------------------

    def delete(self, table: str, tenant: str, column: str, values: Sequence[str]) -> None:
        """Deletes the rows whose ``column`` is one of ``values`` (copy-on-write: the files
        holding them are rewritten in one snapshot); nothing when the table does not exist."""
        iceberg = self.load(table, tenant)
        if iceberg is not None and values:
            iceberg.delete(In(column, list(values)))

    def upsert(
        self, table: str, tenant: str, column: str, value: str, row: pa.Table | None
    ) -> None:
        """Replaces the rows whose ``column`` is ``value`` by ``row`` (none when None), in one
        commit made here, not staged: for rare rows that must also go (a conversion failure,
        gone once its block converts), whose staged fragment could outlive their deletion."""
        iceberg = self.load(table, tenant)
        if row is None:
            if iceberg is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    iceberg.delete(In(column, [value]))
            return
        iceberg = self._table_for(table, tenant, _plain(row).schema)
        data = self._aligned(iceberg, _plain(row))
        with warnings.catch_warnings():  # "did not match any records": the first failure
            warnings.simplefilter("ignore", UserWarning)
            iceberg.overwrite(data, overwrite_filter=In(column, [value]))

    def all_tables(self) -> Iterator[tuple[str, str]]:
        """(tenant, table) of every table in the catalog."""
        for (namespace,) in self.catalog.list_namespaces():
            if namespace.startswith(self.namespace_prefix):
                tenant = namespace.removeprefix(self.namespace_prefix)
                for table in self.tables(tenant):
                    yield tenant, table

    def compact(self, now_ns: int) -> CompactionReport:
        report = CompactionReport()
        for tenant, name in list(self.all_tables()):
            if name in DIRECT_TABLES:
                continue
            table = self.load(name, tenant)
            if table is None or table.current_snapshot() is None:
                continue
            self._expire_rows(table, now_ns, report)
            self._compact_table(self.catalog.load_table(table.name()), now_ns, report)
            self._expire(self.catalog.load_table(table.name()), now_ns, report)
        return report

    def _expire_rows(self, table: Table, now_ns: int, report: CompactionReport) -> None:
        """Deletes the rows of hours that ended ``retention_days`` ago: whole partitions, so
        their files leave the table without being rewritten (and go with the snapshots)."""
        table_layout = layout(table.name()[-1], table.schema().as_arrow())
        if self.retention_days is None or table_layout.end is None:
            return
        cutoff = (now_ns - self.retention_days * 24 * HOUR_NS) // HOUR_NS * HOUR_NS
        old = LessThan(table_layout.end, _time(cutoff))
        if any(True for _ in table.scan(row_filter=old).plan_files()):
            table.delete(old)
            report.tables_trimmed += 1

    def _compact_table(self, table: Table, now_ns: int, report: CompactionReport) -> None:
        table_layout = layout(table.name()[-1], table.schema().as_arrow())
        current_hour = now_ns // HOUR_NS * HOUR_NS
        if table_layout.end is None:
            files = list(table.scan().plan_files())
            if len(files) > 1:
                self._replace(table, AlwaysTrue(), len(files), report)
            return
        recent = table.scan(
            row_filter=GreaterThanOrEqual(
                table_layout.end, _time(current_hour - COMPACT_HOURS_BACK * HOUR_NS)
            )
        ).plan_files()
        by_hour: dict[int, int] = defaultdict(int)
        for task in recent:
            hour = task.file.partition[0]
            if isinstance(hour, int):
                by_hour[hour * HOUR_NS] += 1
        for hour, count in sorted(by_hour.items()):
            closed = hour < current_hour
            if count > 1 and (closed or count >= COMPACT_OPEN_HOUR_FILES):
                hour_filter = And(
                    GreaterThanOrEqual(table_layout.end, _time(hour)),
                    LessThan(table_layout.end, _time(hour + HOUR_NS)),
                )
                self._replace(table, hour_filter, count, report)
                table = self.catalog.load_table(table.name())

    def _replace(
        self, table: Table, where: BooleanExpression, files: int, report: CompactionReport
    ) -> None:
        """The rows ``where`` selects (whole partitions) rewritten as one sorted file, in one
        atomic overwrite: a reader sees the old files or the new one, never both."""
        data = self._aligned(table, table.scan(row_filter=where).to_arrow())
        table.overwrite(data, overwrite_filter=where)
        report.partitions += 1
        report.files_replaced += files

    def _expire(self, table: Table, now_ns: int, report: CompactionReport) -> None:
        cutoff = datetime.fromtimestamp(now_ns / 1e9, UTC) - SNAPSHOT_RETENTION
        current = table.current_snapshot()
        old = [
            s.snapshot_id
            for s in table.metadata.snapshots
            if s.timestamp_ms < cutoff.timestamp() * 1000
            and (current is None or s.snapshot_id != current.snapshot_id)
        ]
        if old:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            report.snapshots_expired += len(old)
            table = self.catalog.load_table(table.name())
        report.orphans_removed += self._remove_orphans(table, now_ns)

    def _remove_orphans(self, table: Table, now_ns: int) -> int:
        """Deletes the table's files that no snapshot nor metadata file names and that were
        already unnamed ``SNAPSHOT_RETENTION`` ago (a commit in flight has written files it
        does not name yet; a query may still read a file its snapshot named): candidates are
        recorded in ``lake/orphans/`` with when they were first seen, the blob store keeping no
        times of its own."""
        prefix = self._key(table.location()) + "/"
        referenced = {self._key(table.metadata_location)}
        referenced.update(self._key(entry.metadata_file) for entry in table.metadata.metadata_log)
        for snapshot in table.metadata.snapshots:
            referenced.add(self._key(snapshot.manifest_list))
            for manifest in snapshot.manifests(table.io):
                referenced.add(self._key(manifest.manifest_path))
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                    referenced.add(self._key(entry.data_file.file_path))
        record = f"{ORPHANS}{prefix.rstrip('/')}.json"
        seen = json.loads(self.blobs.get(record)) if self.blobs.exists(record) else {}
        unnamed = {key for key in self.blobs.list(prefix) if key not in referenced}
        retention_ns = int(SNAPSHOT_RETENTION.total_seconds() * 1e9)
        orphans = sorted(k for k in unnamed if k in seen and now_ns - seen[k] >= retention_ns)
        self.blobs.delete(orphans)
        candidates = {k: seen.get(k, now_ns) for k in unnamed if k not in orphans}
        if candidates or seen:
            self.blobs.put(record, json.dumps(candidates).encode())
        return len(orphans)

    def _key(self, location: str) -> str:
        """The blob key of a location in the lake."""
        return posixpath.normpath(location.removeprefix(self.location + "/"))
