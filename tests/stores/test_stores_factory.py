"""The settings pick the adapters."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocklake.config import Settings
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.data_api import DataApiExecutor
from blocklake.stores.factory import blob_store, metadata_store, sql_executor
from blocklake.stores.postgres import PsycopgExecutor
from blocklake.stores.s3 import S3BlobStore
from blocklake.stores.sql import SqliteExecutor
from tests.support.metadata_rows import a_block
from tests.support.rds_data_shim import CLUSTER_ARN, SECRET_ARN


def test_sqlite_by_default_and_by_url(tmp_path: Path) -> None:
    default = sql_executor(Settings(data_dir=tmp_path))
    assert isinstance(default, SqliteExecutor)
    assert (tmp_path / "metadata.db").exists()
    by_url = sql_executor(Settings(metadata_url=f"sqlite:///{tmp_path}/other.db"))
    assert isinstance(by_url, SqliteExecutor)
    assert (tmp_path / "other.db").exists()


def test_postgresql_url_is_psycopg_on_that_database(postgres_database: str) -> None:
    store = metadata_store(Settings(metadata_url=postgres_database))
    assert isinstance(store.executor, PsycopgExecutor)
    store.migrate()
    store.insert_block("factory", a_block())
    assert store.get_block("factory", "b1") == a_block()


def test_a_cluster_arn_means_the_data_api(aws: None) -> None:
    settings = Settings(
        db_cluster_arn=CLUSTER_ARN, db_secret_arn=SECRET_ARN, metadata_url="sqlite:///ignored.db"
    )
    assert isinstance(sql_executor(settings), DataApiExecutor)
    with pytest.raises(ValueError, match="BLOCKLAKE_DB_SECRET_ARN"):
        sql_executor(Settings(db_cluster_arn=CLUSTER_ARN))


def test_an_unknown_url_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql://"):
        sql_executor(Settings(metadata_url="mysql://db/x"))


def test_a_bucket_means_s3(aws: None, tmp_path: Path) -> None:
    created: list[str] = []
    s3 = blob_store(Settings(bucket="lake", data_dir=tmp_path), on_created=created.append)
    assert isinstance(s3, S3BlobStore)
    assert s3.url("k") == "s3://lake/k"
    local = blob_store(Settings(data_dir=tmp_path), on_created=created.append)
    assert isinstance(local, LocalBlobStore)
    local.put("k", b"x")
    assert created == ["k"]
