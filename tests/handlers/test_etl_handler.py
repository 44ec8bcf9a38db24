"""The ETL Lambda on SQS batches of S3 notifications: conversion, idempotence, partial failures."""

from __future__ import annotations

import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter
from blocklake.format.tables import arrow_schema
from blocklake.ingest.service import IngestService
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqliteExecutor
from lambdas.etl.handler import make_handler
from tests.helpers import aws_event, log_block, process_document, sqs_s3_event, stream_document


class Lake:
    def __init__(self, settings: Settings) -> None:
        self.blobs = LocalBlobStore(settings.data_dir)
        self.metadata = SqlMetadataStore(SqliteExecutor(settings.sqlite_path))
        self.metadata.migrate()
        self.ingest = IngestService(self.blobs, self.metadata, settings.max_block_bytes)
        self.handle = make_handler(BlockConverter(self.blobs, self.metadata))
        self.process = process_document()
        self.ingest.register_process("acme", self.process)
        self.stream = stream_document(self.process["process_id"])
        self.ingest.register_stream("acme", self.stream)

    def store(self, messages: list[str]) -> str:
        return self.ingest.store_block(
            "acme", log_block(self.stream["stream_id"], messages)
        ).object_key

    def table_files(self, table: str) -> list[str]:
        return list(self.blobs.list(f"tables/{table}/"))


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake(settings)


def test_converts_the_announced_block(lake: Lake, context: object) -> None:
    key = lake.store(["alpha", "beta", "gamma"])
    result = lake.handle(sqs_s3_event(key), context)
    assert result == {"batchItemFailures": []}
    (log_file,) = lake.table_files("log_entries")
    assert "/tenant=acme/date=" in log_file and "/hour=" in log_file
    table = pq.read_table(lake.blobs.url(log_file))
    assert table.column("message").to_pylist() == ["alpha", "beta", "gamma"]
    assert table.column("level").to_pylist() == ["INFO"] * 3
    assert [f.name for f in table.schema] == arrow_schema("log_entries").names
    # Microsecond timestamps, which Athena and Spark read as well as DuckDB; ticks are 1 ns apart
    started = lake.process["start_time_ns"] + 2_000 - lake.process["start_ticks"]
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    expected = [(started + tick) // 1000 for tick in range(3)]
    assert table.column("time").cast(pa.int64()).to_pylist() == expected
    assert len(lake.table_files("processes")) == len(lake.table_files("streams")) == 1
    assert len(lake.table_files("blocks")) == 1


def test_keys_arrive_url_encoded(lake: Lake, context: object) -> None:
    # Tenants cannot hold characters S3 would escape, but the handler must still unquote keys:
    # sqs_s3_event quotes them as S3 does, and '=' in the Hive-style key is escaped to %3D.
    key = lake.store(["escaped"])
    event = sqs_s3_event(key)
    assert "%3D" in event["Records"][0]["body"]
    assert lake.handle(event, context) == {"batchItemFailures": []}
    assert len(lake.table_files("log_entries")) == 1


def test_converting_twice_changes_nothing(lake: Lake, context: object) -> None:
    key = lake.store(["once"])
    lake.handle(sqs_s3_event(key), context)
    (path,) = lake.table_files("log_entries")
    first = lake.blobs.get(path)
    lake.handle(sqs_s3_event(key, key), context)
    assert lake.table_files("log_entries") == [path]
    assert pq.read_table(lake.blobs.url(path)).num_rows == 1
    assert pq.read_table(lake.blobs.url(path)).equals(pq.read_table(io.BytesIO(first)))


def test_one_bad_message_does_not_fail_the_batch(lake: Lake, context: object) -> None:
    good = lake.store(["good"])
    missing = raw_key("acme", 0, lake.stream["stream_id"], str(uuid.uuid4()))
    corrupt = lake.store(["will be corrupted"])
    lake.blobs.put(corrupt, lake.blobs.get(corrupt)[:-3] + b"\xff\xff\xff")
    event = sqs_s3_event(good, missing, corrupt)
    result = lake.handle(event, context)
    failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
    ids = [record["messageId"] for record in event["Records"]]
    assert failed == {ids[1], ids[2]}
    (converted,) = lake.table_files("log_entries")
    assert pq.read_table(lake.blobs.url(converted)).column("message").to_pylist() == ["good"]


def test_s3_test_event_is_ignored(lake: Lake, context: object) -> None:
    assert lake.handle(aws_event("sqs_s3_test_event.json"), context) == {"batchItemFailures": []}
    assert lake.table_files("log_entries") == []
