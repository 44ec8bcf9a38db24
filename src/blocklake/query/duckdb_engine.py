"""DuckDB over the tenant's Parquet files: one in-memory database per query, locked down.

The views are built from the files of the partitions that overlap the time range (listed
through the blob store, so the same code reads a local directory or S3), then file access is
limited to the tenant's own table directories and the configuration is locked before the
user's SQL runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from blocklake.errors import ClientError
from blocklake.format.schema import tables
from blocklake.format.tables import arrow_schema
from blocklake.query.engine import QueryRequest, QueryResult, check_read_only
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import partition_hour, table_prefix
from blocklake.stores.table_files import live_files

TIME_FILTERS = {
    "log_entries": "time >= $begin AND time < $end",
    "measures": "time >= $begin AND time < $end",
    "thread_spans": '"end" >= $begin AND "begin" < $end',
    "async_spans": '"end" >= $begin AND "begin" < $end',
    "blocks": "end_time >= $begin AND begin_time < $end",
}
"""Rows each view keeps; tables not listed (processes, streams) are read whole."""

PARTITION_SLACK = timedelta(hours=1)
"""A block lands in the partition of its begin time, so its rows may run into the next hour."""


def _timestamp_literal(time_ns: int) -> str:
    moment = datetime.fromtimestamp(time_ns // 1_000_000_000, UTC)
    micros = (time_ns % 1_000_000_000) // 1000
    return f"TIMESTAMPTZ '{moment:%Y-%m-%d %H:%M:%S}.{micros:06d}+00'"


class DuckDbEngine:
    dialect = "duckdb"

    def __init__(
        self,
        blobs: BlobStore,
        connection_setup: tuple[str, ...] = (),
        config: dict[str, str] | None = None,
    ) -> None:
        self.blobs = blobs
        self.connection_setup = connection_setup
        """Statements run on each new connection first (loading httpfs and S3 secrets), before
        it is locked down: see ``blocklake.query.duckdb_s3.s3_connection_setup``."""
        self.config = dict(config or {})
        """``duckdb.connect`` options of each query's database."""

    @classmethod
    def for_blob_store(cls, blobs: BlobStore) -> DuckDbEngine:
        """The engine for ``blobs``: on S3 (its URLs are ``s3://``), httpfs from the installed
        wheel with the environment's credentials; on a local directory, nothing to set up."""
        if blobs.url("").startswith("s3://"):
            from blocklake.query.duckdb_s3 import DUCKDB_CONFIG, s3_connection_setup

            return cls(blobs, s3_connection_setup(), DUCKDB_CONFIG)
        return cls(blobs)

    def _files(self, table: str, request: QueryRequest) -> list[str]:
        keys = list(self.blobs.list(table_prefix(table, request.tenant)))
        if table in TIME_FILTERS:
            # Partition H holds rows of [H, H + 1 h + slack): keep those that overlap the range.
            after = (
                datetime.fromtimestamp(request.begin_ns / 1e9, UTC)
                - PARTITION_SLACK
                - timedelta(hours=1)
            )
            last = datetime.fromtimestamp(request.end_ns / 1e9, UTC)
            hours = ((key, partition_hour(key)) for key in keys)
            keys = [key for key, hour in hours if hour and after < hour <= last]
        return [self.blobs.url(key) for key in live_files(self.blobs, keys)]

    def _view(
        self, connection: duckdb.DuckDBPyConnection, table: str, request: QueryRequest
    ) -> None:
        files = self._files(table, request)
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            source = f"read_parquet([{listed}], union_by_name = true)"
        else:
            connection.register(f"_empty_{table}", arrow_schema(table).empty_table())
            source = f"_empty_{table}"
        columns = ", ".join(f'"{name}"' for name in arrow_schema(table).names)
        where = TIME_FILTERS.get(table)
        condition = ""
        if where:
            condition = " WHERE " + where.replace(
                "$begin", _timestamp_literal(request.begin_ns)
            ).replace("$end", _timestamp_literal(request.end_ns))
        connection.execute(f'CREATE VIEW "{table}" AS SELECT {columns} FROM {source}{condition}')

    def run(self, request: QueryRequest) -> QueryResult:
        check_read_only(request.sql, self.dialect)
        connection = duckdb.connect(":memory:", config=self.config)
        try:
            for statement in self.connection_setup:
                connection.execute(statement)
            for table in tables():
                self._view(connection, table, request)
            allowed = [self.blobs.url(table_prefix(table, request.tenant)) for table in tables()]
            connection.execute("SET allowed_directories = $dirs", {"dirs": allowed})
            connection.execute("SET enable_external_access = false")
            connection.execute("SET lock_configuration = true")
            try:
                relation = connection.sql(request.sql)
                columns = list(zip(relation.columns, [str(t) for t in relation.types], strict=True))
                result = relation.limit(request.max_rows + 1).to_arrow_table()
            except duckdb.Error as error:
                raise ClientError(400, "query_failed", str(error).split("\n")[0]) from None
        finally:
            connection.close()
        truncated = result.num_rows > request.max_rows
        return QueryResult(columns, result.slice(0, request.max_rows), truncated)
