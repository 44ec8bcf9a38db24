"""The catalogs the settings choose: SQLite beside the lake by default, PostgreSQL for a
self-hosted metadata database (the catalog's tables beside the metadata), and a clear error for
a bucket without one. (Glue, deployed: ``tests/cloud/test_cloud_lake.py``.)"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from blocklake.config import Settings
from blocklake.lake import Fragment
from blocklake.lake.catalog import open_catalog, open_lake
from blocklake.stores.blobs import LocalBlobStore
from tests.query.fake_athena import load_iceberg
from tests.support.postgres import throwaway_database

T0_US = 1_780_000_000 * 10**6


def _rows(count: int) -> pa.Table:
    return pa.table(
        {
            "stream_id": [f"s{i}" for i in range(count)],
            "process_id": ["p"] * count,
            "tags": pa.array([["a"]] * count, pa.list_(pa.string())),
            "properties": pa.array([[]] * count, pa.map_(pa.string(), pa.string())),
        }
    )


def _iceberg_scan_count(location: str) -> int:
    import duckdb

    connection = duckdb.connect()
    load_iceberg(connection)
    return connection.execute(f"SELECT count(*) FROM iceberg_scan('{location}')").fetchone()[0]


def test_the_default_catalog_is_sqlite_beside_the_lake(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "lake")
    lake = open_lake(settings, LocalBlobStore(settings.data_dir))
    lake.append_fragments("streams", "acme", [Fragment("-", _rows(3), ("s",))])
    assert lake.commit_pending().rows == 3
    assert (settings.data_dir / "catalog.db").is_file()
    location = lake.metadata_location("streams", "acme")
    assert location.startswith(str(settings.data_dir.resolve() / "tables/streams/tenant=acme/"))
    assert _iceberg_scan_count(location) == 3


def test_a_self_hosted_lake_keeps_its_catalog_in_postgresql(tmp_path: Path) -> None:
    with throwaway_database("blocklake_catalog") as url:
        settings = Settings(data_dir=tmp_path / "lake", metadata_url=url)
        lake = open_lake(settings, LocalBlobStore(settings.data_dir))
        lake.append_fragments("streams", "acme", [Fragment("-", _rows(2), ("s1",))])
        lake.commit_pending()
        lake.append_fragments("streams", "acme", [Fragment("-", _rows(4), ("s2",))])
        lake.commit_pending()
        assert not (settings.data_dir / "catalog.db").exists()
        with psycopg.connect(url) as connection:
            (location,) = connection.execute(
                "SELECT metadata_location FROM iceberg_tables "
                "WHERE table_namespace = 'blocklake_acme' AND table_name = 'streams'"
            ).fetchone()
        assert location == lake.metadata_location("streams", "acme")
        assert _iceberg_scan_count(location) == 6  # what a plain Iceberg reader sees
        plan = lake.plan("streams", "acme", 0, 2**62)
        assert (len(plan.data_files), plan.rows) == (2, 6)


def test_a_bucket_needs_a_catalog() -> None:
    with pytest.raises(ValueError, match="BLOCKLAKE_GLUE_DATABASE"):
        open_catalog(Settings(bucket="lake"))
