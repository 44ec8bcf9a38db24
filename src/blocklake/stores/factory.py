"""Builds the configured adapters: the composition root of the Lambdas and the local server."""

from __future__ import annotations

from collections.abc import Callable

from blocklake.config import Settings
from blocklake.stores.blobs import BlobStore, LocalBlobStore
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqlExecutor, SqliteExecutor

# The AWS and PostgreSQL adapters are imported when configured: the local lake installs neither
# boto3 nor psycopg (extras ``aws`` and ``postgres`` in pyproject.toml).


def sql_executor(settings: Settings) -> SqlExecutor:
    """The Data API when a cluster is configured, else the URL's database, else SQLite."""
    if settings.db_cluster_arn is not None:
        if settings.db_secret_arn is None:
            raise ValueError("BLOCKLAKE_DB_CLUSTER_ARN needs BLOCKLAKE_DB_SECRET_ARN as well")
        from blocklake.stores.data_api import DataApiExecutor

        return DataApiExecutor(settings.db_cluster_arn, settings.db_secret_arn, settings.db_name)
    url = settings.metadata_url
    if url is None:
        return SqliteExecutor(settings.sqlite_path)
    if url.startswith("sqlite:///"):
        return SqliteExecutor(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from blocklake.stores.postgres import PsycopgExecutor

        return PsycopgExecutor(url)
    raise ValueError(
        f"BLOCKLAKE_METADATA_URL: unsupported {url!r} "
        "(expected sqlite:///path or postgresql://user@host:port/db)"
    )


def metadata_store(settings: Settings) -> SqlMetadataStore:
    return SqlMetadataStore(sql_executor(settings))


def blob_store(settings: Settings, on_created: Callable[[str], None] | None = None) -> BlobStore:
    if settings.bucket is not None:
        from blocklake.stores.s3 import S3BlobStore

        return S3BlobStore(settings.bucket, on_created=on_created)
    return LocalBlobStore(settings.data_dir, on_created=on_created)
