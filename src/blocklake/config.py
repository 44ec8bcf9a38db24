"""Runtime configuration, all from environment variables, documented here and nowhere else.

``BLOCKLAKE_DATA_DIR`` (default ``./blocklake-data``)
    Local lake root and SQLite file: the embedded default (``blocklake serve --data-dir``
    overrides it).
``BLOCKLAKE_ENDPOINT`` (default ``http://127.0.0.1:8787``)
    The ``blocklake`` command's API (``query``, ``logs``, ``spans``, ``processes``): the local
    server or a deployed stack's URL.
``BLOCKLAKE_API_KEY`` (default ``blocklake-local``)
    The ``blocklake`` command's API key, which decides the tenant.
``BLOCKLAKE_BUCKET`` (unset)
    S3 bucket of the lake; when set, blobs go to S3 instead of the data directory.
``BLOCKLAKE_METADATA_URL`` (default ``sqlite:///<data dir>/metadata.db``)
    ``sqlite:///path`` or ``postgresql://user@host:port/db``.
``BLOCKLAKE_DB_CLUSTER_ARN`` (unset)
    Aurora cluster; when set (with the two below), metadata goes through the RDS Data API.
``BLOCKLAKE_DB_SECRET_ARN`` (unset)
    Secrets Manager secret holding the database credentials, for the Data API.
``BLOCKLAKE_DB_NAME`` (default ``blocklake``)
    Database name for the Data API.
``BLOCKLAKE_API_KEYS`` (default ``blocklake-local=local``)
    Local server only: ``key=tenant`` pairs, comma-separated.
``BLOCKLAKE_API_KEYS_SECRET_ARN`` (unset)
    Authorizer Lambda only: secret whose JSON maps the SHA-256 hex digest of each key to its
    tenant.
``BLOCKLAKE_MAX_BLOCK_BYTES`` (default ``4194304``)
    Largest block accepted: API Gateway and Lambda cap bodies near 6 MB once base64-encoded.
``BLOCKLAKE_ATTACHMENT_MAX_BYTES`` (default ``5368709120``, 5 GiB)
    Largest attachment accepted (``POST /v1/attachments``): S3's limit for a single PUT, which
    is also the most a value above it may be when the lake is on S3.
``BLOCKLAKE_QUERY_MAX_ROWS`` (default ``10000``)
    Rows one query returns at most; the result says when it was cut.
``BLOCKLAKE_QUERY_MAX_RESULT_BYTES`` (default ``4194304``)
    Bytes of one query's answer at most (JSON, CSV or Arrow IPC; API Gateway answers at most
    6 MB); rows past it are cut and the result says so.
``BLOCKLAKE_QUERY_TIMEOUT_S`` (default ``20``)
    Wall-clock seconds a query may run before it is interrupted (under API Gateway's 30 s).
``BLOCKLAKE_QUERY_MEMORY_MB`` (default ``1024``)
    DuckDB ``memory_limit`` of one query; past it, operators spill to the query's own temporary
    directory, then fail.
``BLOCKLAKE_QUERY_TEMP_MB`` (default ``256``)
    Disk one query may spill (``max_temp_directory_size``; Lambda's ``/tmp`` is 512 MB).
``BLOCKLAKE_QUERY_THREADS`` (default ``2``)
    DuckDB worker threads of one query.
``BLOCKLAKE_QUERY_CONCURRENCY`` (default ``2``)
    Queries one tenant may run at once in one server process; more are answered 429.
``BLOCKLAKE_QUERY_MAX_SCAN_FILES`` (default ``20000``)
    Files one query may read (counted before it runs, in the views it names and the partitions
    its range reaches); past it the query is refused (400 ``query_scan_limit``).
``BLOCKLAKE_QUERY_MAX_SCAN_BYTES`` (default ``10737418240``, 10 GiB)
    Bytes of Parquet one query may read, counted the same way.
``BLOCKLAKE_QUERY_DAILY_QUERIES`` (default ``20000``)
    Queries one tenant may run per UTC day (429 ``daily_query_limit`` past it).
``BLOCKLAKE_QUERY_DAILY_SCAN_BYTES`` (default ``1099511627776``, 1 TiB: $5 on Athena)
    Bytes one tenant's queries may scan per UTC day (429 ``daily_scan_limit``); usage is kept
    under ``usage/`` in the lake (``blocklake.query.budget``).
``BLOCKLAKE_QUERY_READER_ROLE_ARN`` (unset)
    Query Lambda on S3: the role assumed for each tenant, with a session policy limited to that
    tenant's table prefixes, whose credentials DuckDB gets; unset, DuckDB gets the function's own.
``BLOCKLAKE_ATHENA_WORKGROUP``, ``BLOCKLAKE_GLUE_DATABASE`` (unset)
    Set on the deployed query Lambda by the stack: with both, queries may ask for
    ``"engine": "athena"`` (``blocklake.query.athena_engine``); unset, only DuckDB answers.
``BLOCKLAKE_ETL_FUNCTION_NAME``
    Set on the deployed query Lambda by the stack, for just-in-time conversion still to come.
``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_LOG_LEVEL``
    Read by powertools in the Lambdas.
``POWERTOOLS_METRICS_NAMESPACE`` (default ``blocklake``)
    CloudWatch namespace of the handlers' EMF metrics (``blocklake.observability``).
``POWERTOOLS_METRICS_DISABLED`` (default: false on Lambda, true elsewhere)
    EMF metrics on stdout; off the local server prints none (``false`` turns them on anywhere).
``POWERTOOLS_TRACE_DISABLED`` (default false)
    X-Ray tracing, which is on only on Lambda and when ``aws_xray_sdk`` is installed.
``AWS_LAMBDA_FUNCTION_NAME`` (set by Lambda)
    Tells the handlers they run on Lambda (metrics and traces on).
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``
    Set by Lambda; with ``BLOCKLAKE_BUCKET``, the query Lambda gives them to DuckDB's httpfs as
    an S3 secret (``blocklake.query.duckdb_s3``); without keys, DuckDB's credential chain.
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (unset)
    S3 endpoint override (moto, MinIO), honoured by boto3 and passed on to DuckDB.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use; see the ``BLOCKLAKE_QUERY_*`` variables above."""

    max_rows: int = 10_000
    max_result_bytes: int = 4 * 1024 * 1024
    timeout_s: float = 20.0
    memory_mb: int = 1024
    temp_mb: int = 256
    threads: int = 2
    concurrency: int = 2
    max_scan_files: int = 20_000
    max_scan_bytes: int = 10 * 1024**3
    daily_queries: int = 20_000
    daily_scan_bytes: int = 1024**4

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QueryLimits:
        defaults = cls()

        def number(name: str, default: float, kind: type = int) -> Any:
            text = env.get(f"BLOCKLAKE_QUERY_{name}")
            if text is None:
                return default
            try:
                value = kind(text)
            except ValueError:
                value = 0
            if value <= 0:
                raise ValueError(
                    f"BLOCKLAKE_QUERY_{name}: expected a positive number, got {text!r}"
                )
            return value

        return cls(
            max_rows=number("MAX_ROWS", defaults.max_rows),
            max_result_bytes=number("MAX_RESULT_BYTES", defaults.max_result_bytes),
            timeout_s=number("TIMEOUT_S", defaults.timeout_s, float),
            memory_mb=number("MEMORY_MB", defaults.memory_mb),
            temp_mb=number("TEMP_MB", defaults.temp_mb),
            threads=number("THREADS", defaults.threads),
            concurrency=number("CONCURRENCY", defaults.concurrency),
            max_scan_files=number("MAX_SCAN_FILES", defaults.max_scan_files),
            max_scan_bytes=number("MAX_SCAN_BYTES", defaults.max_scan_bytes),
            daily_queries=number("DAILY_QUERIES", defaults.daily_queries),
            daily_scan_bytes=number("DAILY_SCAN_BYTES", defaults.daily_scan_bytes),
        )


def parse_api_keys(text: str) -> dict[str, str]:
    """``key=tenant,key2=tenant2`` to a mapping, naming the malformed pair if any."""
    keys = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, tenant = pair.partition("=")
        if not sep or not key or not tenant:
            raise ValueError(f"BLOCKLAKE_API_KEYS: {pair!r} is not key=tenant")
        keys[key] = tenant
    return keys


S3_MAX_PUT_BYTES = 5 * 1024**3
"""The largest object one S3 PUT (a presigned upload URL) may create."""


def _attachment_max_bytes(env: Mapping[str, str]) -> int:
    text = env.get("BLOCKLAKE_ATTACHMENT_MAX_BYTES", str(S3_MAX_PUT_BYTES))
    if not text.strip().isdigit():
        raise ValueError(f"BLOCKLAKE_ATTACHMENT_MAX_BYTES: {text!r} is not a number of bytes")
    value = int(text)
    if env.get("BLOCKLAKE_BUCKET") and value > S3_MAX_PUT_BYTES:
        raise ValueError(
            f"BLOCKLAKE_ATTACHMENT_MAX_BYTES: {value} is over {S3_MAX_PUT_BYTES}, the most one "
            "S3 PUT takes"
        )
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("blocklake-data")
    bucket: str | None = None
    metadata_url: str | None = None
    db_cluster_arn: str | None = None
    db_secret_arn: str | None = None
    db_name: str = "blocklake"
    api_keys: dict[str, str] = field(default_factory=lambda: {"blocklake-local": "local"})
    max_block_bytes: int = 4 * 1024 * 1024
    max_attachment_bytes: int = S3_MAX_PUT_BYTES
    query: QueryLimits = field(default_factory=QueryLimits)
    query_reader_role_arn: str | None = None
    athena_workgroup: str | None = None
    glue_database: str | None = None
    tables_retention_days: int | None = None
    """Rows of the lake's tables older than this many days are deleted by the committer's
    hourly run (by the end of the hour they belong to); None keeps them."""

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "metadata.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        defaults = cls()
        keys = env.get("BLOCKLAKE_API_KEYS")
        return cls(
            data_dir=Path(env.get("BLOCKLAKE_DATA_DIR", str(defaults.data_dir))),
            bucket=env.get("BLOCKLAKE_BUCKET") or None,
            metadata_url=env.get("BLOCKLAKE_METADATA_URL") or None,
            db_cluster_arn=env.get("BLOCKLAKE_DB_CLUSTER_ARN") or None,
            db_secret_arn=env.get("BLOCKLAKE_DB_SECRET_ARN") or None,
            db_name=env.get("BLOCKLAKE_DB_NAME", defaults.db_name),
            api_keys=parse_api_keys(keys) if keys is not None else defaults.api_keys,
            max_block_bytes=int(env.get("BLOCKLAKE_MAX_BLOCK_BYTES", defaults.max_block_bytes)),
            max_attachment_bytes=_attachment_max_bytes(env),
            query=QueryLimits.from_env(env),
            query_reader_role_arn=env.get("BLOCKLAKE_QUERY_READER_ROLE_ARN") or None,
            athena_workgroup=env.get("BLOCKLAKE_ATHENA_WORKGROUP") or None,
            glue_database=env.get("BLOCKLAKE_GLUE_DATABASE") or None,
            tables_retention_days=_optional_days(env, "BLOCKLAKE_TABLES_RETENTION_DAYS"),
        )


def _optional_days(env: Mapping[str, str], name: str) -> int | None:
    """A positive whole number of days from ``env``, or None when unset; ``ValueError``
    naming the variable otherwise."""
    text = env.get(name)
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}: expected a whole number of days >= 1, got {text!r}")
    return int(text)
