"""DuckDB over the tenant's Parquet files: one database in one process per query, locked down.

Walls between a tenant's SQL and everything else, each enough alone for what it guards:

1. The SQL is checked on DuckDB's own parse tree against allow-lists before anything runs
   (``blocklake.query.duckdb_sql``): one query, over the lake's views, calling only functions
   that read no file, run no SQL text and show no setting.
2. The database holds only this tenant's read access: its views read the files of the tenant's
   partitions that overlap the time range (listed here, through the blob store, so a local
   directory and S3 work alike), and it may open exactly those files and nothing else
   (``blocklake.query.duckdb_sandbox``): a path with ``..``, ``//``, ``%2E``, a glob or a
   symlink names no listed file, whatever DuckDB would make of it. On S3 its credentials are
   the tenant's own, scoped by a session policy (``blocklake.query.duckdb_s3``).
3. Limits (``QueryLimits``): the files and bytes of the views the query names, counted from
   their Parquet footers before it runs (``blocklake.query.plan``); then the query runs in a
   process of its own with a capped address space, ``memory_limit``, ``threads``, spill size and
   a temporary directory of its own (outside every tenant's files, removed afterwards), a
   wall-clock timeout (DuckDB's interrupt, then a kill), and caps on rows and result bytes
   enforced while the result streams.

The views are those of ``schemas/views.toml`` (``blocklake.query.views``), derived ones defined
after the views they read.

Error messages name neither the lake's root nor the temporary directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import duckdb

from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.query.duckdb_sandbox import PlannedView, QueryPlan, error_for, run_isolated
from blocklake.query.duckdb_sql import check_query, tables_named
from blocklake.query.engine import QueryRequest, QueryResult
from blocklake.query.plan import Scan, TableScan, check_scan
from blocklake.query.views import (
    USER_TABLE_PREFIX,
    View,
    derived_views,
    user_view,
    views,
    views_read,
)
from blocklake.stores.blobs import BlobStore
from blocklake.stores.layout import partition_hour, table_prefix
from blocklake.stores.table_files import live_files

PARTITION_SLACK = timedelta(hours=1)
"""A block lands in the partition of its begin time, so its rows may run into the next hour."""


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
                boto3.client("sts"), settings.query_reader_role_arn, settings.bucket
            )
        else:
            credentials = lambda tenant: duckdb_s3.environment_credentials()  # noqa: E731
        return cls(
            blobs,
            settings.query,
            duckdb_s3.s3_tenant_setup(settings.bucket, credentials),
            duckdb_s3.DUCKDB_CONFIG,
        )

    def _views(self, tenant: str) -> dict[str, View]:
        """The views the tenant's SQL may name: the lake's tables, and the table of each
        user-defined event type the tenant has files of (found by listing; a catalog can
        answer this instead)."""
        found = dict(views())
        for folder in self.blobs.list_folders("tables/"):
            name = folder.removeprefix("tables/").rstrip("/")
            if (
                name.startswith(USER_TABLE_PREFIX)
                and name not in found
                and f"{folder}tenant={tenant}/" in self.blobs.list_folders(folder)
            ):
                found[name] = user_view(name)
        return found

    def _keys(self, table: str, request: QueryRequest, view: View) -> list[str]:
        keys = list(self.blobs.list(table_prefix(table, request.tenant)))
        if view.time_filter:
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

    @contextmanager
    def _footers(self, tenant: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A database that reads the tenant's Parquet footers (our SQL only, never the
        tenant's), with its S3 access when the lake is on S3."""
        connection = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false",
                **self.config,
            },
        )
        try:
            for statement in self.connection_setup(tenant):
                connection.execute(statement)
            yield connection
        finally:
            connection.close()

    def _measure(self, tenant: str, keys: dict[str, list[str]]) -> Scan:
        """Partitions, files, bytes and rows of the tables' files, from their Parquet footers."""
        scan = Scan({table: TableScan() for table, table_keys in keys.items() if not table_keys})
        keys = {table: table_keys for table, table_keys in keys.items() if table_keys}
        if not keys:  # nothing to read: no database (nor, on S3, httpfs and credentials)
            return scan
        with self._footers(tenant) as connection:
            for table, table_keys in sorted(keys.items()):
                partitions = sorted({"/".join(key.split("/")[3:5]) for key in table_keys})
                try:
                    size, rows = connection.execute(
                        "SELECT sum(file_size_bytes), sum(num_rows) FROM parquet_file_metadata($f)",
                        {"f": [self.blobs.url(key) for key in table_keys]},
                    ).fetchone()
                except duckdb.Error as error:
                    raise error_for(error, False, self.limits) from None
                scan.tables[table] = TableScan(partitions, len(table_keys), int(size), int(rows))
        return scan

    def scan(self, request: QueryRequest) -> Scan:
        """What ``request`` would read (the views it names, in its range), without running it:
        the dry run's figures, and the count any engine checks before running."""
        available = self._views(request.tenant)
        check_query(request.sql, frozenset(available) | frozenset(derived_views()))
        named = views_read(tables_named(request.sql), available)
        try:
            return self._measure(
                request.tenant, {t: self._keys(t, request, available[t]) for t in named}
            )
        except ClientError as error:
            raise self._scrubbed(error, "") from None

    def run(
        self, request: QueryRequest, admit: Callable[[Scan], None] | None = None
    ) -> QueryResult:
        """The answer to ``request``; ``admit``, when given, sees what the query would read
        before it runs and may refuse it (a daily budget) by raising ``ClientError``."""
        available = self._views(request.tenant)
        check_query(request.sql, frozenset(available) | frozenset(derived_views()))
        named = views_read(tables_named(request.sql), available)
        temp_dir = tempfile.mkdtemp(prefix="blocklake-query-")
        try:
            keys = {table: self._keys(table, request, view) for table, view in available.items()}
            scan = self._measure(request.tenant, {t: keys[t] for t in named})
            check_scan(scan, self.limits)
            if admit is not None:
                admit(scan)
            plan = QueryPlan(
                sql=request.sql,
                max_rows=request.max_rows,
                limits=self.limits,
                temp_dir=temp_dir,
                views=[
                    *(self._view(view, keys[view.name], request) for view in available.values()),
                    *(PlannedView(d.name, [], d.sql) for d in derived_views().values()),
                ],
                setup=self.connection_setup(request.tenant),
                config=self.config,
            )
            return replace(run_isolated(plan), scanned_bytes=scan.bytes)
        except ClientError as error:
            raise self._scrubbed(error, temp_dir) from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _view(self, view: View, keys: list[str], request: QueryRequest) -> PlannedView:
        table = view.name
        files = [self.blobs.url(key) for key in keys]
        if not files:
            return PlannedView(table, [], view.empty())
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        source = f"read_parquet([{listed}], union_by_name = true)"
        return PlannedView(table, files, view.select(source, request.begin_ns, request.end_ns))

    def _scrubbed(self, error: ClientError, temp_dir: str) -> ClientError:
        """The error without the lake's root or the temporary directory in its message."""
        message = error.message.replace(self._root, "")
        if temp_dir:
            message = message.replace(temp_dir, "<temp>")
        return ClientError(error.status, error.code, message, error.headers)
