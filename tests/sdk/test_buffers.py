"""Bounded memory: past ``flush_at`` events, a buffer keeps events while the byte budget has
room (estimated bytes per event), then drops and counts; ``take_dropped`` resets."""

from __future__ import annotations

import asyncio
import threading

from blocklake import sdk
from blocklake.format.arrow import decode_block
from blocklake.format.schema import event_types
from blocklake.sdk import recording
from blocklake.sdk.recording import SpanScope, take, take_dropped
from blocklake.sdk.streams import async_writer, thread_writer

GUESS = recording.EVENT_BYTES_GUESS


def cap(flush_at: int, extra: int, **options: int) -> None:
    """Room for ``flush_at`` events, then ``extra`` more (at the estimated bytes per event)."""
    recording.configure(flush_at=flush_at, memory_budget=extra * GUESS, **options)


THREAD_LAYOUT = {
    t.id: t for t in (event_types()["thread_span_begin"], event_types()["thread_span_end"])
}


def test_logs_past_the_budget_are_dropped_and_counted() -> None:
    cap(4, 6)
    recording.wake_flusher.clear()
    for i in range(1000):
        sdk.info(f"message {i}")
        assert len(recording.logs) <= 10
    assert recording.wake_flusher.is_set()  # the flusher was told to come
    assert len(recording.logs) == 10
    assert recording.logs.dropped == 990
    assert [e[3] for e in recording.logs] == [f"message {i}" for i in range(10)]  # oldest kept
    assert take_dropped(recording.logs) == 990
    assert recording.logs.dropped == 0
    assert take_dropped(recording.logs) == 0


def test_every_log_function_respects_the_cap() -> None:
    cap(2, 3, max_level=6)
    for function in (sdk.fatal, sdk.error, sdk.warn, sdk.info, sdk.debug, sdk.trace):
        for _ in range(10):
            function("x")
    for _ in range(10):
        sdk.log(3, "x")
    assert len(recording.logs) == 5
    assert take_dropped(recording.logs) == 65


def test_metrics_past_the_budget_are_dropped_and_counted() -> None:
    cap(100, 100)
    for i in range(5000):
        sdk.metric("m", float(i))
    assert len(recording.measures) == 200
    assert take_dropped(recording.measures) == 4800
    # after a take, there is room again
    assert len(take(recording.measures)) == 200
    sdk.metric("m", 1.0)
    assert len(recording.measures) == 1 and recording.measures.dropped == 0


def test_levels_above_max_level_are_not_recorded_nor_counted() -> None:
    recording.configure(max_level=recording.WARN)
    sdk.info("no")
    sdk.debug("no")
    sdk.log(recording.INFO, "no")
    sdk.warn("yes")
    sdk.fatal("yes")
    assert [e[1] for e in recording.logs] == [3, 1]
    assert recording.logs.dropped == 0


def test_thread_span_buffer_stays_bounded_when_begins_are_dropped() -> None:
    """Ends are never dropped, but an end whose begin was dropped has nothing to close: it must
    not be kept either, or a hot loop of spans grows the buffer without limit while the flusher
    is away (before init, or stuck retrying a server that does not answer)."""
    cap(4, 6)
    scope = SpanScope("hot")

    @sdk.instrument
    def hot() -> None:
        pass

    def run() -> None:
        for _ in range(1000):
            with scope:
                pass
            hot()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    (buffer,) = recording.thread_buffers
    # 2 spans below flush_at, then 6 begins within the budget (ends take no budget: a kept
    # begin keeps its end); the other begins and their ends are dropped: events, as the wire
    # counts
    assert buffer.dropped == 2 * (2000 - 8)
    assert len(buffer) == 16


def test_thread_span_ends_are_never_dropped() -> None:
    """A span whose begin was kept keeps its end even when the buffer is full."""
    cap(2, 4)
    scopes = [SpanScope(f"s{i}") for i in range(6)]

    def run() -> None:
        for scope in scopes:  # six nested begins fill the buffer
            scope.__enter__()
        for scope in reversed(scopes):
            scope.__exit__(None, None, None)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    (buffer,) = recording.thread_buffers
    assert len(buffer) == 12 and buffer.dropped == 0
    assert [e[0] for e in buffer[6:]] == [s.end_id for s in reversed(scopes)]


def test_orphan_ends_of_dropped_begins_are_ignored_by_the_writer() -> None:
    cap(2, 2)
    outer, inner = SpanScope("outer"), SpanScope("inner")

    def run() -> None:
        with outer:
            for _ in range(10):
                with inner:
                    pass

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    (buffer,) = recording.thread_buffers
    events = take(buffer)
    # outer and 2 inner below flush_at... : 1 + 3 inner spans kept, 7 inner spans dropped
    assert (len(events), take_dropped(buffer)) == (8, 2 * 7)
    block = decode_block(thread_writer({}).encode(events).data, THREAD_LAYOUT)
    begins = block.sections["thread_span_begin"].to_pylist()
    ends = block.sections["thread_span_end"].to_pylist()
    assert sorted(b["span_id"] for b in begins) == sorted(e["span_id"] for e in ends)
    names = [b["name"] for b in begins]
    assert (names.count("outer"), names.count("inner")) == (1, 3)
    # every end closes a begin of this block, once
    assert len({e["span_id"] for e in ends}) == len(ends)


def test_spans_nested_in_a_dropped_span_are_counted_as_dropped_events() -> None:
    """Every event lost is counted, the begins and ends of spans inside a dropped span too."""
    cap(2, 2)
    outer, middle, inner = SpanScope("outer"), SpanScope("middle"), SpanScope("inner")

    def run() -> None:
        for _ in range(100):
            with outer, middle:
                for _ in range(3):
                    with inner:
                        pass

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    (buffer,) = recording.thread_buffers
    events = take(buffer)
    recorded = 100 * 2 * (1 + 1 + 3)
    assert take_dropped(buffer) == recorded - len(events)
    # 2 begins below flush_at, 2 within the budget: each with its end, the rest dropped
    assert len(events) == 8


def test_async_span_buffer_stays_bounded_when_begins_are_dropped() -> None:
    cap(4, 6)

    async def run() -> None:
        for _ in range(500):
            async with sdk.async_span("hot"):
                pass

    asyncio.run(run())
    # 2 below flush_at, 6 within the budget, each with its end; the others' begins and ends
    # are lost: events, as the wire counts them (a span is 2)
    assert len(recording.async_events) == 16
    assert recording.async_events.dropped == 2 * (500 - 8)
    # whatever was kept encodes to spans that each have their begin
    events = take(recording.async_events)
    writer = async_writer({})
    writer.encode(events)
    assert writer.open_async == {}
