"""DuckDB over the tenant's Parquet files: one in-memory database per query, locked down.

Walls between a tenant's SQL and everything else, each enough alone for what it guards:

1. The SQL is checked on DuckDB's own parse tree against allow-lists before anything runs
   (``blocklake.query.duckdb_sql``): one query, over the lake's views, calling only functions
   that read no file, run no SQL text and show no setting.
2. The database holds only this tenant's read access: its views read the files of the tenant's
   partitions that overlap the time range (listed through the blob store, so a local directory
   and S3 work alike), then ``allowed_paths`` is set to exactly those files, external access is
   turned off and the configuration locked. A path with ``..``, ``//``, ``%2E``, a glob or a
   symlink names no listed file, whatever DuckDB would make of it. On S3 its credentials are the
   tenant's own, scoped by a session policy (``blocklake.query.duckdb_s3``).
3. Limits (``QueryLimits``): the files and bytes of the views the query names, counted from
   their Parquet footers before it runs (``blocklake.query.plan``), ``memory_limit``,
   ``threads``, spill size and a temporary directory of its own (outside every tenant's files,
   removed afterwards), a wall-clock timeout that interrupts the query, and caps on rows and
   result bytes enforced while the result streams.

The views are those of ``schemas/views.toml`` (``blocklake.query.views``).

Error messages name neither the lake's root nor the temporary directory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.format.schema import tables
from blocklake.query.duckdb_sql import check_query, tables_named
from blocklake.query.engine import QueryRequest, QueryResult
from blocklake.query.plan import Scan, TableScan, check_scan
from blocklake.query.views import views
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import partition_hour, table_prefix
from blocklake.stores.table_files import live_files

PARTITION_SLACK = timedelta(hours=1)
"""A block lands in the partition of its begin time, so its rows may run into the next hour."""
BATCH_ROWS = 2048
"""Rows per streamed result batch: the granularity of the row and byte caps."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_for(error: duckdb.Error, timed_out: bool, limits: QueryLimits) -> ClientError:
    """Whose fault and which limit: 400 for the query, 504 when the query ran out of time,
    502 when the lake could not be read."""
    if timed_out:
        return ClientError(
            504,
            "query_timeout",
            f"the query ran longer than {limits.timeout_s:g} s and was stopped",
        )
    if isinstance(error, duckdb.OutOfMemoryException):
        return ClientError(
            400,
            "query_memory_limit",
            f"the query needs more than {limits.memory_mb} MB of memory and "
            f"{limits.temp_mb} MB of spill space: aggregate more, or narrow the time range",
        )
    if isinstance(error, duckdb.HTTPException | duckdb.IOException) and not isinstance(
        error, duckdb.PermissionException
    ):
        return ClientError(502, "lake_unavailable", "the lake's files could not be read")
    return ClientError(400, "query_failed", _ANSI.sub("", str(error)))


class DuckDbEngine:
    dialect = "duckdb"

    def __init__(
        self,
        blobs: BlobStore,
        limits: QueryLimits | None = None,
        connection_setup: Callable[[str], tuple[str, ...]] = lambda tenant: (),
        config: dict[str, str] | None = None,
    ) -> None:
        self.blobs = blobs
        self.limits = limits or QueryLimits()
        self.connection_setup = connection_setup
        """Statements run on each new connection for a tenant first (loading httpfs, the
        tenant's S3 secret), before it is locked down: ``blocklake.query.duckdb_s3``."""
        self.config = dict(config or {})
        """``duckdb.connect`` options of each query's database, besides the limits."""
        self._root = blobs.url("")

    @classmethod
    def for_settings(cls, settings: Settings, blobs: BlobStore) -> DuckDbEngine:
        """The engine the settings describe: on S3 (``settings.bucket``), httpfs from the
        installed wheel with each tenant's credentials (from the reader role when one is
        configured, else the process's own); on a local directory, nothing to set up."""
        if not settings.bucket:
            return cls(blobs, settings.query)
        from blocklake.query import duckdb_s3

        credentials: Callable[[str], duckdb_s3.Credentials | None]
        if settings.query_reader_role_arn:
            import boto3

            credentials = duckdb_s3.TenantReaderCredentials(
                boto3.client("sts"), settings.query_reader_role_arn, settings.bucket, list(tables())
            )
        else:
            credentials = lambda tenant: duckdb_s3.environment_credentials()  # noqa: E731
        return cls(
            blobs,
            settings.query,
            duckdb_s3.s3_tenant_setup(settings.bucket, credentials),
            duckdb_s3.DUCKDB_CONFIG,
        )

    def _keys(self, table: str, request: QueryRequest) -> list[str]:
        keys = list(self.blobs.list(table_prefix(table, request.tenant)))
        if views()[table].time_filter:
            # Partition H holds rows of [H, H + 1 h + slack): keep those that overlap the range.
            after = (
                datetime.fromtimestamp(request.begin_ns / 1e9, UTC)
                - PARTITION_SLACK
                - timedelta(hours=1)
            )
            last = datetime.fromtimestamp(request.end_ns / 1e9, UTC)
            hours = ((key, partition_hour(key)) for key in keys)
            keys = [key for key, hour in hours if hour and after < hour <= last]
        return list(live_files(self.blobs, keys))

    def _measure(self, connection: duckdb.DuckDBPyConnection, keys: dict[str, list[str]]) -> Scan:
        """Partitions, files, bytes and rows of the tables' files, from their Parquet footers."""
        scan = Scan()
        for table, table_keys in sorted(keys.items()):
            partitions = sorted({"/".join(key.split("/")[3:5]) for key in table_keys})
            measured = TableScan(partitions, len(table_keys))
            if table_keys:
                size, rows = connection.execute(
                    "SELECT sum(file_size_bytes), sum(num_rows) FROM parquet_file_metadata($f)",
                    {"f": [self.blobs.url(key) for key in table_keys]},
                ).fetchone()
                measured.bytes, measured.rows = int(size), int(rows)
            scan.tables[table] = measured
        return scan

    def scan(self, request: QueryRequest) -> Scan:
        """What ``request`` would read (the views it names, in its range), without running it:
        the dry run's figures, and the count any engine checks before running."""
        check_query(request.sql, frozenset(tables()))
        named = tables_named(request.sql) & set(tables())
        temp_dir = tempfile.mkdtemp(prefix="blocklake-query-")
        try:
            connection = self._connect(temp_dir)
            try:
                for statement in self.connection_setup(request.tenant):
                    connection.execute(statement)
                keys = {table: self._keys(table, request) for table in named}
                return self._measure(connection, keys)
            except duckdb.Error as error:
                raise _error_for(error, False, self.limits) from None
            finally:
                connection.close()
        except ClientError as error:
            message = self._scrub(error.message, temp_dir)
            raise ClientError(error.status, error.code, message, error.headers) from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _view(
        self,
        connection: duckdb.DuckDBPyConnection,
        table: str,
        files: list[str],
        request: QueryRequest,
    ) -> None:
        view = views()[table]
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            select = view.select(
                f"read_parquet([{listed}], union_by_name = true)", request.begin_ns, request.end_ns
            )
        else:
            select = view.empty()
        connection.execute(f'CREATE VIEW "{table}" AS {select}')

    def _connect(self, temp_dir: str) -> duckdb.DuckDBPyConnection:
        limits = self.limits
        return duckdb.connect(
            ":memory:",
            config={
                "memory_limit": f"{limits.memory_mb}MB",
                "threads": str(limits.threads),
                "temp_directory": temp_dir,
                "max_temp_directory_size": f"{limits.temp_mb}MB",
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
                **self.config,
            },
        )

    def run(
        self, request: QueryRequest, admit: Callable[[Scan], None] | None = None
    ) -> QueryResult:
        """The answer to ``request``; ``admit``, when given, sees what the query would read
        before it runs and may refuse it (a daily budget) by raising ``ClientError``."""
        check_query(request.sql, frozenset(tables()))
        named = tables_named(request.sql) & set(tables())
        temp_dir = tempfile.mkdtemp(prefix="blocklake-query-")
        try:
            connection = self._connect(temp_dir)
            try:
                for statement in self.connection_setup(request.tenant):
                    connection.execute(statement)
                readable = []
                keys = {table: self._keys(table, request) for table in tables()}
                for table, table_keys in keys.items():
                    files = [self.blobs.url(key) for key in table_keys]
                    self._view(connection, table, files, request)
                    readable += files
                try:
                    scan = self._measure(connection, {t: keys[t] for t in named})
                except duckdb.Error as error:
                    raise _error_for(error, False, self.limits) from None
                check_scan(scan, self.limits)
                if admit is not None:
                    admit(scan)
                connection.execute("SET allowed_directories = []")
                connection.execute("SET allowed_paths = $paths", {"paths": readable})
                connection.execute("SET enable_external_access = false")
                connection.execute("SET lock_configuration = true")
                result = self._run_limited(connection, request)
                return replace(result, scanned_bytes=scan.bytes)
            finally:
                connection.close()
        except ClientError as error:
            message = self._scrub(error.message, temp_dir)
            raise ClientError(error.status, error.code, message, error.headers) from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _scrub(self, message: str, temp_dir: str) -> str:
        """The message without the lake's root or the temporary directory."""
        return message.replace(temp_dir, "<temp>").replace(self._root, "")

    def _run_limited(
        self, connection: duckdb.DuckDBPyConnection, request: QueryRequest
    ) -> QueryResult:
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            connection.interrupt()

        timer = threading.Timer(self.limits.timeout_s, interrupt)
        timer.start()
        try:
            try:
                relation = connection.sql(request.sql)
            except (duckdb.BinderException, duckdb.CatalogException):
                # The relation API drops where the error is; binding again through execute()
                # fails the same way, before running anything, with "LINE n:" and a caret.
                connection.execute(request.sql)
                raise
            columns = list(zip(relation.columns, [str(t) for t in relation.types], strict=True))
            reader = relation.limit(request.max_rows + 1).to_arrow_reader(BATCH_ROWS)
            table, truncated_by = self._collect(reader, request.max_rows)
        except duckdb.Error as error:
            raise _error_for(error, timed_out.is_set(), self.limits) from None
        finally:
            timer.cancel()
        return QueryResult(columns, table, truncated_by)

    def _collect(self, reader: pa.RecordBatchReader, max_rows: int) -> tuple[pa.Table, str | None]:
        """Batches until ``max_rows`` rows or ``max_result_bytes`` bytes (Arrow), whichever
        comes first; the limit reached, if any."""
        batches: list[pa.RecordBatch] = []
        rows = size = 0
        truncated_by = None
        for batch in reader:
            room = self.limits.max_result_bytes - size
            if batch.nbytes > room:  # keep the rows that fit, at the batch's average row size
                batches.append(batch.slice(0, batch.num_rows * room // batch.nbytes))
                truncated_by = "max_result_bytes"
                break
            batches.append(batch)
            size += batch.nbytes
            rows += batch.num_rows
            if rows > max_rows:
                truncated_by = "max_rows"
                break
        return pa.Table.from_batches(batches, reader.schema).slice(0, max_rows), truncated_by
