"""Runtime configuration, all from environment variables, documented here and nowhere else.

``BLOCKLAKE_DATA_DIR`` (default ``./blocklake-data``)
    Local lake root and SQLite file: the embedded default.
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
``BLOCKLAKE_QUERY_MAX_ROWS`` (default ``10000``)
    Rows one query returns at most; the result says when it was cut.
``BLOCKLAKE_ATHENA_WORKGROUP``, ``BLOCKLAKE_GLUE_DATABASE``, ``BLOCKLAKE_ETL_FUNCTION_NAME``
    Set on the deployed query Lambda by the stack, for the Athena engine and just-in-time
    conversion still to come.
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


def parse_api_keys(text: str) -> dict[str, str]:
    """``key=tenant,key2=tenant2`` to a mapping, naming the malformed pair if any."""
    keys = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        key, sep, tenant = pair.partition("=")
        if not sep or not key or not tenant:
            raise ValueError(f"BLOCKLAKE_API_KEYS: {pair!r} is not key=tenant")
        keys[key] = tenant
    return keys


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
    query_max_rows: int = 10_000

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
            query_max_rows=int(env.get("BLOCKLAKE_QUERY_MAX_ROWS", defaults.query_max_rows)),
        )
