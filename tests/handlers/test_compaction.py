"""Hourly compaction through the ETL Lambda's schedule: fewer files, the same rows, never twice."""

from __future__ import annotations

import json
import time

import pytest

from blocklake.config import Settings
from blocklake.etl.compact import GRACE_NS, Compactor
from blocklake.server.lake import LocalLake
from blocklake.stores.metadata import SqlMetadataStore
from tests.helpers import http_event, log_block, process_document, stream_document

HOUR = 3600 * 10**9


@pytest.fixture
def lake(settings: Settings):
    local = LocalLake(settings)
    yield local
    local.close()


def _record(
    lake: LocalLake,
    context: object,
    hour_start: int,
    batches: list[list[str]],
    first_sequence: int = 0,
    stream: dict | None = None,
) -> dict:
    ingest = lake.handlers["ingest"]
    if stream is None:
        process = process_document(start_time_ns=hour_start, start_ticks=0)
        stream = stream_document(process["process_id"])
        ingest(http_event("/v1/processes", process), context)
        ingest(http_event("/v1/streams", stream), context)
    for offset, messages in enumerate(batches):
        block = log_block(
            stream["stream_id"],
            messages,
            first_tick=(first_sequence + offset) * 60 * 10**9,
            sequence=first_sequence + offset,
        )
        assert ingest(http_event("/v1/blocks", block), context)["statusCode"] == 201
    lake.wait_converted()
    return stream


def _messages(lake: LocalLake, context: object, hour_start: int) -> list[str]:
    document = {
        "sql": "SELECT message FROM log_entries ORDER BY message",
        "begin": hour_start,
        "end": hour_start + HOUR,
    }
    response = lake.handlers["query"](http_event("/v1/query", document), context)
    return [row[0] for row in json.loads(response["body"])["rows"]]


def test_compaction_merges_an_hour_and_keeps_every_row_once(
    lake: LocalLake, context: object
) -> None:
    hour_start = (time.time_ns() // HOUR - 2) * HOUR  # a closed hour
    stream = _record(lake, context, hour_start, [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]])
    (date,) = lake.blobs.list_folders("tables/log_entries/tenant=acme/")
    (partition,) = lake.blobs.list_folders(date)
    assert len(list(lake.blobs.list(partition))) == 3
    before = _messages(lake, context, hour_start)

    report = lake.etl({"action": "compact"}, context)
    assert report["partitions"] == 2  # log_entries and blocks
    names = sorted(key.rsplit("/", 1)[1] for key in lake.blobs.list(partition))
    assert [n for n in names if n.startswith("compacted-")] and "_compaction.json" in names
    assert _messages(lake, context, hour_start) == before == ["a1", "a2", "b1", "c1", "c2", "c3"]

    # A block arriving late lands as a fragment beside the compacted file, and is read once.
    _record(lake, context, hour_start, [["late"]], first_sequence=3, stream=stream)
    assert _messages(lake, context, hour_start) == sorted([*before, "late"])
    again = lake.etl({"action": "compact"}, context)
    assert again["partitions"] == 2  # the late block in log_entries and blocks
    assert _messages(lake, context, hour_start) == sorted([*before, "late"])
    assert lake.etl({"action": "compact"}, context)["partitions"] == 0  # nothing left to merge


def test_compaction_does_not_touch_the_metadata_database(
    lake: LocalLake, context: object, monkeypatch
) -> None:
    hour_start = (time.time_ns() // HOUR - 1) * HOUR
    _record(lake, context, hour_start, [["x"], ["y"]])
    for name in ("get_process", "get_stream", "get_block", "list_blocks", "insert_block"):
        monkeypatch.setattr(
            SqlMetadataStore, name, lambda *a, **k: pytest.fail("compaction woke the database")
        )
    assert lake.etl({"action": "compact"}, context)["partitions"] == 2


def test_the_current_hour_is_left_alone(lake: LocalLake, context: object) -> None:
    hour_start = time.time_ns() // HOUR * HOUR
    _record(lake, context, hour_start, [["now1"], ["now2"]])
    assert lake.etl({"action": "compact"}, context)["partitions"] == 0


def test_unknown_scheduled_action_fails_loudly(lake: LocalLake, context: object) -> None:
    with pytest.raises(ValueError, match="health_check"):
        lake.etl({"action": "health_check"}, context)


def test_replaced_files_are_deleted_once_no_query_can_be_reading_them(
    lake: LocalLake, context: object
) -> None:
    hour_start = (time.time_ns() // HOUR - 2) * HOUR
    stream = _record(lake, context, hour_start, [["a"], ["b"]])
    compactor = Compactor(lake.blobs)
    now = time.time_ns()
    assert compactor.compact_closed_hours(now).partitions == 2
    _record(lake, context, hour_start, [["late"]], first_sequence=2, stream=stream)
    compactor.compact_closed_hours(now + 60 * 10**9)  # merges "late"; the first file is replaced
    (date,) = lake.blobs.list_folders("tables/log_entries/tenant=acme/")
    (partition,) = lake.blobs.list_folders(date)
    assert len(list(lake.blobs.list(partition))) == 6  # 3 fragments, 2 compacted, the manifest

    within_grace = compactor.compact_closed_hours(now + 60 * 10**9 + GRACE_NS // 2)
    assert within_grace.deleted == 0
    after_grace = compactor.compact_closed_hours(now + 2 * 60 * 10**9 + GRACE_NS)
    # in log_entries and in blocks: 3 fragments and the superseded compacted file
    assert after_grace.deleted == 2 * 4
    names = [key.rsplit("/", 1)[1] for key in lake.blobs.list(partition)]
    assert len(names) == 2 and "_compaction.json" in names
    assert _messages(lake, context, hour_start) == ["a", "b", "late"]
