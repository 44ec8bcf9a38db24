"""Compaction through the ETL Lambda's schedule: an hour's files replaced by one, the same rows
(ours and Athena's view alike), never twice; snapshots expired, replaced files deleted once no
query can be reading them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from blocklake.config import Settings
from blocklake.lake.iceberg import SNAPSHOT_RETENTION
from blocklake.server.lake import LocalLake
from blocklake.stores.metadata import SqlMetadataStore
from tests.helpers import http_event, log_block, process_document, stream_document
from tests.lake import athena_view

HOUR = 3600 * 10**9
RETENTION_NS = int(SNAPSHOT_RETENTION.total_seconds() * 1e9)


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
    """One block per batch, each committed on its own (one data file each)."""
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


def _athena_messages(root: Path) -> list[str]:
    return [r[0] for r in athena_view.rows(root, "acme", "log_entries", "SELECT message FROM t")]


def _data_files(lake: LocalLake, hour_start: int) -> list[str]:
    return [
        f.path
        for f in lake.lake.plan("log_entries", "acme", hour_start, hour_start + HOUR).data_files
    ]


def test_compaction_merges_an_hour_and_keeps_every_row_once(
    lake: LocalLake, context: object, settings: Settings
) -> None:
    hour_start = (time.time_ns() // HOUR - 2) * HOUR  # a closed hour
    stream = _record(lake, context, hour_start, [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]])
    assert len(_data_files(lake, hour_start)) == 3
    before = _messages(lake, context, hour_start)
    assert before == ["a1", "a2", "b1", "c1", "c2", "c3"]
    assert sorted(_athena_messages(settings.data_dir)) == before

    report = lake.etl({"action": "compact"}, context)
    assert report["partitions"] >= 2  # log_entries and blocks
    assert len(_data_files(lake, hour_start)) == 1
    assert _messages(lake, context, hour_start) == before
    assert sorted(_athena_messages(settings.data_dir)) == before

    # A block arriving late is committed beside the compacted file, and is read once.
    _record(lake, context, hour_start, [["late"]], first_sequence=3, stream=stream)
    assert len(_data_files(lake, hour_start)) == 2
    assert _messages(lake, context, hour_start) == sorted([*before, "late"])
    assert sorted(_athena_messages(settings.data_dir)) == sorted([*before, "late"])
    again = lake.etl({"action": "compact"}, context)
    assert again["partitions"] >= 1
    assert len(_data_files(lake, hour_start)) == 1
    assert _messages(lake, context, hour_start) == sorted([*before, "late"])
    assert sorted(_athena_messages(settings.data_dir)) == sorted([*before, "late"])
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
    assert lake.etl({"action": "compact"}, context)["partitions"] >= 1


def test_the_current_hour_is_left_alone_while_its_files_are_few(
    lake: LocalLake, context: object
) -> None:
    hour_start = time.time_ns() // HOUR * HOUR
    _record(lake, context, hour_start, [["now1"], ["now2"]])
    assert lake.etl({"action": "compact"}, context)["partitions"] == 0


def test_unknown_scheduled_action_fails_loudly(lake: LocalLake, context: object) -> None:
    with pytest.raises(ValueError, match="health_check"):
        lake.etl({"action": "health_check"}, context)


def test_replaced_files_are_deleted_once_no_query_can_be_reading_them(
    lake: LocalLake, context: object, settings: Settings
) -> None:
    hour_start = (time.time_ns() // HOUR - 2) * HOUR
    _record(lake, context, hour_start, [["a"], ["b"]])
    replaced = _data_files(lake, hour_start)
    now = time.time_ns()
    assert lake.lake.compact(now).partitions >= 1
    assert all(Path(path).exists() for path in replaced)  # a running query may read them

    later = now + RETENTION_NS + 60 * 10**9  # the snapshots naming them expire
    report = lake.lake.compact(later)
    assert report.snapshots_expired >= 1 and report.orphans_removed == 0
    assert all(Path(path).exists() for path in replaced)
    # Unnamed for a whole retention period: gone.
    assert lake.lake.compact(later + RETENTION_NS).orphans_removed >= len(replaced)
    assert not any(Path(path).exists() for path in replaced)
    assert _messages(lake, context, hour_start) == ["a", "b"]
    assert sorted(_athena_messages(settings.data_dir)) == ["a", "b"]
