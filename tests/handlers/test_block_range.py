"""Issue 10, item 2: a block's events lie within its header's begin_ticks..end_ticks (replayed
span begins excepted), which covers at most an hour, so its rows are where queries look."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from blocklake.etl.convert import BlockConverter
from blocklake.format.encode import StringTable, encode_block, encode_section
from blocklake.format.schema import event_types
from tests.handlers.test_ingest_refusals import Ingest, refused
from tests.helpers import lake_for, stored_rows

HOUR = 3600 * 10**9
START_NS = 1_779_998_400_000_000_000  # 2026-05-28T20:00:00Z; a nanosecond clock from tick 0


def block(stream: str, begin: int, end: int, logs: list[int], spans=()) -> bytes:
    """Log entries at ``logs``; ``spans``: (begin ticks, end ticks) thread spans."""
    types = event_types(1)
    strings = StringTable()
    n = len(logs)
    sections = []
    if logs:
        columns = [logs, [4] * n, ["t"] * n, ["m"] * n, [None] * n]
        sections.append(encode_section(types["log_entry"], columns, strings))
    if spans:
        ids = list(range(1, len(spans) + 1))
        k = len(spans)
        begins = [[s[0] for s in spans], ids, [0] * k, [0] * k, ["s"] * k, ["t"] * k, ["f"] * k]
        sections.append(encode_section(types["thread_span_begin"], [*begins, [1] * k], strings))
        ends = [[s[1] for s in spans], ids]
        sections.append(encode_section(types["thread_span_end"], ends, strings))
    return encode_block(
        stream_id=uuid.UUID(stream),
        sequence=0,
        begin_ticks=begin,
        end_ticks=end,
        object_count=n,
        sections=sections,
        strings=strings,
    )


@pytest.fixture
def ingest(settings, context) -> Ingest:
    return Ingest(settings, context)


@pytest.fixture
def stream(ingest: Ingest) -> str:
    return ingest.stream(
        "log_entry", "thread_span_begin", "thread_span_end", start_time_ns=START_NS, start_ticks=0
    )


@pytest.mark.parametrize(
    "begin,end,logs,spans,field",
    [
        (0, 10, [0, 117 * 365 * 24 * HOUR], (), "end_ticks"),  # header now, an event in 2143
        (0, 10, [5, 11], (), "end_ticks"),
        (5, 10, [4, 6], (), "begin_ticks"),
        (0, 3 * HOUR - 1, [0, int(2.5 * HOUR), 3 * HOUR - 1], (), "end_ticks"),  # 3 hours
        (0, HOUR + 1, [0, HOUR + 1], (), "end_ticks"),
        (10, 20, [10], [(12, 21)], "end_ticks"),  # a span end after end_ticks
        (10, 20, [10], [(2, 9)], "begin_ticks"),  # a span end before begin_ticks
        (10, 20, [10], [(25, 15)], "before its begin"),  # a span begin after end_ticks
    ],
)
def test_events_outside_the_block_are_refused(ingest, stream, begin, end, logs, spans, field):
    refused(ingest, "/v1/blocks", block(stream, begin, end, logs, spans), 400, field)


def test_an_hour_long_block_and_replayed_span_begins_are_accepted(ingest, stream) -> None:
    one_hour = block(stream, 0, HOUR, [0, HOUR])
    assert ingest.call("/v1/blocks", one_hour)[0] == 201
    # a span that began three hours before the block holding its end: its begin is replayed
    replayed = block(stream, 4 * HOUR, 4 * HOUR + 5, [4 * HOUR], [(HOUR // 2, 4 * HOUR + 5)])
    assert ingest.call("/v1/blocks", replayed)[0] == 201
    converter = BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs))
    for key in ingest.blobs.list("raw/"):
        converter.convert_key(key)
    assert stored_rows(ingest.blobs, "thread_spans")["duration_ns"].to_pylist() == [
        4 * HOUR + 5 - HOUR // 2
    ]


@pytest.mark.parametrize("frequency", [32_768, 10_000_000, 3_000_000_000])
def test_an_hour_is_an_hour_of_the_process_clock_at_any_tick_frequency(ingest, frequency) -> None:
    stream = ingest.stream(
        "log_entry",
        "thread_span_begin",
        "thread_span_end",
        start_time_ns=START_NS,
        start_ticks=0,
        tick_frequency=frequency,
    )
    hour = 3600 * frequency  # ticks
    over = hour + -(-frequency // 10**9)  # the first tick a nanosecond past the hour
    refused(ingest, "/v1/blocks", block(stream, 0, over, [0, over]), 400, "end_ticks")
    assert ingest.call("/v1/blocks", block(stream, 0, hour, [0, hour], [(1, hour - 1)]))[0] == 201
    converter = BlockConverter(ingest.blobs, ingest.metadata, lake_for(ingest.blobs))
    (key,) = ingest.blobs.list("raw/")
    converter.convert_key(key)
    (row,) = stored_rows(ingest.blobs, "thread_spans").to_pylist()
    begin_ns = START_NS + 10**9 // frequency
    end_ns = START_NS + (hour - 1) * 10**9 // frequency
    assert row["duration_ns"] == end_ns - begin_ns
    times = stored_rows(ingest.blobs, "log_entries")["time"].cast(pa.int64()).to_pylist()
    assert times == [START_NS // 1000, (START_NS + HOUR) // 1000]
