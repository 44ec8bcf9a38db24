"""The Flusher and Uploader against a fake ingestion server: registration order, uploads,
blocks waiting while the server is away, the byte budget, settings from the back-channel,
``flush()``."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from sdk_fake_server import FakeServer, check_order

from blocklake import sdk
from blocklake.sdk import recording
from blocklake.sdk.flusher import DROPPED_METRIC, Flusher
from blocklake.sdk.stats import Counters
from blocklake.sdk.transport import Transport
from blocklake.sdk.uploader import Uploader


def process_doc(process_id: str = "11111111-1111-4111-8111-111111111111") -> dict:
    return {"process_id": process_id, "exe": "test", "properties": {}}


@pytest.fixture
def make_flusher(server: FakeServer) -> Iterator:
    """A flusher driven by hand (``run_once``), its uploader thread running with short pauses
    and a short age bound (``retry_for``)."""
    made: list[Flusher] = []

    def make(retry_for: float = 30.0, **options) -> Flusher:
        counters = Counters()
        uploader = Uploader(
            Transport(server.url, "k", timeout=5),
            process_doc(),
            counters,
            retry_for=retry_for,
            backoff=0.01,
            max_backoff=0.05,
        )
        flusher = Flusher(uploader, counters, **options)
        uploader.start()
        made.append(flusher)
        return flusher

    yield make
    for flusher in made:
        flusher.uploader.stop(time.monotonic())


def sent(flusher: Flusher, timeout: float = 10) -> bool:
    """Waits until every block queued so far is acknowledged or given up."""
    uploader = flusher.uploader
    return uploader.wait_resolved(uploader.last_serial, time.monotonic() + timeout)


def adds_up(flusher: Flusher) -> dict:
    stats = flusher.counters.snapshot(flusher.buffered(), flusher.uploader.in_flight())
    assert (
        stats["recorded"]
        == stats["acknowledged"] + sum(stats["dropped"].values()) + (stats["pending"])
    )
    return stats


def test_registers_process_once_and_each_stream_before_its_first_block(server) -> None:
    process_id = sdk.init(server.url, "key", flush_interval=60)
    sdk.info("hello", target="app", properties={"user": "ann"})
    sdk.metric("queue", 3.0, unit="items")
    with sdk.span("work"):
        pass
    assert sdk.flush(timeout=10) is True
    sdk.warn("second round")
    sdk.metric("queue", 4.0)
    assert sdk.flush(timeout=10) is True

    check_order(server.requests)
    assert server.paths().count("/v1/processes") == 1
    (process,) = server.processes()
    assert process["process_id"] == process_id == sdk.process_id()
    assert process["parent_process_id"] is None
    streams = server.streams()
    assert sorted(tuple(s["tags"]) for s in streams.values()) == [("cpu",), ("log",), ("metrics",)]
    assert all(s["process_id"] == process_id for s in streams.values())
    assert server.paths().count("/v1/streams") == 3

    logs = server.rows("log_entry")
    assert [(r["level"], r["target"], r["message"]) for r in logs] == [
        (4, "app", "hello"),
        (3, "", "second round"),
    ]
    assert logs[0]["properties"] == [("user", "ann")]
    assert [(r["name"], r["value"]) for r in server.rows("measure")] == [
        ("queue", 3.0),
        ("queue", 4.0),
    ]
    assert [r["name"] for r in server.rows("thread_span_begin")] == ["work"]
    # sequences count up per stream
    sequences: dict[str, list[int]] = {}
    for stream, block in server.decoded():
        sequences.setdefault(stream["tags"][0], []).append(block.header.sequence)
    assert sequences["log"] == [0, 1] and sequences["metrics"] == [0, 1]


def test_blocks_wait_while_the_server_is_away_and_go_when_it_is_back(server, make_flusher) -> None:
    f = make_flusher()
    server.down = True
    for round_number in range(3):
        for i in range(5):
            sdk.info(f"r{round_number} m{i}")
        f.run_once()  # never waits on the server
    assert server.requests == []
    while len(server.refused) < 3:  # retried
        time.sleep(0.01)
    stats = adds_up(f)
    assert stats["pending"] == 15 and stats["acknowledged"] == 0 and stats["retries"] >= 2
    server.down = False
    assert sent(f)
    stats = adds_up(f)
    assert stats["acknowledged"] == stats["recorded"] == 15 and stats["pending"] == 0
    check_order(server.requests)
    assert [r["message"] for r in server.rows("log_entry")] == [
        f"r{r} m{i}" for r in range(3) for i in range(5)
    ]


def test_waiting_blocks_share_the_budget_and_the_oldest_are_given_up(server, make_flusher) -> None:
    server.down = True
    f = make_flusher(max_memory=1)  # no room: each round keeps no block waiting
    for round_number in range(4):
        for i in range(3):
            sdk.info(f"r{round_number} m{i}")
        f.run_once()
    server.down = False
    assert sent(f)
    f.run_once()  # the loss metric recorded in the last round
    assert sent(f)
    stats = adds_up(f)
    assert stats["dropped"]["queue_full"] >= 12 - 3  # the block being sent may survive
    received = [r["message"] for r in server.rows("log_entry")]
    assert len(received) + stats["dropped"]["queue_full"] >= 12  # sent or counted
    assert stats["pending"] == 0 and stats["own_metrics"] >= 1


def test_events_dropped_by_full_buffers_are_counted_and_sent_as_a_metric(
    server, make_flusher
) -> None:
    f = make_flusher()
    recording.configure(flush_at=5, memory_budget=15 * recording.EVENT_BYTES_GUESS)
    for i in range(100):
        sdk.info(f"m{i}")
    f.run_once()
    f.run_once()  # the metric recorded in the first round goes in the second
    assert sent(f)
    stats = adds_up(f)
    assert stats["dropped"]["buffer_full"] == 80 and stats["acknowledged"] == 21
    assert len(server.rows("log_entry")) == 20
    (metric,) = [r for r in server.rows("measure") if r["name"] == DROPPED_METRIC]
    assert metric["value"] == 80.0 and metric["unit"] == "events"


def test_settings_in_a_response_are_applied(server, make_flusher) -> None:
    answer = json.dumps({"settings": {"log_level": "WARN", "flush_interval_s": 0.5}}).encode()
    server.respond = lambda request: (200, {}, answer) if request.path == "/v1/blocks" else None
    f = make_flusher()
    sdk.info("before")
    f.run_once()
    assert sent(f)
    assert f.interval == 0.5
    assert recording._max_level == recording.WARN
    sdk.info("filtered out")
    sdk.warn("kept")
    f.run_once()
    assert sent(f)
    assert [r["message"] for r in server.rows("log_entry")] == ["before", "kept"]


def test_settings_out_of_range_are_ignored(server, make_flusher) -> None:
    answer = json.dumps({"settings": {"log_level": "LOUD", "flush_interval_s": 0}}).encode()
    server.script = [(200, {}, answer)] * 3
    f = make_flusher()
    sdk.info("x")
    f.run_once()
    assert sent(f)
    assert f.interval == 1.0 and recording._max_level == recording.INFO


def test_flush_returns_true_once_sent(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    assert sdk.flush(timeout=10) is True  # nothing to send is sent
    sdk.info("one")
    assert sdk.flush(timeout=10) is True
    assert [r["message"] for r in server.rows("log_entry")] == ["one"]


def test_flush_is_false_while_the_server_is_away(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    server.down = True
    sdk.info("waiting")
    assert sdk.flush(timeout=2) is False, "flush() said True although nothing was sent"
    server.down = False
    assert sdk.flush(timeout=10) is True
    assert [r["message"] for r in server.rows("log_entry")] == ["waiting"]


def test_flush_without_init_is_false() -> None:
    assert sdk.flush(timeout=0.1) is False


def test_buffer_at_flush_at_wakes_the_flusher_before_its_interval(server) -> None:
    sdk.init(server.url, "key", flush_interval=60, flush_at=10)
    for i in range(11):
        sdk.info(f"m{i}")
    for _ in range(100):
        if len(server.rows("log_entry")) == 11:
            break
        threading.Event().wait(0.05)
    assert len(server.rows("log_entry")) == 11


def test_a_bad_event_does_not_lose_the_other_streams_events(server, make_flusher) -> None:
    """The record path does not check types; an event the encoder cannot take (a metric value
    that is not a number) must not make the round lose every other stream's events."""
    f = make_flusher()
    sdk.info("must arrive")
    sdk.metric("bad", "not a number")  # type: ignore[arg-type]
    sdk.metric("good", 1.0)
    f.run_once()
    assert sent(f)
    assert [r["message"] for r in server.rows("log_entry")] == ["must arrive"]
    assert [r["name"] for r in server.rows("measure")] == ["good"]
    assert adds_up(f)["dropped"]["bad_value"] == 1


def test_shutdown_sends_what_is_pending_and_stops_the_thread(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("last words")
    sdk.shutdown(timeout=10)
    assert sdk.process_id() is None
    assert [r["message"] for r in server.rows("log_entry")] == ["last words"]
    sdk_threads = ("blocklake-flusher", "blocklake-uploader")
    assert not [t for t in threading.enumerate() if t.name in sdk_threads]


def test_a_finished_threads_empty_buffer_never_retires_a_live_threads(server, make_flusher) -> None:
    """Buffers are lists: retiring one by equality took the first *empty* buffer, a live
    thread's, whose later spans then went nowhere, uncounted."""
    f = make_flusher()
    go_on = threading.Event()

    def live() -> None:
        with sdk.span("before"):
            pass
        go_on.wait(10)
        with sdk.span("after"):
            pass

    live_thread = threading.Thread(target=live)
    live_thread.start()  # its buffer comes first in the list
    while not recording.thread_buffers:
        time.sleep(0.001)
    short = threading.Thread(
        target=lambda: sdk.span("short").__enter__().__exit__(None, None, None)
    )
    short.start()
    short.join()
    f.run_once()  # drains both: now both are empty, one thread finished
    f.run_once()  # retires the finished one's
    go_on.set()
    live_thread.join()
    f.run_once()
    assert sent(f)
    names = sorted(r["name"] for r in server.rows("thread_span_begin"))
    assert names == ["after", "before", "short"]
    assert adds_up(f)["recorded"] == 6


def test_an_encoder_bug_loses_those_events_counted_not_the_round(
    server, make_flusher, monkeypatch
) -> None:
    f = make_flusher()
    sdk.info("kept")
    sdk.metric("m", 1.0)

    def broken(events: list, limit: int) -> None:
        raise RuntimeError("a bug in a writer")

    monkeypatch.setattr(recording.measures.stream, "blocks", broken)
    f.run_once()
    assert sent(f)
    stats = adds_up(f)
    assert stats["dropped"]["bad_value"] == 1 and stats["acknowledged"] == 1
    assert [r["message"] for r in server.rows("log_entry")] == ["kept"]


def test_stream_registrations_remembered_are_bounded(server, monkeypatch) -> None:
    """A thread per request makes a stream per thread: the uploader forgets the oldest."""
    monkeypatch.setattr("blocklake.sdk.uploader.MAX_STREAMS_REMEMBERED", 3)
    sdk.init(server.url, "key", flush_interval=60)
    for i in range(6):
        thread = threading.Thread(
            target=lambda i=i: sdk.span(f"t{i}").__enter__().__exit__(0, 0, 0)
        )
        thread.start()
        thread.join()
        sdk.info(f"after t{i}")
        assert sdk.flush(timeout=10)
    assert len(sdk._flusher.uploader._streams_registered) == 3
    assert sorted(r["name"] for r in server.rows("thread_span_begin")) == [
        f"t{i}" for i in range(6)
    ]
    assert len(server.rows("log_entry")) == 6  # the log stream, forgotten, registered again


def test_retry_after_is_obeyed(server, make_flusher) -> None:
    server.script = [(429, {"Retry-After": "1"}, b"")] + [(503, {}, b"")] * 4
    f = make_flusher()  # backoff 0.01 s doubling, capped at 0.05 s
    sdk.info("patient")
    started = time.monotonic()
    f.run_once()
    assert sent(f)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0, f"resent after {elapsed:.3f} s although the server said 1 s"
    assert adds_up(f)["retries"] == 5
    assert [r["message"] for r in server.rows("log_entry")] == ["patient"]
