"""Plans a read of an Iceberg table from its metadata alone, with DuckDB and no pyiceberg.

What the query side needs of a table, the current ``metadata.json`` of the catalog, is asked of
a ``Locator`` (the Glue table's ``metadata_location`` when deployed, the SQL catalog's row
locally); the rest is read with DuckDB, which the query side loads anyway (``read_text`` of the
metadata file, ``read_avro`` of the manifest list and manifests, over S3 with the tenant's own
credentials): so the query Lambda carries neither pyiceberg nor its dependencies
(``infra/assets.py``).

Pruning, for a range [begin, end) of a table partitioned by ``hour(<end column>)``
(``blocklake.lake.layout``):

1. a data manifest whose partition summary says every file ended before the range's first
   hour is not opened (in a table compacted hour by hour, manifests are written hour by hour);
2. a data file is kept when its partition (hour of its end) is not before the range's first
   hour, the upper bound of its end column is not before ``begin`` and the lower bound of its
   begin column is before ``end`` (the manifests' column statistics).

Every manifest of the snapshot is listed as readable (a reader may open one the planner did
not need); delete files, which the lake's copy-on-write deletes do not write, are all kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import duckdb

from blocklake.lake import DataFile, TablePlan
from blocklake.lake.layout import layout
from blocklake.stores.layout import partition

HOUR_US = 3600 * 1_000_000


class Locator(Protocol):
    """Where the catalog says a table's current metadata is."""

    def metadata_location(self, table: str, tenant: str) -> str | None:
        """The ``metadata.json`` location, or None when the table does not exist."""
        ...

    def tables(self, tenant: str) -> list[str]: ...


class GlueLocator:
    """The Glue Data Catalog, through boto3 (the Lambda runtime's): one database per tenant,
    ``<prefix><tenant>``, each table's ``metadata_location`` parameter (as pyiceberg's
    ``GlueCatalog`` and Athena keep it)."""

    def __init__(self, glue: Any, prefix: str) -> None:
        self.glue = glue
        self.prefix = prefix

    def metadata_location(self, table: str, tenant: str) -> str | None:
        try:
            answer = self.glue.get_table(DatabaseName=f"{self.prefix}{tenant}", Name=table)
        except self.glue.exceptions.EntityNotFoundException:
            return None
        return answer["Table"].get("Parameters", {}).get("metadata_location")

    def tables(self, tenant: str) -> list[str]:
        names: list[str] = []
        try:
            for page in self.glue.get_paginator("get_tables").paginate(
                DatabaseName=f"{self.prefix}{tenant}"
            ):
                names += [table["Name"] for table in page["TableList"]]
        except self.glue.exceptions.EntityNotFoundException:
            return []
        return sorted(names)


@contextmanager
def local_connection(setup: tuple[str, ...] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB database that reads Iceberg metadata (avro loaded), after ``setup``."""
    from blocklake.lake.duckdb_extensions import load_statements

    connection = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"},
    )
    try:
        for statement in (*setup, *load_statements("avro")):
            connection.execute(statement)
        yield connection
    finally:
        connection.close()


def _int(value: bytes | None) -> int | None:
    """An Iceberg single-value bound: little-endian (int 4 bytes, long/timestamp 8 bytes)."""
    return None if value is None else int.from_bytes(value, "little", signed=True)


class IcebergPlanner:
    """``plan`` and ``tables`` of ``blocklake.lake.Lake``, from metadata only.

    ``connect(tenant)`` gives a DuckDB connection that can read the tenant's files (avro
    loaded; on S3 httpfs and the tenant's credentials), closed on exit; it runs our SQL only.
    ``opened`` counts the metadata objects opened (metadata files, manifest lists, manifests)
    since the planner was made: what a benchmark reports."""

    def __init__(
        self,
        locator: Locator,
        connect: Callable[[str], AbstractContextManager[duckdb.DuckDBPyConnection]],
    ) -> None:
        self.locator = locator
        self.connect = connect
        self.opened = 0
        self.opened_bytes = 0

    def tables(self, tenant: str) -> list[str]:
        return self.locator.tables(tenant)

    def plan(self, table: str, tenant: str, begin_ns: int, end_ns: int) -> TablePlan:
        return self.plan_tables([table], tenant, begin_ns, end_ns)[table]

    def plan_tables(
        self, names: list[str], tenant: str, begin_ns: int, end_ns: int
    ) -> dict[str, TablePlan]:
        """``plan`` of each table, read through one connection."""
        locations = {name: self.locator.metadata_location(name, tenant) for name in names}
        plans = {
            name: TablePlan(name, tenant, None) for name, found in locations.items() if not found
        }
        if len(plans) == len(names):
            return plans
        with self.connect(tenant) as connection:
            for name, location in locations.items():
                if location:
                    plans[name] = self._plan(connection, name, tenant, location, begin_ns, end_ns)
        return plans

    def _plan(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        tenant: str,
        location: str,
        begin_ns: int,
        end_ns: int,
    ) -> TablePlan:
        text, size = connection.execute(
            "SELECT content, size FROM read_text($f)", {"f": location}
        ).fetchone()
        self._count(size)
        metadata = json.loads(text)
        snapshot_id = metadata.get("current-snapshot-id")
        snapshot = next(
            (s for s in metadata.get("snapshots", []) if s["snapshot-id"] == snapshot_id), None
        )
        if snapshot is None:  # created, never written
            return TablePlan(table, tenant, location, [location])
        schema = next(
            s for s in metadata["schemas"] if s["schema-id"] == metadata["current-schema-id"]
        )
        ids = {field["name"]: field["id"] for field in schema["fields"]}
        table_layout = layout(table, _arrow_names(schema))
        begin_us = -(-begin_ns // 1000)  # the views' literals: the next microsecond up
        end_us = -(-end_ns // 1000)
        begin_id = ids.get(table_layout.begin) if table_layout.begin else None
        end_id = ids.get(table_layout.end) if table_layout.end else None
        hour_fields = {
            spec["spec-id"]: next(
                (
                    (index, field["name"])
                    for index, field in enumerate(spec["fields"])
                    if field["source-id"] == end_id and field["transform"] == "hour"
                ),
                None,
            )
            for spec in metadata["partition-specs"]
        }
        first_hour = begin_us // HOUR_US if end_id is not None else None
        manifest_list = snapshot["manifest-list"]
        self._count(self._size(connection, manifest_list))
        manifests = connection.execute(
            "SELECT manifest_path, manifest_length, content, partition_spec_id, partitions "
            "FROM read_avro($f)",
            {"f": manifest_list},
        ).fetchall()
        files: list[DataFile] = []
        hours: set[int] = set()
        for path, length, content, spec_id, summaries in manifests:
            hour_field = hour_fields.get(spec_id)
            if content == 0 and first_hour is not None and hour_field is not None and summaries:
                upper = _int(summaries[hour_field[0]]["upper_bound"])
                if upper is not None and upper < first_hour:
                    continue  # every file of it ended before the range
            self._count(length)
            for entry in self._entries(connection, path, hour_field, begin_id, end_id):
                file_content, file_path, records, size, hour, lower_begin, upper_end = entry
                if file_content == 0 and first_hour is not None:
                    if hour is not None and hour < first_hour:
                        continue
                    if upper_end is not None and _int(upper_end) < begin_us:
                        continue
                    if lower_begin is not None and _int(lower_begin) >= end_us:
                        continue
                files.append(DataFile(file_path, size, records))
                if hour is not None:
                    hours.add(hour)
        return TablePlan(
            table,
            tenant,
            location,
            [location, manifest_list, *(m[0] for m in manifests)],
            sorted(files, key=lambda f: f.path),
            sorted(partition(hour * HOUR_US * 1000) for hour in hours),
        )

    def _entries(
        self,
        connection: duckdb.DuckDBPyConnection,
        manifest: str,
        hour_field: tuple[int, str] | None,
        begin_id: int | None,
        end_id: int | None,
    ) -> list[tuple]:
        """(content, path, records, bytes, hour, begin lower bound, end upper bound) of each
        live file of a manifest (deleted entries left out)."""
        hour = f'data_file.partition."{hour_field[1]}"' if hour_field else "NULL"
        lower = f"data_file.lower_bounds[{begin_id}]" if begin_id is not None else "NULL"
        upper = f"data_file.upper_bounds[{end_id}]" if end_id is not None else "NULL"
        return connection.execute(
            f"SELECT data_file.content, data_file.file_path, data_file.record_count, "
            f"data_file.file_size_in_bytes, {hour}, {lower}, {upper} "
            "FROM read_avro($f) WHERE status <> 2",
            {"f": manifest},
        ).fetchall()

    @staticmethod
    def _size(connection: duckdb.DuckDBPyConnection, location: str) -> int:
        return connection.execute("SELECT size FROM read_blob($f)", {"f": location}).fetchone()[0]

    def _count(self, size: int) -> None:
        self.opened += 1
        self.opened_bytes += int(size or 0)


def _arrow_names(schema: dict) -> Any:
    """The schema's top-level columns as ``layout`` asks for them (names, and whether ``time``
    is a timestamp)."""
    import pyarrow as pa

    fields = []
    for field in schema["fields"]:
        kind = field["type"] if isinstance(field["type"], str) else "nested"
        timed = kind in ("timestamptz", "timestamp", "timestamp_ns", "timestamptz_ns")
        fields.append(pa.field(field["name"], pa.timestamp("us") if timed else pa.string()))
    return pa.schema(fields)
