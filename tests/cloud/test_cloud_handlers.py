"""The Lambdas configured for AWS: poison messages end in the dead-letter queue, DuckDB reads S3
through httpfs with the tenant lock-down intact, the query Lambda wires S3 from the environment,
and metrics/traces are emitted on Lambda and silent elsewhere."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from blocklake import observability
from blocklake.config import QueryLimits
from blocklake.etl.convert import BlockConverter
from blocklake.ingest.service import IngestService
from blocklake.lake.duckdb_extensions import extension_path
from blocklake.query.duckdb_s3 import S3_CREDENTIAL_SETTINGS, Credentials, s3_connection_setup
from blocklake.server.events import LambdaContext
from blocklake.stores.layout import raw_key
from lambdas.etl import handler as etl_handler
from lambdas.ingest import handler as ingest_handler
from lambdas.query import handler as query_handler
from tests.cloud.conftest import CloudLake
from tests.helpers import (
    aws_event,
    http_event,
    log_block,
    process_document,
    sqs_s3_event,
    stream_document,
)

T0 = int(datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp()) * 10**9
HOUR = 3600 * 10**9


def _record(lake: CloudLake, ingest, tenant: str, messages: list[str]) -> None:
    process = process_document(start_time_ns=T0, start_ticks=0)
    stream = stream_document(process["process_id"])
    context = LambdaContext("blocklake-ingest")
    for path, document in (("/v1/processes", process), ("/v1/streams", stream)):
        assert ingest(http_event(path, document, tenant=tenant), context)["statusCode"] == 201
    block = log_block(stream["stream_id"], messages, first_tick=HOUR)
    assert ingest(http_event("/v1/blocks", block, tenant=tenant), context)["statusCode"] == 201


def _convert_all(lake: CloudLake, etl) -> int:
    """Every notification converted, then what was staged committed (the committer's run)."""
    converted = 0
    while messages := lake.receive(wait_s=1 if not converted else 0):
        result = etl(lake.lambda_event(messages), LambdaContext("blocklake-etl"))
        assert lake.settle(messages, result) == []
        converted += len(messages)
    lake.lake().commit_pending()
    return converted


def _invoke(etl, event: dict) -> dict:
    """The outcome as the event source mapping sees it: a raised error (powertools raises when
    every record of the batch failed) fails the whole batch."""
    try:
        return etl(event, LambdaContext("blocklake-etl"))
    except BatchProcessingError:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


def _query(handler, tenant: str, sql: str) -> tuple[int, dict]:
    document = {"sql": sql, "begin": T0, "end": T0 + 4 * HOUR}
    response = handler(http_event("/v1/query", document, tenant=tenant), LambdaContext("q"))
    return response["statusCode"], json.loads(response["body"])


def test_a_poison_message_ends_in_the_dead_letter_queue(cloud_lake: CloudLake) -> None:
    blobs = cloud_lake.blob_store()
    etl = etl_handler.make_handler(cloud_lake.converter(blobs))
    ingest = ingest_handler.make_handler(IngestService(blobs, cloud_lake.metadata, 1 << 20))
    _record(cloud_lake, ingest, "acme", ["good"])
    # A block whose stream was never registered: converting it can never succeed.
    poison = raw_key("acme", T0, str(uuid.uuid4()), str(uuid.uuid4()))
    blobs.put(poison, b"not a block")

    receives, failures, good = 0, 0, 0
    while receives < 10:
        messages = cloud_lake.receive(wait_s=1 if receives == 0 else 0)
        if not messages:
            break
        receives += 1
        failed = cloud_lake.settle(messages, _invoke(etl, cloud_lake.lambda_event(messages)))
        failures += len(failed)
        good += len(messages) - len(failed)
        for message in failed:
            assert etl_handler.created_keys(message["Body"]) == [poison]
    # maxReceiveCount is 3: three failed receives, then SQS moved it aside.
    assert failures == 3
    assert good >= 2  # the good block and the s3:TestEvent, each handled once
    (dead,) = cloud_lake.dead_letters()
    assert etl_handler.created_keys(dead["Body"]) == [poison]
    assert cloud_lake.lake().commit_pending().rows >= 1  # the good one was converted


def test_duckdb_on_s3_keeps_each_tenant_to_its_own_files(cloud_lake: CloudLake) -> None:
    blobs = cloud_lake.blob_store()
    ingest = ingest_handler.make_handler(IngestService(blobs, cloud_lake.metadata, 1 << 20))
    etl = etl_handler.make_handler(cloud_lake.converter(blobs))
    _record(cloud_lake, ingest, "acme", ["acme secret"])
    _record(cloud_lake, ingest, "globex", ["globex row"])
    assert _convert_all(cloud_lake, etl) >= 2
    query = query_handler.make_handler(cloud_lake.query_engine(), QueryLimits(max_rows=100))

    for tenant, message in (("acme", "acme secret"), ("globex", "globex row")):
        status, result = _query(query, tenant, "SELECT message FROM log_entries")
        assert (status, result["rows"]) == (200, [[message]])

    (acme_file,) = (
        key for key in blobs.list("tables/log_entries/tenant=acme/") if key.endswith(".parquet")
    )
    attempts = [
        f"SELECT * FROM read_parquet('s3://{cloud_lake.bucket}/{acme_file}')",
        f"SELECT * FROM read_parquet('s3://{cloud_lake.bucket}/tables/log_entries/*/*/*/*')",
        f"SELECT * FROM read_blob('s3://{cloud_lake.bucket}/{acme_file}')",
        "SELECT * FROM duckdb_secrets(redact = false)",
        "SET allowed_directories = ['s3://']",
    ]
    for sql in attempts:
        status, result = _query(query, "globex", sql)
        assert status == 400, sql
        assert "acme secret" not in json.dumps(result)
    # Not even redacted: the listing would show the service's access key id.
    status, result = _query(query, "globex", "SELECT secret_string FROM duckdb_secrets()")
    assert status == 400 and "duckdb_secrets" in result["error"]["message"]


def test_the_query_lambda_reads_s3_when_a_bucket_is_configured(
    cloud_lake: CloudLake, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = cloud_lake.blob_store()
    ingest = ingest_handler.make_handler(IngestService(blobs, cloud_lake.metadata, 1 << 20))
    _record(cloud_lake, ingest, "acme", ["from the lambda"])
    _convert_all(cloud_lake, etl_handler.make_handler(cloud_lake.converter(blobs)))
    monkeypatch.setenv("BLOCKLAKE_BUCKET", cloud_lake.bucket)
    monkeypatch.setenv("BLOCKLAKE_GLUE_DATABASE", cloud_lake.glue_database)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", cloud_lake.endpoint)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "blocklake-query")
    query_handler._configured.cache_clear()
    try:
        status, result = _query(query_handler.handler, "acme", "SELECT message FROM log_entries")
    finally:
        query_handler._configured.cache_clear()
    assert (status, result["rows"]) == (200, [["from the lambda"]])


def test_connection_setup_scopes_the_given_credentials_and_resets_the_environments() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "AKIALAMBDA",
        "AWS_SECRET_ACCESS_KEY": "lambda secret",
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000",
    }
    tenant = Credentials("ASIATENANT", "it's secret", "tok")
    setup = s3_connection_setup("lake", tenant, env)
    assert setup[0] == "SET autoinstall_known_extensions = false"
    assert "SET home_directory = '/tmp'" in setup  # Lambda has no HOME
    assert f"LOAD '{extension_path('httpfs')}'" in setup
    assert extension_path("httpfs").is_file()
    # httpfs copies AWS_* into its settings when it loads: they are reset right after.
    load = setup.index(f"LOAD '{extension_path('httpfs')}'")
    assert setup[load + 1 : load + 4] == tuple(f"RESET {name}" for name in S3_CREDENTIAL_SETTINGS)
    (secret,) = [s for s in setup if s.startswith("CREATE")]
    for part in ("SCOPE 's3://lake/tables/'", "KEY_ID 'ASIATENANT'", "SECRET 'it''s secret'",
                 "SESSION_TOKEN 'tok'", "REGION 'eu-west-1'", "ENDPOINT '127.0.0.1:5000'",
                 "USE_SSL false"):  # fmt: skip
        assert part in secret
    assert "AKIALAMBDA" not in " ".join(setup) and "lambda secret" not in " ".join(setup)
    chain = s3_connection_setup("lake", None, {"HOME": "/root", "AWS_REGION": "us-east-1"})
    assert "PROVIDER credential_chain" in chain[-3] and "ENDPOINT" not in chain[-3]


def test_metrics_are_emf_on_lambda(cloud_lake: CloudLake, capsys: pytest.CaptureFixture) -> None:
    blobs = cloud_lake.blob_store()
    metrics = observability.metrics_for("blocklake-ingest", enabled=True)
    ingest = ingest_handler.make_handler(
        IngestService(blobs, cloud_lake.metadata, 1 << 20), metrics=metrics
    )
    process = process_document(start_time_ns=T0, start_ticks=0)
    stream = stream_document(process["process_id"])
    context = LambdaContext("blocklake-ingest")
    for path, document in (("/v1/processes", process), ("/v1/streams", stream)):
        ingest(http_event(path, document), context)
    block = log_block(stream["stream_id"], ["m"])
    capsys.readouterr()
    for _ in range(2):  # stored, then a retry
        ingest(http_event("/v1/blocks", block), context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert len(lines) == 2
    stored, duplicate = lines
    for line in lines:
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "blocklake"
        assert line["service"] == "blocklake-ingest"
    assert stored["BlocksStored"] == [1.0] and stored["BytesStored"] == [float(len(block))]
    assert duplicate["DuplicateBlocks"] == [1.0] and "BlocksStored" not in duplicate
    units = {m["Name"]: m["Unit"] for m in stored["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {"BlocksStored": "Count", "BytesStored": "Bytes"}


def test_off_lambda_metrics_and_traces_are_silent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    assert isinstance(observability.metrics_for("x"), observability.NullMetrics)
    assert isinstance(observability.tracer_for("x"), observability.NullTracer)
    # What the local server gets: its handlers were built at import, off Lambda.
    for module in (ingest_handler, etl_handler, query_handler):
        assert isinstance(module.metrics, observability.NullMetrics)
        assert isinstance(module.tracer, observability.NullTracer)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "blocklake-etl")
    assert not isinstance(observability.metrics_for("x"), observability.NullMetrics)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert isinstance(observability.metrics_for("x"), observability.NullMetrics)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert isinstance(observability.tracer_for("x"), observability.NullTracer)
    # No X-Ray SDK in the package: tracing off rather than failing at the first call.
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED")
    monkeypatch.setattr(observability.importlib.util, "find_spec", lambda name: None)
    assert isinstance(observability.tracer_for("x"), observability.NullTracer)
    etl = etl_handler.make_handler(BlockConverter(None, None, None))  # type: ignore[arg-type]
    test_event = aws_event("sqs_s3_test_event.json")
    assert etl(test_event, LambdaContext("blocklake-etl")) == {"batchItemFailures": []}
    assert capsys.readouterr().out == ""


def test_etl_metrics_count_conversions_and_failures(
    cloud_lake: CloudLake, capsys: pytest.CaptureFixture
) -> None:
    blobs = cloud_lake.blob_store()
    ingest = ingest_handler.make_handler(IngestService(blobs, cloud_lake.metadata, 1 << 20))
    _record(cloud_lake, ingest, "acme", ["one", "two", "three"])
    (good,) = blobs.list("raw/")
    bad = raw_key("acme", T0, str(uuid.uuid4()), str(uuid.uuid4()))
    metrics = observability.metrics_for("blocklake-etl", enabled=True)
    etl = etl_handler.make_handler(cloud_lake.converter(blobs), metrics=metrics)
    capsys.readouterr()
    result = etl(sqs_s3_event(good, bad), LambdaContext("blocklake-etl"))
    assert len(result["batchItemFailures"]) == 1
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "_aws" in x]
    assert (line["BlocksConverted"], line["ConversionFailures"]) == ([1.0], [1.0])
    assert line["RowsWritten"] == [3.0]  # the log rows (metadata exports are not counted)


def test_query_metrics_count_queries_rows_and_errors(
    cloud_lake: CloudLake, capsys: pytest.CaptureFixture
) -> None:
    metrics = observability.metrics_for("blocklake-query", enabled=True)
    engine = cloud_lake.query_engine()
    query = query_handler.make_handler(engine, QueryLimits(max_rows=100), metrics=metrics)
    capsys.readouterr()
    assert _query(query, "acme", "SELECT * FROM range(7)")[0] == 200
    assert _query(query, "acme", "SELECT nope FROM log_entries")[0] == 400
    ran, failed = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "_aws" in x]
    assert (ran["QueriesRun"], ran["RowsReturned"]) == ([1.0], [7.0])
    assert failed["QueryErrors"] == [1.0] and "QueriesRun" not in failed
