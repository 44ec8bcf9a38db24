"""The query sandbox as deployed: DuckDB over S3 (moto's server, httpfs from the wheel) with the
Lambda's ``AWS_*`` credentials in the environment, each tenant's access from STS through the
reader role. Every attack of tests/query/attacks.py is refused and shows neither the other
tenant's rows nor any credential; with the SQL check taken away, the engine still holds only the
tenant's own scoped credentials and files."""

from __future__ import annotations

import json
import os

import pytest

from blocklake.config import QueryLimits
from blocklake.ingest.service import IngestService
from blocklake.query import duckdb_engine
from lambdas.etl import handler as etl_handler
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler
from tests.cloud.conftest import CloudLake
from tests.cloud.test_cloud_handlers import _convert_all, _query, _record
from tests.query import attacks

SECRET_ROW = "globex secret row"


def _lake_of_two_tenants(cloud_lake: CloudLake) -> tuple[object, dict[str, str]]:
    blobs = cloud_lake.blob_store()
    ingest = ingest_handler.make_handler(IngestService(blobs, cloud_lake.metadata, 1 << 20))
    _record(cloud_lake, ingest, "acme", ["acme row"])
    _record(cloud_lake, ingest, "globex", [SECRET_ROW])
    _convert_all(cloud_lake, etl_handler.make_handler(cloud_lake.converter(blobs)))
    query = query_handler.make_handler(cloud_lake.query_engine(), QueryLimits(max_rows=100))
    (own,) = (k for k in blobs.list("tables/log_entries/tenant=acme/") if k.endswith(".parquet"))
    (other,) = (
        k for k in blobs.list("tables/log_entries/tenant=globex/") if k.endswith(".parquet")
    )
    root = f"s3://{cloud_lake.bucket}"
    places = {
        "root": root,
        "own": f"{root}/{own}",
        "other": f"{root}/{other}",
        "own_dir": f"{root}/{own.rsplit('/', 1)[0]}",
        "other_tail": other.split("tenant=globex/", 1)[1],
    }
    return query, places


def _leaks(text: str) -> list[str]:
    secrets = [SECRET_ROW, os.environ["AWS_SECRET_ACCESS_KEY"], "blocklake-query-"]
    return [secret for secret in secrets if secret in text]


def test_every_attack_on_s3_is_refused_and_leaks_nothing(cloud_lake: CloudLake) -> None:
    query, places = _lake_of_two_tenants(cloud_lake)
    assert _query(query, "globex", "SELECT message FROM log_entries")[1]["rows"] == [[SECRET_ROW]]
    tried = [
        *attacks.REFUSED,
        *(f"SELECT * FROM read_parquet('{path}')" for path in attacks.PATH_TRICKS),
        *(f"SELECT * FROM read_blob('{path}')" for path in attacks.PATH_TRICKS),
    ]
    failures = []
    for template in tried:
        sql = attacks.fill(template, **places)
        status, body = _query(query, "acme", sql)
        if status != 400 or _leaks(json.dumps(body)):
            failures.append((sql, status, body))
    assert failures == []
    assert len(tried) > 100


def test_without_the_sql_check_the_engine_holds_only_the_tenants_credentials(
    cloud_lake: CloudLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    query, places = _lake_of_two_tenants(cloud_lake)
    monkeypatch.setattr(duckdb_engine, "check_query", lambda sql, views: None)
    lambda_key_id = os.environ["AWS_ACCESS_KEY_ID"]

    # The first input: httpfs copies AWS_* into its settings when it loads.
    status, body = _query(
        query,
        "acme",
        "SELECT current_setting('s3_access_key_id') AS k, "
        "current_setting('s3_secret_access_key') AS s, current_setting('s3_session_token') AS t",
    )
    assert (status, body["rows"]) == (200, [[None, None, None]])
    status, body = _query(query, "acme", "SELECT secret_string FROM duckdb_secrets()")
    ((secret,),) = body["rows"]
    assert f"scope=s3://{cloud_lake.bucket}/tables/" in secret
    key_id = secret.split("key_id=", 1)[1].split(";", 1)[0]
    assert key_id.startswith("ASIA") and key_id != lambda_key_id  # STS's, not the Lambda's
    assert not _leaks(json.dumps(body))

    for template in [
        "SELECT * FROM read_parquet('{other}')",
        *(f"SELECT * FROM read_parquet('{path}')" for path in attacks.PATH_TRICKS),
        "SELECT * FROM read_text('{root}/raw/')",
        "SELECT * FROM glob('{root}/**')",
        "COPY (SELECT 1) TO '{own_dir}/x.parquet'",
    ]:
        sql = attacks.fill(template, **places)
        status, body = _query(query, "acme", sql)
        assert status == 400 and not _leaks(json.dumps(body)), (sql, body)
