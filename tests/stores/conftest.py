"""Fixtures of the storage contract tests: every backend, each test on a clean slate.

PostgreSQL is the real server at 127.0.0.1:5432 (override with BLOCKLAKE_TEST_POSTGRES_URL): each
run creates its own database and drops it at the end; each test gets its own schema in it. The
Data API adapter runs against that same database through ``tests.support.rds_data_shim``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg import sql
from psycopg.conninfo import make_conninfo

from blocklake.stores.blobs import BlobStore, LocalBlobStore
from blocklake.stores.data_api import DataApiExecutor
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.postgres import PsycopgExecutor
from blocklake.stores.s3 import RETRY_CONFIG, S3BlobStore
from blocklake.stores.sql import SqlExecutor, SqliteExecutor
from tests.support.moto_s3 import BUCKET
from tests.support.postgres import throwaway_database
from tests.support.rds_data_shim import CLUSTER_ARN, SECRET_ARN, RdsDataShim

SQL_BACKENDS = ["sqlite", "postgres", "data_api"]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this run's own, dropped at the end; the URL to reach it."""
    with throwaway_database("blocklake_test") as url:
        yield url


@pytest.fixture
def postgres_conninfo(postgres_database: str) -> Iterator[str]:
    """A fresh schema for this test, first on the search path of every connection made with it."""
    schema = f"test_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield make_conninfo(postgres_database, options=f"-c search_path={schema}")
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def rds_data_shim(postgres_conninfo: str) -> Iterator[RdsDataShim]:
    shim = RdsDataShim(postgres_conninfo)
    yield shim
    shim.close()


@pytest.fixture
def make_executor(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], SqlExecutor]]:
    """Builds executors of a backend, all on the same test database, closed at the end."""
    closers: list[Callable[[], None]] = []

    def make(backend: str) -> SqlExecutor:
        if backend == "sqlite":
            executor = SqliteExecutor(tmp_path / "metadata.db")
            closers.append(executor.close)
            return executor
        conninfo = request.getfixturevalue("postgres_conninfo")
        if backend == "postgres":
            executor = PsycopgExecutor(conninfo)
            closers.append(executor.close)
            return executor
        shim = request.getfixturevalue("rds_data_shim")
        return DataApiExecutor(CLUSTER_ARN, SECRET_ARN, "blocklake", client=shim.client())

    yield make
    for close in closers:
        close()


@pytest.fixture(params=SQL_BACKENDS)
def executor(request: pytest.FixtureRequest, make_executor) -> SqlExecutor:
    return make_executor(request.param)


@pytest.fixture
def store(executor: SqlExecutor) -> SqlMetadataStore:
    store = SqlMetadataStore(executor)
    store.migrate()
    return store


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in place of AWS, with fake credentials so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def s3_client(aws: None):
    client = boto3.client("s3", region_name="us-east-1", config=RETRY_CONFIG)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(params=["local", "s3"])
def blob_store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_blob_store(
    blob_store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[..., BlobStore]:
    def make(on_created: Callable[[str], None] | None = None) -> BlobStore:
        if blob_store_kind == "local":
            return LocalBlobStore(tmp_path / "lake", on_created=on_created)
        client = request.getfixturevalue("s3_client")
        return S3BlobStore(BUCKET, client=client, on_created=on_created)

    return make


@pytest.fixture
def blob_store(make_blob_store: Callable[..., BlobStore]) -> BlobStore:
    return make_blob_store()
