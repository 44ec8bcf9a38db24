"""What a query reads: a span is found by every window it overlaps however long it is, a window
reads the partitions it reaches and no others (the freshness target is
``tests/e2e/test_local_exactly_once.py``'s)."""

from __future__ import annotations

import json
import time

import pytest

from blocklake.config import Settings
from blocklake.server.lake import LocalLake
from tests.handlers.test_block_range import block
from tests.helpers import http_event, process_document, stream_document

HOUR = 3600 * 10**9
MINUTE = 60 * 10**9


@pytest.fixture
def lake(settings: Settings):
    local = LocalLake(settings)
    yield local
    local.close()


def _stream(lake: LocalLake, context: object, start_ns: int) -> str:
    ingest = lake.handlers["ingest"]
    process = process_document(start_time_ns=start_ns, start_ticks=0)
    stream = stream_document(
        process["process_id"], "log_entry", "thread_span_begin", "thread_span_end"
    )
    for path, document in (("/v1/processes", process), ("/v1/streams", stream)):
        assert ingest(http_event(path, document), context)["statusCode"] == 201
    return stream["stream_id"]


def _spans(lake: LocalLake, context: object, begin: int, end: int) -> int:
    document = {"sql": "SELECT count(*) FROM thread_spans", "begin": begin, "end": end}
    response = lake.handlers["query"](http_event("/v1/query", document), context)
    assert response["statusCode"] == 200, response["body"]
    return json.loads(response["body"])["rows"][0][0]


def test_a_three_hour_span_is_found_by_every_window_it_overlaps(
    lake: LocalLake, context: object
) -> None:
    start = (time.time_ns() // HOUR - 6) * HOUR
    stream = _stream(lake, context, start)
    # One span from 0:30 to 3:30, in the block holding its end (its begin replayed there).
    span_end = 3 * HOUR + 30 * MINUTE
    body = block(stream, span_end, span_end + 5, [span_end], [(30 * MINUTE, span_end)])
    ingest = lake.handlers["ingest"]
    assert ingest(http_event("/v1/blocks", body), context)["statusCode"] == 201
    lake.wait_converted()
    windows = [(hour * HOUR + 20 * MINUTE, hour * HOUR + 40 * MINUTE) for hour in (1, 2, 3)]
    assert [_spans(lake, context, start + b, start + e) for b, e in windows] == [1, 1, 1]
    assert _spans(lake, context, start + 3 * HOUR + 40 * MINUTE, start + 5 * HOUR) == 0
    assert _spans(lake, context, start, start + 20 * MINUTE) == 0


def test_a_window_reads_only_the_partitions_it_reaches(lake: LocalLake, context: object) -> None:
    start = (time.time_ns() // HOUR - 10) * HOUR
    stream = _stream(lake, context, start)
    ingest = lake.handlers["ingest"]
    for hour in range(8):  # one block per hour, each committed on its own
        at = hour * HOUR + 10 * MINUTE
        assert (
            ingest(http_event("/v1/blocks", block(stream, at, at + 5, [at])), context)["statusCode"]
            == 201
        )
        lake.wait_converted()
    plan = lake.lake.plan("log_entries", "acme", start + 5 * HOUR, start + 6 * HOUR)
    assert len(plan.data_files) == 1 and plan.rows == 1
    assert (
        plan.partitions == [p for p in plan.partitions if "hour=" in p]
        and len(plan.partitions) == 1
    )
    document = {
        "sql": "SELECT count(*) FROM log_entries",
        "begin": start + 5 * HOUR,
        "end": start + 6 * HOUR,
        "dry_run": True,
    }
    answer = json.loads(lake.handlers["query"](http_event("/v1/query", document), context)["body"])
    assert answer["files"] == 1 and answer["rows"] == 1
    whole = lake.lake.plan("log_entries", "acme", start, start + 9 * HOUR)
    assert len(whole.data_files) == 8
