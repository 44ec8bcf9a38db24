"""The deployed lake's tables on moto's Glue and S3: pyiceberg's GlueCatalog registers each
tenant's Iceberg tables so that Athena reads them (``table_type=ICEBERG``, the current
``metadata_location``), the query side plans them through boto3 alone, and a plain Iceberg
reader (DuckDB's ``iceberg_scan`` of Glue's metadata location over S3) counts what our query
path counts, after appends, a compaction and a delete."""

from __future__ import annotations

import time

import boto3
import duckdb
import pyarrow as pa

from blocklake.lake import Fragment
from blocklake.lake.duckdb_extensions import load_statements
from blocklake.lake.reader import GlueLocator
from blocklake.query import duckdb_s3
from blocklake.query.engine import QueryRequest
from tests.cloud.conftest import REGION, CloudLake

HOUR_US = 3600 * 10**6
T0_US = (time.time_ns() // 1000) // HOUR_US * HOUR_US - 3 * HOUR_US


def _logs(count: int, minute: int, process: str) -> pa.Table:
    times = [T0_US + minute * 60 * 10**6 + i for i in range(count)]
    return pa.table(
        {
            "process_id": [process] * count,
            "stream_id": ["s"] * count,
            "block_id": ["b"] * count,
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "level": ["INFO"] * count,
            "target": ["t"] * count,
            "message": [f"m{i}" for i in range(count)],
            "properties": pa.array([[]] * count, pa.map_(pa.string(), pa.string())),
        }
    )


def _athena_view(cloud_lake: CloudLake, glue, tenant: str) -> int:
    """The count a plain Iceberg reader gets from what Glue says, with nothing of ours."""
    table = glue.get_table(DatabaseName=f"{cloud_lake.glue_database}_{tenant}", Name="log_entries")
    location = table["Table"]["Parameters"]["metadata_location"]
    connection = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    for statement in (
        *duckdb_s3.s3_connection_setup(cloud_lake.bucket, duckdb_s3.environment_credentials()),
        *load_statements("avro", "iceberg"),
    ):
        connection.execute(statement)
    return connection.execute(f"SELECT count(*) FROM iceberg_scan('{location}')").fetchone()[0]


def test_glue_holds_each_tenant_s_iceberg_tables_and_every_reader_agrees(
    cloud_lake: CloudLake,
) -> None:
    glue = boto3.client("glue", region_name=REGION, endpoint_url=cloud_lake.endpoint)
    lake = cloud_lake.lake()
    for number, process in enumerate(["keep", "erase", "keep"]):
        fragment = Fragment("-", _logs(3, number, process), (f"block-{number}",))
        lake.append_fragments("log_entries", "acme", [fragment])
        lake.commit_pending()  # three commits: three files in one hour
    table = glue.get_table(DatabaseName=f"{cloud_lake.glue_database}_acme", Name="log_entries")
    parameters = table["Table"]["Parameters"]
    assert parameters["table_type"].upper() == "ICEBERG"
    assert parameters["metadata_location"].startswith(f"s3://{cloud_lake.bucket}/tables/")
    names = {
        t["Name"]
        for t in glue.get_tables(DatabaseName=f"{cloud_lake.glue_database}_acme")["TableList"]
    }
    assert {"log_entries", "thread_spans", "processes"} <= names

    locator = GlueLocator(glue, f"{cloud_lake.glue_database}_")
    assert locator.metadata_location("log_entries", "acme") == parameters["metadata_location"]
    assert locator.metadata_location("log_entries", "globex") is None
    engine = cloud_lake.query_engine()
    request = QueryRequest(
        "acme", "SELECT count(*) AS n FROM log_entries", T0_US * 1000, (T0_US + HOUR_US) * 1000, 10
    )

    def ours() -> int:
        return engine.run(request).table.to_pylist()[0]["n"]

    assert ours() == _athena_view(cloud_lake, glue, "acme") == 9
    assert len(engine.scan(request).tables["log_entries"].partitions) == 1
    report = lake.compact(time.time_ns())
    assert report.partitions >= 1
    assert ours() == _athena_view(cloud_lake, glue, "acme") == 9
    assert engine.scan(request).files == 1
    lake.delete("log_entries", "acme", "process_id", ["erase"])
    assert ours() == _athena_view(cloud_lake, glue, "acme") == 6
