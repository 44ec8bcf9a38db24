"""The Flusher against a fake ingestion server: registration order, uploads, pending blocks
while the server is away, the byte budget, settings from the back-channel, ``flush()``."""

from __future__ import annotations

import contextlib
import json
import threading

from sdk_fake_server import FakeServer, check_order

from blocklake import sdk
from blocklake.sdk import recording
from blocklake.sdk.flusher import DROPPED_METRIC, Flusher
from blocklake.sdk.transport import Transport


def process_doc(process_id: str = "11111111-1111-4111-8111-111111111111") -> dict:
    return {"process_id": process_id, "exe": "test", "properties": {}}


def flusher(server: FakeServer, **options) -> Flusher:
    """A flusher driven by hand (``run_once``), with a transport that gives up at once."""
    return Flusher(
        Transport(server.url, "k", timeout=5, attempts=1, backoff=0.01), process_doc(), **options
    )


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


def test_blocks_wait_while_the_server_is_away_and_go_when_it_is_back(server) -> None:
    f = flusher(server)
    server.down = True
    for round_number in range(3):
        for i in range(5):
            sdk.info(f"r{round_number} m{i}")
        f.run_once()
    assert server.requests == [] and len(server.refused) == 3
    assert len(f.pending) == 3 and f.dropped_total == 0
    server.down = False
    f.run_once()
    assert not f.pending
    check_order(server.requests)
    assert [r["message"] for r in server.rows("log_entry")] == [
        f"r{r} m{i}" for r in range(3) for i in range(5)
    ]


def test_pending_blocks_are_bounded_and_the_overflow_is_counted(server) -> None:
    f = flusher(server, max_pending_bytes=1)  # room for one block, the newest
    server.down = True
    for round_number in range(4):
        for i in range(3):
            sdk.info(f"r{round_number} m{i}")
        f.run_once()
        assert len(f.pending) == 1
    # three blocks of three log events given up, plus the blocks of the loss metric itself
    # that did not fit either (each of those is counted in a later metric in turn)
    assert f.dropped_total >= 9
    assert any(e[1] == DROPPED_METRIC for e in recording.measures) or any(
        b.stream.tags == ("metrics",) for b in f.pending
    )
    server.down = False
    f.run_once()
    f.run_once()  # the metric recorded while sending the last round
    assert not f.pending
    received = [r["message"] for r in server.rows("log_entry")]
    assert set(received) <= {f"r{r} m{i}" for r in range(4) for i in range(3)}
    assert len(received) + f.dropped_total >= 12  # every log event is sent or counted
    dropped = [r for r in server.rows("measure") if r["name"] == DROPPED_METRIC]
    assert dropped and all(r["unit"] == "events" and r["value"] >= 1 for r in dropped)


def test_events_dropped_by_full_buffers_are_counted_and_sent_as_a_metric(server) -> None:
    recording.configure(flush_at=5, capacity=20)
    f = flusher(server)
    for i in range(100):
        sdk.info(f"m{i}")
    f.run_once()
    assert f.dropped_total == 80
    f.run_once()  # the metric recorded in the first round goes in the second
    assert len(server.rows("log_entry")) == 20
    (metric,) = [r for r in server.rows("measure") if r["name"] == DROPPED_METRIC]
    assert metric["value"] == 80.0


def test_settings_in_a_response_are_applied(server) -> None:
    answer = json.dumps({"settings": {"log_level": "WARN", "flush_interval_s": 0.5}}).encode()
    server.respond = lambda request: (200, {}, answer) if request.path == "/v1/blocks" else None
    f = flusher(server)
    sdk.info("before")
    f.run_once()
    assert f.interval == 0.5
    assert recording._max_level == recording.WARN
    sdk.info("filtered out")
    sdk.warn("kept")
    f.run_once()
    assert [r["message"] for r in server.rows("log_entry")] == ["before", "kept"]


def test_settings_out_of_range_are_ignored(server) -> None:
    answer = json.dumps({"settings": {"log_level": "LOUD", "flush_interval_s": 0}}).encode()
    server.script = [(200, {}, answer)] * 3
    f = flusher(server)
    sdk.info("x")
    f.run_once()
    assert f.interval == 1.0 and recording._max_level == recording.INFO


def test_flush_returns_true_once_sent(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    assert sdk.flush(timeout=10) is True  # nothing to send is sent
    sdk.info("one")
    assert sdk.flush(timeout=10) is True
    assert [r["message"] for r in server.rows("log_entry")] == ["one"]


def test_flush_is_false_while_the_server_is_away(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    sdk._flusher.transport.attempts = 1
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


def test_a_bad_event_does_not_lose_the_other_streams_events(server) -> None:
    """The record path does not check types; an event the encoder cannot take (a metric value
    that is not a number) must not make the round lose every other stream's events."""
    f = flusher(server)
    sdk.info("must arrive")
    sdk.metric("bad", "not a number")  # type: ignore[arg-type]
    sdk.metric("good", 1.0)
    with contextlib.suppress(Exception):
        f.run_once()
    f.run_once()
    assert [r["message"] for r in server.rows("log_entry")] == ["must arrive"]


def test_shutdown_sends_what_is_pending_and_stops_the_thread(server) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("last words")
    sdk.shutdown(timeout=10)
    assert sdk.process_id() is None
    assert [r["message"] for r in server.rows("log_entry")] == ["last words"]
    assert not [t for t in threading.enumerate() if t.name == "blocklake-flusher"]
