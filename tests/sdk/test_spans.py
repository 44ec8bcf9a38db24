"""Span ids, parents and depths given by the span writers, and spans open across blocks: each
block replays the begins still open, and a span becomes one row, in the block of its end."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading

import pytest

from blocklake import sdk
from blocklake.format.arrow import decode_block
from blocklake.format.schema import event_types
from blocklake.sdk import recording
from blocklake.sdk.recording import SpanScope, take
from blocklake.sdk.streams import async_writer, thread_writer

THREAD_LAYOUT = {
    t.id: t for t in (event_types()["thread_span_begin"], event_types()["thread_span_end"])
}
ASYNC_LAYOUT = {
    t.id: t for t in (event_types()["async_span_begin"], event_types()["async_span_end"])
}


def decode(data: bytes, layout: dict) -> tuple[list[dict], list[dict], object]:
    block = decode_block(data, layout)
    begins = ends = None
    for name, table in block.sections.items():
        if name.endswith("_begin"):
            begins = table.to_pylist()
        else:
            ends = table.to_pylist()
    return begins or [], ends or [], block.header


def pair(blocks: list[bytes], layout: dict) -> list[dict]:
    """One row per span, from the block holding its end (as the ETL does)."""
    spans = []
    for data in blocks:
        begins, ends, _ = decode(data, layout)
        by_id = {row["span_id"]: row for row in begins}
        assert len(by_id) == len(begins), "a span's begin appears twice in one block"
        for end in ends:
            begin = by_id[end["span_id"]]  # the begin is always in the same block
            spans.append({**begin, "begin": begin["ticks"], "end": end["ticks"]})
    return spans


@pytest.fixture(autouse=True)
def span_ids_from_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The record path's span ids start at a random number; from 1 here, to read the rows."""
    monkeypatch.setattr(recording, "_next_span_id", itertools.count(1).__next__)


class Recorder:
    """(scope id, ticks) pairs as the record path appends them: a begin with its span id (from
    1; a root with the context it began in, none here), an end as it is."""

    def __init__(self) -> None:
        self.next_id = itertools.count(1).__next__
        self.stack: list[int] = []

    def __call__(self, pairs: list[tuple[int, int]]) -> list[tuple]:
        events: list[tuple] = []
        for scope_id, ticks in pairs:
            if scope_id > 0:
                span_id = self.next_id()
                events.append((scope_id, ticks, span_id, *(() if self.stack else (None,))))
                self.stack.append(span_id)
            else:
                if self.stack:
                    self.stack.pop()
                events.append((scope_id, ticks))
        return events


def scopes(*names: str) -> list[SpanScope]:
    return [SpanScope(name, "tests", "test_spans.py", number) for number, name in enumerate(names)]


def test_nested_thread_spans_get_ids_parents_and_depths() -> None:
    a, b, c = scopes("a", "b", "c")
    writer = thread_writer({})
    events = [
        (a.id, 1), (b.id, 2), (c.id, 3), (c.end_id, 4), (b.end_id, 5),
        (b.id, 6), (b.end_id, 7), (a.end_id, 8), (a.id, 9), (a.end_id, 10),
    ]  # fmt: skip
    block = writer.encode(Recorder()(events))
    spans = pair([block.data], THREAD_LAYOUT)
    got = sorted((s["span_id"], s["parent_span_id"], s["depth"], s["name"]) for s in spans)
    assert got == [(1, 0, 0, "a"), (2, 1, 1, "b"), (3, 2, 2, "c"), (4, 1, 1, "b"), (5, 0, 0, "a")]
    by_id = {s["span_id"]: s for s in spans}
    assert (by_id[3]["begin"], by_id[3]["end"]) == (3, 4)
    assert by_id[1]["file"] == "test_spans.py" and by_id[1]["target"] == "tests"
    _, _, header = decode(block.data, THREAD_LAYOUT)
    assert (header.begin_ticks, header.end_ticks, header.object_count) == (1, 10, 10)
    assert writer.open_spans == []


def test_spans_open_across_blocks_are_replayed_and_emitted_once() -> None:
    a, b, c, d = scopes("a", "b", "c", "d")
    writer = thread_writer({})
    record = Recorder()
    first = writer.encode(record([(a.id, 1), (b.id, 2), (b.end_id, 3), (c.id, 4)]))
    second = writer.encode(record([(d.id, 5), (d.end_id, 6), (c.end_id, 7)]))
    third = writer.encode(record([(a.end_id, 8)]))

    begins, _ends, header = decode(second.data, THREAD_LAYOUT)
    # the second block replays a and c (still open) ahead of its own begin d
    assert [(r["span_id"], r["name"], r["ticks"]) for r in begins] == [
        (1, "a", 1), (3, "c", 4), (4, "d", 5),
    ]  # fmt: skip
    assert header.object_count == 3 and header.sequence == 1
    assert (header.begin_ticks, header.end_ticks) == (5, 7)
    begins3, ends3, _ = decode(third.data, THREAD_LAYOUT)
    assert [r["span_id"] for r in begins3] == [1] and [r["span_id"] for r in ends3] == [1]

    spans = pair([first.data, second.data, third.data], THREAD_LAYOUT)
    assert sorted(s["span_id"] for s in spans) == [1, 2, 3, 4]  # each span exactly once
    got = {s["name"]: (s["parent_span_id"], s["depth"], s["begin"], s["end"]) for s in spans}
    assert got == {"a": (0, 0, 1, 8), "b": (1, 1, 2, 3), "c": (1, 1, 4, 7), "d": (3, 2, 5, 6)}


def test_span_ids_stay_unique_in_a_stream_across_blocks() -> None:
    (a,) = scopes("a")
    writer = thread_writer({})
    record = Recorder()
    blocks = [writer.encode(record([(a.id, 2 * i), (a.end_id, 2 * i + 1)])).data for i in range(5)]
    assert [s["span_id"] for s in pair(blocks, THREAD_LAYOUT)] == [1, 2, 3, 4, 5]


def test_writer_ignores_orphan_ends_and_closes_spans_whose_end_was_lost() -> None:
    a, b, c = scopes("a", "b", "c")
    writer = thread_writer({})
    # c's begin was dropped (buffer full): its end is an orphan; b's end was lost: closes with a
    block = writer.encode(Recorder()([(a.id, 1), (b.id, 2), (c.end_id, 3), (a.end_id, 4)]))
    spans = pair([block.data], THREAD_LAYOUT)
    got = sorted((s["name"], s["parent_span_id"], s["depth"], s["end"]) for s in spans)
    assert got == [("a", 0, 0, 4), ("b", 1, 1, 4)]
    assert writer.open_spans == []


def test_recorded_spans_of_a_thread_become_a_cpu_stream() -> None:
    outer, inner = SpanScope("outer"), SpanScope("inner")

    @sdk.instrument
    def work() -> int:
        with inner:
            return 3

    def run() -> None:
        with outer:
            work()
            work()

    thread = threading.Thread(target=run, name="worker-1")
    thread.start()
    thread.join()
    (buffer,) = [b for b in recording.thread_buffers if b.owner is thread]
    assert len(buffer) == 10
    writer = thread_writer({"thread_name": thread.name})
    spans = pair([writer.encode(take(buffer)).data], THREAD_LAYOUT)
    got = sorted((s["span_id"], s["parent_span_id"], s["depth"], s["name"]) for s in spans)
    work_name = work.__qualname__
    assert got == [
        (1, 0, 0, "outer"), (2, 1, 1, work_name), (3, 2, 2, "inner"),
        (4, 1, 1, work_name), (5, 4, 2, "inner"),
    ]  # fmt: skip
    assert writer.registration("p")["tags"] == ["cpu"]


def test_recorded_spans_open_across_two_takes() -> None:
    outer, inner = SpanScope("outer"), SpanScope("inner")
    writer = thread_writer({})
    blocks = []
    with outer:
        with inner:
            pass
        (buffer,) = recording.thread_buffers
        blocks.append(writer.encode(take(buffer)).data)
        with inner:
            pass
    blocks.append(writer.encode(take(buffer)).data)
    spans = pair(blocks, THREAD_LAYOUT)
    assert sorted((s["span_id"], s["parent_span_id"], s["depth"]) for s in spans) == [
        (1, 0, 0), (2, 1, 1), (3, 1, 1),
    ]  # fmt: skip
    begins, _, _ = decode(blocks[1], THREAD_LAYOUT)
    assert begins[0]["span_id"] == 1 and begins[0]["name"] == "outer"  # replayed


# --- async spans ------------------------------------------------------------------------------


@sdk.instrument_async
async def leaf(pause: float) -> str:
    await asyncio.sleep(pause)
    return "done"


@sdk.instrument_async(name="middle")
async def middle() -> None:
    await asyncio.gather(leaf(0.002), leaf(0.001))


async def scenario() -> None:
    async with sdk.async_span("root"):
        await asyncio.gather(middle(), asyncio.create_task(leaf(0.001)))
    await leaf(0)  # after root ended: a root itself


def test_async_span_parents_follow_the_task_context() -> None:
    asyncio.run(scenario())
    writer = async_writer({})
    spans = pair([writer.encode(take(recording.async_events)).data], ASYNC_LAYOUT)
    by_id = {s["span_id"]: s for s in spans}
    assert len(spans) == 6
    (root,) = [s for s in spans if s["name"] == "root"]
    (mid,) = [s for s in spans if s["name"] == "middle"]
    leaves = [s for s in spans if s["name"] == leaf.__qualname__]
    assert (root["parent_span_id"], root["depth"]) == (0, 0)
    assert (mid["parent_span_id"], mid["depth"]) == (root["span_id"], 1)
    parents = sorted(
        by_id[s["parent_span_id"]]["name"] if s["parent_span_id"] else "" for s in leaves
    )
    assert parents == ["", "middle", "middle", "root"]
    for s in leaves:
        expected = 0 if not s["parent_span_id"] else by_id[s["parent_span_id"]]["depth"] + 1
        assert s["depth"] == expected
        assert s["begin"] <= s["end"]
    assert leaf.__name__ == "leaf"  # functools.wraps


def test_async_spans_ending_in_a_later_block_are_emitted_once() -> None:
    writer = async_writer({})
    blocks = []

    async def run() -> None:
        async with sdk.async_span("request"):
            async with sdk.async_span("step"):
                pass
            blocks.append(writer.encode(take(recording.async_events)).data)
            await leaf(0)
        blocks.append(writer.encode(take(recording.async_events)).data)

    asyncio.run(run())
    begins, _ends, header = decode(blocks[1], ASYNC_LAYOUT)
    assert begins[0]["name"] == "request"  # replayed in the second block
    assert header.object_count == 3  # leaf begin + end, request end: replay not counted
    spans = pair(blocks, ASYNC_LAYOUT)
    assert sorted(s["name"] for s in spans) == sorted(["request", "step", leaf.__qualname__])
    assert len({s["span_id"] for s in spans}) == 3
    (request,) = [s for s in spans if s["name"] == "request"]
    for s in spans:
        if s is not request:
            assert (s["parent_span_id"], s["depth"]) == (request["span_id"], 1)
    assert writer.open_async == {}


def test_block_header_ticks_cover_events_appended_out_of_order() -> None:
    """Threads share the log buffer: one may read the clock, lose the GIL, and append after
    another thread's later event. The block must still decode (begin_ticks <= end_ticks) and
    its header must cover every event."""
    from blocklake.sdk.streams import log_writer

    writer = log_writer({})
    events = [(200, 4, "", "second thread", None), (100, 4, "", "first thread", None)]
    block = decode_block(
        writer.encode(events).data, {event_types()["log_entry"].id: event_types()["log_entry"]}
    )
    assert (block.header.begin_ticks, block.header.end_ticks) == (100, 200)
    assert [r["message"] for r in block.sections["log_entry"].to_pylist()] == [
        "second thread",
        "first thread",
    ]


def test_span_names_past_the_bound_are_recorded_and_memory_stays_flat(server) -> None:
    """Input 8: every distinct name kept a scope forever (300,000 names: ~100 MB)."""
    sdk.init(server.url, "key", flush_interval=60, max_span_names=100)
    before = len(SpanScope.registry)

    def record() -> None:
        for i in range(3000):
            with sdk.span(f"GET /orders/{i}"):
                pass
            async_scope = sdk.async_span(f"task {i}")
            with async_scope:
                pass

    thread = threading.Thread(target=record)
    thread.start()
    thread.join()
    assert sdk.flush(timeout=30)
    # 100 kept names for each of span() and async_span(); the others were forgotten once sent
    assert len(SpanScope.registry) <= before + 200
    assert len(recording._scopes) == 100
    names = [r["name"] for r in server.rows("thread_span_begin")]
    assert names == [f"GET /orders/{i}" for i in range(3000)]
    async_names = sorted(r["name"] for r in server.rows("async_span_begin"))
    assert async_names == sorted(f"task {i}" for i in range(3000))


def test_long_span_names_are_cut_visibly() -> None:
    scope = SpanScope("n" * 10_000, target=None)  # type: ignore[arg-type]
    assert scope.name == "n" * 512 + "...[truncated 9488 bytes]"  # the marker of log text
    assert scope.target == "None"


def test_with_span_inside_a_coroutine_is_refused_pointing_to_async_span() -> None:
    """Input 9: concurrent tasks on one thread interleaved their ``with sdk.span`` spans."""

    async def task() -> None:
        with sdk.span("request"):
            await asyncio.sleep(0)

    async def main() -> list:
        return await asyncio.gather(task(), task(), return_exceptions=True)

    errors = asyncio.run(main())
    assert all(isinstance(e, TypeError) and "async_span" in str(e) for e in errors)
    assert not any(recording.thread_buffers)  # nothing half-recorded


def test_async_spans_in_concurrent_tasks_get_their_own_parents_and_durations(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)

    async def task(name: str) -> None:
        async with sdk.async_span(name):
            for _ in range(3):
                async with sdk.async_span(f"{name} step"):
                    await asyncio.sleep(0.001)

    async def main() -> None:
        await asyncio.gather(task("a"), task("b"))

    asyncio.run(main())
    assert sdk.flush(timeout=10)
    begins = {r["span_id"]: r for r in server.rows("async_span_begin")}
    ends = {r["span_id"]: r for r in server.rows("async_span_end")}
    assert set(begins) == set(ends) and len(begins) == 8
    for span_id, begin in begins.items():
        if begin["name"].endswith("step"):
            parent = begins[begin["parent_span_id"]]
            assert parent["name"] == begin["name"].split()[0]  # its own task's root
            assert (
                parent["ticks"] <= begin["ticks"]
                and ends[span_id]["ticks"] <= ends[parent["span_id"]]["ticks"]
            )


def test_with_span_behind_a_helper_in_concurrent_tasks_warns_once(caplog) -> None:
    """``with sdk.span`` behind a helper context manager hides the coroutine from the check at
    entry: a thread running an event loop is noticed off the fast path (its first span), with
    one warning pointing to ``async_span``."""
    recording._warned_loop = False

    @contextlib.contextmanager
    def timed(name: str):
        with sdk.span(name):
            yield

    async def via_helper(i: int) -> None:
        with timed("cm"):
            await asyncio.sleep(0.01 * (i + 1))

    async def two() -> None:
        await asyncio.gather(via_helper(0), via_helper(1))

    def in_a_thread() -> None:  # a thread of its own: its first span is inside the loop
        asyncio.run(two())
        asyncio.run(two())

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert caplog.text.count("thread running an asyncio event loop") == 1
    assert "sdk.async_span" in caplog.text


def test_instrument_on_a_coroutine_function_names_instrument_async() -> None:
    with pytest.raises(TypeError, match=r"@sdk\.instrument_async"):

        @sdk.instrument
        async def handler() -> None:
            pass

    @sdk.instrument_async
    async def works() -> int:
        return 1

    assert asyncio.run(works()) == 1


def test_async_span_used_as_a_decorator_names_instrument_async() -> None:
    with pytest.raises(TypeError, match=r"@sdk\.instrument_async"):

        @sdk.async_span  # type: ignore[arg-type]
        async def bare() -> None:
            pass

    with pytest.raises(TypeError, match=r"@sdk\.instrument_async"):

        @sdk.async_span("named")
        async def named() -> None:
            pass
