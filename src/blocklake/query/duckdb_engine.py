"""DuckDB over the tenant's Iceberg tables: one database in one process per query, locked down.

Walls between a tenant's SQL and everything else, each enough alone for what it guards:

1. The SQL is checked on DuckDB's own parse tree against allow-lists before anything runs
   (``blocklake.query.duckdb_sql``): one query, over the lake's views, calling only functions
   that read no file, run no SQL text and show no setting.
2. The database holds only this tenant's read access: each view reads one of the tenant's
   Iceberg tables through ``iceberg_scan`` of its current ``metadata.json``, restricted to the
   time range; the tables are planned here from their metadata (``blocklake.lake``: no listing),
   and the database may open exactly the planned files and nothing else
   (``blocklake.query.duckdb_sandbox``): the metadata file, manifest list and manifests of the
   tenant's tables, and their data files whose partition and statistics overlap the range. A
   path with ``..``, ``//``, ``%2E``, a glob or a symlink names no listed file, whatever DuckDB
   would make of it. On S3 its credentials are the tenant's own, scoped by a session policy
   (``blocklake.query.duckdb_s3``).
3. Limits (``QueryLimits``): the files and bytes of the views the query names, counted from the
   tables' manifests before it runs (``blocklake.query.plan``); then the query runs in a
   process of its own with a capped address space, ``memory_limit``, ``threads``, spill size and
   a temporary directory of its own (outside every tenant's files, removed afterwards), a
   wall-clock timeout (DuckDB's interrupt, then a kill), and caps on rows and result bytes
   enforced while the result streams.

The views are those of ``schemas/views.toml`` (``blocklake.query.views``), plus one per table
the catalog holds for the tenant beyond them (``events_<name>``: every column, rows of the range
by ``time``); derived views are defined after the views they read.

Error messages name neither the lake's root nor the temporary directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import duckdb

from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.format.schema import tables
from blocklake.lake import TablePlan
from blocklake.lake.duckdb_extensions import ICEBERG, load_statements
from blocklake.lake.reader import GlueLocator, IcebergPlanner, Locator
from blocklake.query.duckdb_sandbox import PlannedView, QueryPlan, error_for, run_isolated
from blocklake.query.duckdb_sql import check_query, tables_named
from blocklake.query.engine import QueryRequest, QueryResult
from blocklake.query.plan import Scan, TableScan, check_scan
from blocklake.query.views import derived_views, timestamp_literal, views, views_read
from blocklake.stores.blobs import BlobStore

DUCKDB_CONFIG = {"allow_unsigned_extensions": "true"}
"""DuckDB checks an extension's signature at each ``LOAD`` by hashing the file (iceberg is
50 MB): the files are part of the installed (on Lambda, immutable and hash-checked) code, and
users' SQL cannot ``LOAD`` anything (``blocklake.query.duckdb_s3``)."""


class DuckDbEngine:
    dialect = "duckdb"

    def __init__(
        self,
        blobs: BlobStore,
        locator: Locator,
        limits: QueryLimits | None = None,
        connection_setup: Callable[[str], tuple[str, ...]] = lambda tenant: (),
        config: dict[str, str] | None = None,
    ) -> None:
        self.blobs = blobs
        self.planner = IcebergPlanner(locator, self._metadata_connection)
        """Plans each table's read from its metadata, read with the tenant's access."""
        self.limits = limits or QueryLimits()
        self.connection_setup = connection_setup
        """Statements run on each new connection for a tenant first (loading httpfs, the
        tenant's S3 secret), before it is locked down: ``blocklake.query.duckdb_s3``; the
        iceberg extension is loaded after them."""
        self.config = {**DUCKDB_CONFIG, **(config or {})}
        """``duckdb.connect`` options of each query's database, besides the limits."""
        self._root = blobs.url("")

    @classmethod
    def for_settings(
        cls, settings: Settings, blobs: BlobStore, locator: Locator | None = None
    ) -> DuckDbEngine:
        """The engine the settings describe, its tables located by ``locator`` (by default
        the catalog of ``settings``: Glue through boto3 when deployed, no pyiceberg; else the
        SQL catalog, ``blocklake.lake.catalog``): on S3 (``settings.bucket``), httpfs from the
        installed wheel with each tenant's credentials (from the reader role when one is
        configured, else the process's own); on a local directory, nothing more to set up."""
        if locator is None and settings.bucket and settings.glue_database:
            import boto3

            from blocklake.lake.catalog import namespace_prefix

            locator = GlueLocator(boto3.client("glue"), namespace_prefix(settings))
        elif locator is None:
            from blocklake.lake.catalog import open_lake

            locator = open_lake(settings, blobs)
        if not settings.bucket:
            return cls(blobs, locator, settings.query)
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
            locator,
            settings.query,
            duckdb_s3.s3_tenant_setup(settings.bucket, credentials),
            duckdb_s3.DUCKDB_CONFIG,
        )

    @contextmanager
    def _metadata_connection(self, tenant: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A database that reads the tenant's table metadata (our SQL only, never the
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
            for statement in (*self.connection_setup(tenant), *load_statements("avro")):
                connection.execute(statement)
            yield connection
        finally:
            connection.close()

    def _names(self, tenant: str) -> frozenset[str]:
        """The views a tenant's SQL may name: the schema's tables and its own tables."""
        return frozenset(tables()) | frozenset(self.planner.tables(tenant))

    def _plans(self, names: set[str], request: QueryRequest) -> dict[str, TablePlan]:
        """Each named table's plan; ``ClientError`` 502 when its metadata cannot be read."""
        try:
            return self.planner.plan_tables(
                sorted(names), request.tenant, request.begin_ns, request.end_ns
            )
        except duckdb.Error as error:
            raise error_for(error, False, self.limits) from None

    @staticmethod
    def _measure(plans: dict[str, TablePlan]) -> Scan:
        """Partitions, files, bytes and rows of the planned data files, from the manifests."""
        return Scan(
            {
                name: TableScan(plan.partitions, len(plan.data_files), plan.bytes, plan.rows)
                for name, plan in plans.items()
            }
        )

    def scan(self, request: QueryRequest) -> Scan:
        """What ``request`` would read (the views it names, in its range), without running it:
        the dry run's figures, and the count any engine checks before running."""
        names = self._names(request.tenant)
        check_query(request.sql, names | frozenset(derived_views()))
        return self._measure(self._plans(views_read(tables_named(request.sql), names), request))

    def run(
        self, request: QueryRequest, admit: Callable[[Scan], None] | None = None
    ) -> QueryResult:
        """The answer to ``request``; ``admit``, when given, sees what the query would read
        before it runs and may refuse it (a daily budget) by raising ``ClientError``."""
        names = self._names(request.tenant)
        check_query(request.sql, names | frozenset(derived_views()))
        named = views_read(tables_named(request.sql), names)
        temp_dir = tempfile.mkdtemp(prefix="blocklake-query-")
        try:
            plans = self._plans(named, request)
            scan = self._measure(plans)
            check_scan(scan, self.limits)
            if admit is not None:
                admit(scan)
            unread = {name: TablePlan(name, request.tenant, None) for name in names - named}
            plan = QueryPlan(
                sql=request.sql,
                max_rows=request.max_rows,
                limits=self.limits,
                temp_dir=temp_dir,
                views=[
                    self._view(table_plan, request)
                    for _, table_plan in sorted({**plans, **unread}.items())
                ]
                + [PlannedView(d.name, [], d.sql) for d in derived_views().values()],
                setup=(*self.connection_setup(request.tenant), *load_statements(*ICEBERG)),
                config=self.config,
            )
            return replace(run_isolated(plan), scanned_bytes=scan.bytes)
        except ClientError as error:
            raise self._scrubbed(error, temp_dir) from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _view(self, plan: TablePlan, request: QueryRequest) -> PlannedView:
        """The view over the table's ``iceberg_scan``; for a view the query does not name (or a
        table with no rows yet), no rows: nothing is opened for it."""
        view = views().get(plan.table)
        if plan.metadata_location is None:
            if view is None:
                return PlannedView(plan.table, [], "SELECT NULL AS time WHERE false")
            return PlannedView(plan.table, [], view.empty())
        files = [*plan.metadata_files, *(f.path for f in plan.data_files)]
        source = "iceberg_scan('" + plan.metadata_location.replace("'", "''") + "')"
        if view is not None:
            select = view.select(source, request.begin_ns, request.end_ns)
        else:  # a table of the tenant's own (events_<name>): every column, rows by time
            select = (
                f"SELECT * FROM {source} WHERE time >= {timestamp_literal(request.begin_ns)} "
                f"AND time < {timestamp_literal(request.end_ns)}"
            )
        return PlannedView(plan.table, files, select)

    def _scrubbed(self, error: ClientError, temp_dir: str) -> ClientError:
        """The error without the lake's root or the temporary directory in its message."""
        message = error.message.replace(self._root, "")
        if temp_dir:
            message = message.replace(temp_dir, "<temp>")
        return ClientError(error.status, error.code, message, error.headers)
