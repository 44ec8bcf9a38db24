"""Poison isolation (issue 10, items 2-4): a block that fails conversion is recorded with its
reason where its tenant can query it, never stops other blocks, and never replaces the rows of
an accepted block."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from blocklake.config import Settings
from blocklake.etl.convert import MAX_ATTEMPTS
from blocklake.server.lake import LocalLake
from blocklake.stores.blobs import LocalBlobStore
from blocklake.stores.layout import raw_key
from tests import hostile
from tests.helpers import (
    KEYS,
    log_block,
    process_document,
    sqs_s3_event,
    stored_rows,
    stream_document,
)

API_KEYS = {tenant: key for key, tenant in KEYS.items()}


class Lake:
    """A local lake driven by hand: blocks stored through ingest, conversions called directly."""

    def __init__(self, settings: Settings) -> None:
        self.local = LocalLake(settings)
        self.blobs, self.metadata = self.local.blobs, self.local.metadata
        self.quiet = LocalBlobStore(self.blobs.root)
        """The same files, written without telling the conversion worker."""

    def post(self, path: str, body: bytes | dict, tenant: str = "acme") -> tuple[int, dict]:
        is_json = isinstance(body, dict)
        response = self.local.handle_http(
            "POST",
            path,
            "",
            {
                "x-api-key": API_KEYS[tenant],
                "content-type": "application/json" if is_json else "application/octet-stream",
            },
            json.dumps(body).encode() if is_json else body,
            "127.0.0.1",
        )
        return response.status, json.loads(response.body)

    def stream(self, tenant: str = "acme") -> str:
        process = process_document()
        assert self.post("/v1/processes", process, tenant)[0] == 201
        stream = stream_document(process["process_id"])
        assert self.post("/v1/streams", stream, tenant)[0] == 201
        return stream["stream_id"]

    def store(self, stream: str, messages: list[str], tenant: str = "acme") -> str:
        status, answer = self.post("/v1/blocks", log_block(stream, messages), tenant)
        assert status == 201, answer
        self.local.wait_converted()
        (key,) = (k for k in self.blobs.list("raw/") if answer["block_id"] in k)
        return key

    def sql(self, sql: str, tenant: str = "acme") -> list[list]:
        now = time.time_ns()
        status, answer = self.post(
            "/v1/query", {"sql": sql, "begin": now - 3600 * 10**9, "end": now + 10**9}, tenant
        )
        assert status == 200, answer
        return answer["rows"]

    def forget_conversions(self) -> None:
        """As if no block had ever converted: no tables, no staged rows, no marks."""
        iceberg = self.local.lake
        for tenant, table in list(iceberg.all_tables()):
            iceberg.catalog.drop_table(iceberg.identifier(table, tenant))
        for prefix in ("tables/", "staging/", "lake/"):
            self.quiet.delete(list(self.quiet.list(prefix)))

    def messages(self) -> list[str]:
        return [row[0] for row in self.sql("SELECT message FROM log_entries ORDER BY message")]


@pytest.fixture
def lake(settings: Settings):
    running = Lake(settings)
    yield running
    running.local.close()


def corrupt(lake: Lake, key: str) -> None:
    """As if the stored bytes were damaged after ingest checked them."""
    lake.quiet.put(key, hostile.corrupt_crc(lake.blobs.get(key)))


def test_a_failed_block_is_recorded_queryable_by_its_tenant_only(lake: Lake, context) -> None:
    stream = lake.stream()
    good, bad = lake.store(stream, ["good"]), lake.store(stream, ["bad"])
    corrupt(lake, bad)
    result = lake.local.etl(sqs_s3_event(good, bad), context)
    assert len(result["batchItemFailures"]) == 1
    (failure,) = lake.metadata.conversion_failures("acme")
    assert failure.object_key == bad and "crc32" in failure.reason and failure.attempts == 1
    rows = lake.sql("SELECT block_id, attempts, reason FROM conversion_failures")
    assert [(r[0], r[1]) for r in rows] == [(bad.split("/")[-1].removesuffix(".blk"), 1)]
    assert "crc32" in rows[0][2]
    lake.stream("globex")
    assert lake.sql("SELECT * FROM conversion_failures", "globex") == []


def test_a_batch_whose_every_block_fails_is_answered_not_raised(lake: Lake, context) -> None:
    stream = lake.stream()
    keys = [lake.store(stream, [f"m{i}"]) for i in range(3)]
    for key in keys:
        corrupt(lake, key)
    event = sqs_s3_event(*keys)
    result = lake.local.etl(event, context)  # powertools would raise BatchProcessingError
    assert {item["itemIdentifier"] for item in result["batchItemFailures"]} == {
        record["messageId"] for record in event["Records"]
    }
    assert [f.attempts for f in lake.metadata.conversion_failures("acme")] == [1, 1, 1]


def test_a_block_that_converts_later_leaves_no_failure_behind(lake: Lake, context) -> None:
    stream = lake.stream()
    key = lake.store(stream, ["fixed"])
    original = lake.blobs.get(key)
    corrupt(lake, key)
    lake.local.etl(sqs_s3_event(key), context)
    assert lake.sql("SELECT count(*) FROM conversion_failures") == [[1]]
    lake.quiet.put(key, original)
    assert lake.local.etl(sqs_s3_event(key), context) == {"batchItemFailures": []}
    assert lake.metadata.conversion_failures() == []
    assert lake.sql("SELECT count(*) FROM conversion_failures") == [[0]]
    assert lake.messages() == ["fixed"]


def test_the_local_worker_outlives_any_exception(lake: Lake, monkeypatch) -> None:
    stream = lake.stream()
    etl = lake.local.etl

    def explode(event: dict, context: object) -> dict:
        monkeypatch.setattr(lake.local, "etl", etl)
        raise MemoryError("as if a block had exhausted memory")

    monkeypatch.setattr(lake.local, "etl", explode)
    lake.store(stream, ["lost to the explosion"])
    assert lake.local.failed_conversions == 1
    lake.store(stream, ["after"])
    assert lake.messages() == ["after"]


def test_a_poisoned_block_does_not_stop_another_tenants_blocks(lake: Lake) -> None:
    stream, other = lake.stream(), lake.stream("globex")
    poison = raw_key("acme", time.time_ns(), stream, str(uuid.uuid4()))
    lake.blobs.put(poison, hostile.span_bomb(stream))  # the worker is told of it, and fails
    lake.store(other, ["globex's"], "globex")
    assert lake.sql("SELECT message FROM log_entries", "globex") == [["globex's"]]
    assert lake.local.failed_conversions == 1


def test_bytes_under_another_key_never_replace_an_accepted_blocks_rows(lake: Lake) -> None:
    first, second = lake.stream(), lake.stream()
    accepted = lake.store(first, ["accepted"])
    block_id = accepted.split("/")[-1].removesuffix(".blk")
    begin = lake.metadata.get_block("acme", block_id).begin_time_ns
    # a conflicting body under the other stream's key, as the ingest of old stored it
    forged = raw_key("acme", begin, second, block_id)
    lake.blobs.put_if_absent(forged, log_block(second, ["forged"]))
    lake.local.wait_converted()
    assert lake.messages() == ["accepted"]
    (failure,) = lake.metadata.conversion_failures("acme")
    assert failure.object_key == forged and "acknowledged" in failure.reason


def test_retries_are_bounded(lake: Lake, context) -> None:
    key = lake.store(lake.stream(), ["doomed"])
    lake.forget_conversions()
    corrupt(lake, key)
    for _ in range(MAX_ATTEMPTS):
        lake.local.etl(sqs_s3_event(key), context)
    assert lake.metadata.conversion_failures()[0].attempts == MAX_ATTEMPTS
    report = lake.local.etl({"action": "reconcile"}, context)
    assert report["converted"] == 0  # inserted just now: left to its notification
    restarted = LocalLake(lake.local.settings)
    try:
        assert restarted.reconciled.given_up == [key]
        assert restarted.reconciled.converted == []
    finally:
        restarted.close()


def test_a_key_of_no_acknowledged_block_is_recorded_failed(lake: Lake, context) -> None:
    missing = raw_key("acme", time.time_ns(), str(uuid.uuid4()), str(uuid.uuid4()))
    result = lake.local.etl(sqs_s3_event(missing), context)
    assert len(result["batchItemFailures"]) == 1
    (failure,) = lake.metadata.conversion_failures("acme")
    assert "acknowledged" in failure.reason
    assert stored_rows(lake.blobs, "log_entries").num_rows == 0


def test_the_scheduled_reconciliation_converts_what_was_missed(
    lake: Lake, context, monkeypatch
) -> None:
    from lambdas.etl import handler as etl_handler

    key = lake.store(lake.stream(), ["missed"])
    lake.forget_conversions()  # as if the notification was lost
    monkeypatch.setattr(etl_handler, "RECONCILE_SETTLE_NS", 0)
    report = lake.local.etl({"action": "reconcile"}, context)
    assert (report["converted"], report["missing_raw"]) == (1, 0)
    lake.local.wait_converted()  # and committed
    assert lake.messages() == ["missed"]
    assert lake.blobs.exists(key)


def test_an_idle_lake_reconciles_without_waking_the_database(lake: Lake, context, monkeypatch):
    from blocklake.stores.metadata import SqlMetadataStore

    for name in ("blocks_inserted_between", "conversion_failures", "get_block"):
        monkeypatch.setattr(
            SqlMetadataStore, name, lambda *a, **k: pytest.fail("reconciliation woke the database")
        )
    assert lake.local.etl({"action": "reconcile"}, context)["converted"] == 0
