"""The ETL Lambda on SQS batches of S3 notifications: conversion, idempotence, partial failures."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pytest

from blocklake.config import Settings
from blocklake.etl.convert import BlockConverter
from blocklake.format.tables import arrow_schema
from blocklake.ingest.service import IngestService
from blocklake.lake.turns import PREFIX
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from blocklake.stores.metadata import SqlMetadataStore
from blocklake.stores.sql import SqliteExecutor
from lambdas.etl.handler import COMMIT_INTERVAL_S, make_handler
from tests.helpers import (
    aws_event,
    lake_for,
    log_block,
    process_document,
    sqs_s3_event,
    stored_rows,
    stream_document,
)


class Lake:
    def __init__(self, settings: Settings) -> None:
        self.blobs = LocalBlobStore(settings.data_dir)
        self.metadata = SqlMetadataStore(SqliteExecutor(settings.sqlite_path))
        self.metadata.migrate()
        self.ingest = IngestService(self.blobs, self.metadata, settings.max_block_bytes)
        self.lake = lake_for(self.blobs)
        self.handle = make_handler(BlockConverter(self.blobs, self.metadata, self.lake))
        self.process = process_document()
        self.ingest.register_process("acme", self.process)
        self.stream = stream_document(self.process["process_id"])
        self.ingest.register_stream("acme", self.stream)

    def store(self, messages: list[str]) -> str:
        return self.ingest.store_block(
            "acme", log_block(self.stream["stream_id"], messages)
        ).object_key

    def rows(self, table: str) -> pa.Table:
        """The table's committed rows, once what conversions staged is committed."""
        return stored_rows(self.blobs, table)


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake(settings)


def test_converts_the_announced_block(lake: Lake, context: object) -> None:
    key = lake.store(["alpha", "beta", "gamma"])
    result = lake.handle(sqs_s3_event(key), context)
    assert result == {"batchItemFailures": []}
    assert list(lake.blobs.list("tables/")) == []  # staged, not committed by conversion
    table = lake.rows("log_entries")
    assert table.column("message").to_pylist() == ["alpha", "beta", "gamma"]
    assert table.column("level").to_pylist() == ["INFO"] * 3
    assert [f.name for f in table.schema] == arrow_schema("log_entries").names
    # Microsecond timestamps, which Athena and Spark read as well as DuckDB; ticks are 1 ns apart
    started = lake.process["start_time_ns"] + 2_000 - lake.process["start_ticks"]
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    expected = [(started + tick) // 1000 for tick in range(3)]
    assert table.column("time").cast(pa.int64()).to_pylist() == expected
    assert lake.rows("processes").num_rows == lake.rows("streams").num_rows == 1
    assert lake.rows("blocks").num_rows == 1


def test_keys_arrive_url_encoded(lake: Lake, context: object) -> None:
    # Tenants cannot hold characters S3 would escape, but the handler must still unquote keys:
    # sqs_s3_event quotes them as S3 does, and '=' in the Hive-style key is escaped to %3D.
    key = lake.store(["escaped"])
    event = sqs_s3_event(key)
    assert "%3D" in event["Records"][0]["body"]
    assert lake.handle(event, context) == {"batchItemFailures": []}
    assert lake.rows("log_entries").num_rows == 1


@pytest.mark.parametrize("committed_between", [False, True])
def test_converting_twice_changes_nothing(
    lake: Lake, context: object, committed_between: bool
) -> None:
    """A redelivered notification, before or after the first conversion's rows were committed."""
    key = lake.store(["once"])
    lake.handle(sqs_s3_event(key), context)
    if committed_between:
        assert lake.rows("log_entries").num_rows == 1
    lake.handle(sqs_s3_event(key, key), context)
    for table in ("log_entries", "blocks", "processes", "streams"):
        assert lake.rows(table).num_rows == 1, table
    assert lake.rows("log_entries")["message"].to_pylist() == ["once"]


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
    assert lake.rows("log_entries").column("message").to_pylist() == ["good"]


def test_s3_test_event_is_ignored(lake: Lake, context: object) -> None:
    assert lake.handle(aws_event("sqs_s3_test_event.json"), context) == {"batchItemFailures": []}
    assert lake.rows("log_entries").num_rows == 0


def test_the_scheduled_commit_ends_its_run_when_nothing_is_staged(
    lake: Lake, context: object
) -> None:
    """The committer runs each minute: an idle lake must cost one short round, not the whole
    commit window."""
    lake.handle(sqs_s3_event(lake.store(["alpha"])), context)
    first = lake.handle({"action": "commit"}, context)
    # one row and one commit each: log_entries, processes, streams, blocks
    assert (first["fragments"], first["rows"], first["commits"]) == (4, 4, 4)
    assert lake.rows("log_entries").column("message").to_pylist() == ["alpha"]
    # another run in the same minute (an EventBridge retry) does nothing: one turn per minute
    assert lake.handle({"action": "commit"}, context) == {"skipped": True}
    lake.blobs.delete(list(lake.blobs.list(PREFIX)))  # as if the next minute came
    started = time.monotonic()
    idle = lake.handle({"action": "commit"}, context)
    assert (idle["fragments"], idle["rows"], idle["commits"]) == (0, 0, 0)
    assert time.monotonic() - started < COMMIT_INTERVAL_S  # one round, no sleeping
