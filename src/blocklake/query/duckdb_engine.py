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
3. Limits (``QueryLimits``): the query runs in a process of its own with a capped address
   space, ``memory_limit``, ``threads``, spill size and a temporary directory of its own
   (outside every tenant's files, removed afterwards), a wall-clock timeout (DuckDB's interrupt,
   then a kill), and caps on rows and result bytes enforced while the result streams.

Error messages name neither the lake's root nor the temporary directory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from blocklake.config import QueryLimits, Settings
from blocklake.errors import ClientError
from blocklake.format.schema import tables
from blocklake.query.duckdb_sandbox import QueryPlan, View, run_isolated
from blocklake.query.duckdb_sql import check_query
from blocklake.query.engine import QueryRequest, QueryResult
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

    def _condition(self, table: str, request: QueryRequest) -> str:
        where = TIME_FILTERS.get(table, "")
        return where.replace("$begin", _timestamp_literal(request.begin_ns)).replace(
            "$end", _timestamp_literal(request.end_ns)
        )

    def run(self, request: QueryRequest) -> QueryResult:
        check_query(request.sql, frozenset(tables()))
        temp_dir = tempfile.mkdtemp(prefix="blocklake-query-")
        try:
            plan = QueryPlan(
                sql=request.sql,
                max_rows=request.max_rows,
                limits=self.limits,
                temp_dir=temp_dir,
                views=[
                    View(table, self._files(table, request), self._condition(table, request))
                    for table in tables()
                ],
                setup=self.connection_setup(request.tenant),
                config=self.config,
            )
            return run_isolated(plan)
        except ClientError as error:
            message = self._scrub(error.message, temp_dir)
            raise ClientError(error.status, error.code, message, error.headers) from None
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _scrub(self, message: str, temp_dir: str) -> str:
        """The message without the lake's root or the temporary directory."""
        return message.replace(temp_dir, "<temp>").replace(self._root, "")
