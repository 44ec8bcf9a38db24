"""Nothing recorded is lost silently (issue 11): each numbered input of the issue, and faults
injected between the SDK and a server (lost answers, 503/429 with Retry-After, cut connections,
a server that lost its metadata), with every counter adding up:
``recorded == acknowledged + dropped + pending``."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid

from sdk_fake_server import CUT, HANG_UP, FakeServer, Request, Response

from blocklake import sdk
from blocklake.format.header import parse_header
from blocklake.sdk import recording
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

OK = (201, {"Content-Type": "application/json"}, b'{"status": "stored"}')


def adds_up() -> dict:
    stats = sdk.stats()
    dropped = sum(stats["dropped"].values())
    assert stats["recorded"] == stats["acknowledged"] + dropped + stats["pending"], stats
    return stats


def no_loss(stats: dict) -> None:
    assert stats["pending"] == 0 and not any(stats["dropped"].values()), stats
    assert stats["acknowledged"] == stats["recorded"]


def test_burst_of_four_threads_loses_nothing_at_default_settings(server: FakeServer) -> None:
    """Input 1: 4 threads record 200,000 events (half logs, a third metrics, the rest nested
    spans) as fast as they can, with default settings."""
    sdk.init(server.url, "key")
    per_thread = 50_000

    def record(worker: int) -> None:
        outer, inner = sdk.SpanScope("outer"), sdk.SpanScope("inner")
        i = 0
        while i < per_thread:
            for _ in range(3):
                sdk.info(f"w{worker} {i}", target="burst")
                i += 1
            for _ in range(2):
                sdk.metric("burst.value", float(i), "n")
                i += 1
            with outer, inner:  # 4 events
                i += 4
            # 9 events a loop: 3 logs, 2 metrics, 2 spans (rounded shares of the mix)

    threads = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sdk.flush(timeout=60)
    stats = adds_up()
    no_loss(stats)
    logs = server.rows("log_entry")
    assert len(logs) == len({r["message"] for r in logs}) == 4 * 3 * -(-per_thread // 9)
    assert stats["recorded"] == 4 * 9 * -(-per_thread // 9)


def test_outage_with_retry_after_loses_nothing(server: FakeServer) -> None:
    """Input 2 (shortened): the server answers 503 with ``Retry-After: 1`` for 2 s while the
    program logs 25,000 events/s."""
    back_at = time.monotonic() + 2.0

    def unavailable(request: Request) -> Response | None:
        if time.monotonic() < back_at:
            return 503, {"Retry-After": "1"}, b'{"error": {"code": "unavailable"}}'
        return None

    server.respond = unavailable
    sdk.init(server.url, "key")
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < 3.0:
        due = int((time.monotonic() - started) * 25_000)
        while sent < due:
            sdk.info(f"m{sent}")
            sent += 1
        time.sleep(0.005)
    assert sdk.flush(timeout=30)
    stats = adds_up()
    no_loss(stats)
    assert stats["retries"] >= 1
    messages = [r["message"] for r in server.rows("log_entry")]
    assert sorted(messages, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(sent)]


def test_a_large_buffer_is_cut_into_blocks_below_the_limit(server: FakeServer) -> None:
    """Input 3: 60,000 logs of ~90 characters were one ~6 MB block that the server refused
    unread; now blocks stay below the limit the server states (or a safe default)."""
    stated = 400_000
    limits = json.dumps({"status": "created", "limits": {"max_block_bytes": stated}}).encode()
    server.respond = lambda request: (200, {}, limits) if request.path == "/v1/processes" else None
    sdk.init(server.url, "key", flush_interval=60)
    for i in range(60_000):
        sdk.info(f"{i:08d} " + "x" * 81, target="big")
    assert sdk.flush(timeout=60)
    no_loss(adds_up())
    sizes = [len(block) for block in server.blocks()]
    assert len(sizes) > 1 and max(sizes) <= stated
    assert len(server.rows("log_entry")) == 60_000


def test_a_refused_block_costs_only_itself(server: FakeServer) -> None:
    """A 413 (or any 4xx) gives up that block, counted as refused; the next block goes on, the
    stated limit is learned, and ``flush()`` says something was lost."""
    refusal = json.dumps(
        {"error": {"code": "block_too_large"}, "limits": {"max_block_bytes": 100_000}}
    ).encode()
    refused = []

    def refuse_first_block(request: Request) -> Response | None:
        if request.path == "/v1/blocks" and not refused:
            refused.append(request)
            return 413, {"Content-Type": "application/json"}, refusal
        return None

    server.respond = refuse_first_block
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("refused")
    assert sdk.flush(timeout=10) is False
    sdk.info("accepted")
    assert sdk.flush(timeout=10) is True
    stats = adds_up()
    assert stats["dropped"]["refused"] == 1
    assert stats["acknowledged"] == 1 + stats["own_metrics"]  # the loss metric went too
    assert [r["message"] for r in server.rows("log_entry")] == ["accepted"]
    assert sdk._flusher.uploader.max_block_bytes == 100_000


def test_a_single_oversized_record_is_truncated_visibly(server: FakeServer) -> None:
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("é" * 3_000_000, target="huge")
    sdk.info("small")
    assert sdk.flush(timeout=30)
    stats = adds_up()
    assert stats["truncated"] == 1 and stats["acknowledged"] == 2
    huge, small = server.rows("log_entry")
    assert huge["message"].startswith("é" * 1000)
    kept, marker = huge["message"].split("...[truncated ")
    assert marker.endswith(" bytes]")  # the bytes cut: kept and cut make the original
    assert len(kept.encode()) + int(marker.removesuffix(" bytes]")) == 6_000_000
    assert small["message"] == "small"
    assert max(len(block) for block in server.blocks()) <= 1024 * 1024


def test_bad_values_cost_only_themselves(server: FakeServer) -> None:
    """Input 4: a wrongly typed value lost the whole buffer; now it is converted (counted) or,
    if it cannot be, its event alone is dropped (counted)."""
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("good 1")
    sdk.info(42)  # type: ignore[arg-type]
    sdk.info("no target", target=None)  # type: ignore[arg-type]
    sdk.info("listed", properties=[1, 2])  # type: ignore[arg-type]
    sdk.info("odd keys", properties={1: None})  # type: ignore[dict-item]
    sdk.log("loud", "x")  # type: ignore[arg-type]
    sdk.metric("m", "16.4")  # type: ignore[arg-type]
    sdk.metric("m", "not a number")  # type: ignore[arg-type]
    sdk.metric(7, 1.0, None)  # type: ignore[arg-type]
    sdk.metric("good", 2.0)
    assert sdk.flush(timeout=10) is False  # two events were dropped
    stats = adds_up()
    assert stats["dropped"]["bad_value"] == 2 and stats["coerced"] == 6
    assert stats["acknowledged"] == 8
    logs = [(r["message"], r["target"], r["properties"]) for r in server.rows("log_entry")]
    assert logs == [
        ("good 1", "", []),
        ("42", "", []),
        ("no target", "", []),
        ("listed", "", [("properties", "[1, 2]")]),
        ("odd keys", "", [("1", "")]),
    ]
    measures = [(r["name"], r["unit"], r["value"]) for r in server.rows("measure")]
    assert measures == [("m", "", 16.4), ("7", "", 1.0), ("good", "", 2.0)]


def test_text_sent_is_valid_utf8(server: FakeServer) -> None:
    """Input 5: ``exe`` from ``os.fsdecode`` of a Latin-1 name holds a lone surrogate."""
    odd = os.fsdecode(b"/opt/app/caf\xe9.py")
    sdk.init(server.url, "key", exe=odd, properties={odd: odd}, flush_interval=60)
    sdk.info(odd, target=odd, properties={odd: odd})
    with sdk.span(odd):
        pass
    assert sdk.flush(timeout=10)
    for request in server.requests:
        if request.path != "/v1/blocks":
            request.body.decode("utf-8", "strict")
            assert "\\udc" not in request.body.decode()
    (process,) = server.processes()
    assert process["exe"] == "/opt/app/caf?.py"
    assert process["properties"]["/opt/app/caf?.py"] == "/opt/app/caf?.py"
    (log,) = server.rows("log_entry")
    assert log["message"] == log["target"] == "/opt/app/caf?.py"


class ForgetfulServer:
    """Answers like ingest: 404 ``unknown_stream`` / ``unknown_process`` for ids it does not
    know; ``forget()`` loses every registration (a fresh data directory, a restored database)."""

    def __init__(self) -> None:
        self.processes: set[str] = set()
        self.streams: set[str] = set()

    def forget(self) -> None:
        self.processes.clear()
        self.streams.clear()

    def __call__(self, request: Request) -> Response | None:
        if request.path == "/v1/processes":
            self.processes.add(request.json()["process_id"])
        elif request.path == "/v1/streams":
            document = request.json()
            if document["process_id"] not in self.processes:
                return 404, {}, b'{"error": {"code": "unknown_process", "message": "?"}}'
            self.streams.add(document["stream_id"])
        elif str(parse_header(request.body).stream_id) not in self.streams:
            return 404, {}, b'{"error": {"code": "unknown_stream", "message": "?"}}'
        return None


def test_a_server_that_lost_its_metadata_gets_registrations_again(server: FakeServer) -> None:
    """Input 6: every block got 404 ``unknown_stream``, dropped, and ``flush()`` said True."""
    forgetful = server.respond = ForgetfulServer()
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("before")
    sdk.metric("m", 1.0)
    assert sdk.flush(timeout=10)
    forgetful.forget()
    sdk.info("after")
    sdk.metric("m", 2.0)
    assert sdk.flush(timeout=10)
    stats = adds_up()
    no_loss(stats)
    assert stats["registrations_repeated"] >= 1
    assert [r["message"] for r in server.rows("log_entry")] == ["before", "after"]
    assert server.paths().count("/v1/processes") == 2


def test_permanent_refusals_make_flush_false_and_are_counted(server: FakeServer) -> None:
    server.respond = lambda request: (
        (400, {}, b'{"error": {"code": "invalid_block"}}') if request.path == "/v1/blocks" else None
    )
    sdk.init(server.url, "key", flush_interval=60)
    for i in range(5):
        sdk.info(f"m{i}")
    sdk.metric("m", 1.0)
    assert sdk.flush(timeout=10) is False
    stats = adds_up()
    assert stats["dropped"]["refused"] == 6 and stats["pending"] == 0


def test_lost_answers_cut_connections_and_429_deliver_each_event_once(
    server: FakeServer,
) -> None:
    """Faults on every other request: the answer is lost after the server stored the block
    (the SDK resends the same block: the server keeps one), the connection is cut before it
    read anything, 429 with Retry-After 0, 503 without it."""
    faults = iter([HANG_UP, None, 429, None, 503, None, "cut", None] * 1000)

    def flaky(request: Request) -> Response | None:
        fault = next(faults)
        if fault is None:
            return None
        if fault == "cut":
            server.requests.remove(request)  # never reached the server
            return HANG_UP, {}, b""
        if fault == HANG_UP:
            return HANG_UP, {}, b""
        return fault, {"Retry-After": "0"} if fault == 429 else {}, b"{}"

    server.respond = flaky
    sdk.init(server.url, "key", flush_interval=60, flush_at=500)
    sdk._flusher.uploader.backoff = 0.01
    for i in range(5000):
        sdk.info(f"m{i}")
        if i % 3 == 0:
            sdk.metric("m", float(i))
        if i % 1000 == 999:
            assert sdk.flush(timeout=30)
    assert sdk.flush(timeout=30)
    stats = adds_up()
    no_loss(stats)
    assert stats["retries"] >= 4
    assert [r["message"] for r in server.rows("log_entry")] == [f"m{i}" for i in range(5000)]
    assert len(server.rows("measure")) == len(range(0, 5000, 3))
    block_ids = [parse_header(b).block_id for b in server.blocks()]
    assert len(block_ids) == len(set(block_ids)) and all(
        isinstance(b, uuid.UUID) for b in block_ids
    )


def test_retries_are_bounded_by_the_age_of_a_block(server: FakeServer) -> None:
    server.down = True
    sdk.init(server.url, "key", flush_interval=60, retry_for=0.3)
    sdk._flusher.uploader.backoff = 0.01
    sdk.info("never")
    assert sdk.flush(timeout=10) is False  # returns once the block is given up, not at timeout
    stats = adds_up()
    assert stats["dropped"]["retries_exhausted"] == 1 and stats["retries"] >= 2


def test_shutdown_says_what_it_abandoned(server: FakeServer) -> None:
    server.down = True
    sdk.init(server.url, "key", flush_interval=60)
    for i in range(10):
        sdk.info(f"m{i}")
    counters = sdk._counters
    assert sdk.shutdown(timeout=0.5) == 10
    assert counters.dropped["abandoned_at_exit"] == 10
    assert sdk.shutdown() == 0  # nothing left to stop


def test_memory_budget_is_in_bytes_and_losses_are_counted_without_init() -> None:
    recording.configure(memory_budget=100_000)
    for i in range(100_000):
        sdk.info(f"message {i}")
    stats = adds_up()
    # what was kept past flush_at fits the budget at the estimated bytes per event
    kept = len(recording.logs) - recording._flush_at
    assert kept * recording.logs.event_bytes <= 100_000 + recording.logs.event_bytes
    assert stats["recorded"] == len(recording.logs)  # drops are counted by the flusher's round
    assert recording.logs.dropped == 100_000 - len(recording.logs)


def test_a_block_the_server_keeps_failing_holds_up_no_other(server: FakeServer) -> None:
    """A 500 for one block only (a server bug on it): the others go first, and it is given
    up, counted, once it is older than ``retry_for``."""
    poisoned: list[bytes] = []

    def fail_the_first_block(request: Request) -> Response | None:
        if request.path == "/v1/blocks":
            if not poisoned:
                poisoned.append(request.body)
            if request.body == poisoned[0]:
                return 500, {}, b'{"error": {"code": "internal"}}'
        return None

    server.respond = fail_the_first_block
    sdk.init(server.url, "key", flush_interval=60, retry_for=1.0)
    sdk._flusher.uploader.backoff = 0.01
    sdk.info("poisoned")
    sdk._flusher.run_once()  # its own block
    for i in range(3):
        sdk.info(f"fine {i}")
        sdk._flusher.run_once()
    assert sdk.flush(timeout=10) is False  # the poisoned block was given up meanwhile
    stats = adds_up()
    assert stats["dropped"]["retries_exhausted"] == 1 and stats["pending"] == 0
    assert [r["message"] for r in server.rows("log_entry")] == [f"fine {i}" for i in range(3)]
    blocks = [r for r in server.requests if r.path == "/v1/blocks"]
    first_sent = next(i for i, r in enumerate(blocks) if 200 <= r.status < 300)
    last_tried = max(i for i, r in enumerate(blocks) if r.body == poisoned[0])
    assert first_sent < last_tried, "the other blocks waited behind the failing one"


def test_a_server_that_refuses_large_bodies_unread_is_survived(settings) -> None:
    """Input 3's server: the local server answers a body over its limit with 413 and closes
    the connection without reading it (the SDK may only see a broken pipe). Here its limit is
    256 KiB, below the SDK's 1 MiB until told: the blocks already made that large are given up,
    counted; the later ones are made smaller and arrive."""
    with LocalServer(settings, port=0) as server:
        sdk.init(server.url, next(iter(KEYS)), flush_interval=60)
        for _ in range(20_000):  # hex text compresses little: blocks of ~0.5 MB
            sdk.info(uuid.uuid4().hex * 2)
        assert sdk.flush(timeout=60) is False
        refused = adds_up()["dropped"]["refused"]
        assert refused >= 1
        assert sdk._flusher.uploader.max_block_bytes < 1024 * 1024
        for _ in range(20_000):
            sdk.info(uuid.uuid4().hex * 2)
        assert sdk.flush(timeout=60) is True
        stats = adds_up()
        assert stats["dropped"]["refused"] == refused and stats["pending"] == 0
        assert stats["acknowledged"] == 40_000 - refused + stats["own_metrics"]
        sdk.shutdown()


def test_uploads_cut_for_their_size_are_told_from_a_server_away(server: FakeServer) -> None:
    """A server that states a 200,000-byte limit and closes the connection on a larger body,
    unread, while it answers small requests: the blocks made before the SDK learnt the limit
    count as refused after a few cuts, and later blocks are made smaller."""
    stated = (200, {}, json.dumps({"limits": {"max_block_bytes": 200_000}}).encode())
    server.respond = lambda request: (
        (HANG_UP, {}, b"")
        if request.path == "/v1/blocks" and len(request.body) > 200_000
        else stated
        if request.path == "/v1/processes"
        else None
    )
    sdk.init(server.url, "key", flush_interval=60)
    sdk._flusher.uploader.backoff = 0.01
    for _ in range(20_000):
        sdk.info(uuid.uuid4().hex * 2)
    assert sdk.flush(timeout=30) is False
    for _ in range(5_000):
        sdk.info(uuid.uuid4().hex * 2)
    assert sdk.flush(timeout=30) is True
    stats = adds_up()
    assert stats["dropped"]["refused"] >= 1 and stats["pending"] == 0
    assert stats["acknowledged"] + stats["dropped"]["refused"] == 25_000 + stats["own_metrics"]
    taken = [r for r in server.requests if r.path == "/v1/blocks" and 200 <= r.status < 300]
    assert taken and all(len(r.body) <= 200_000 for r in taken)


def test_a_brief_connection_cut_loses_no_block_of_a_size_the_server_takes(
    server: FakeServer,
) -> None:
    """A proxy cuts every upload for ~1.5 s, before forwarding it or after (the server stored
    the block, its answer lost), while registrations pass: a normal 140 KB block is retried,
    not taken as refused for its size, and each event arrives once (a resend of a stored block
    is a duplicate the server drops)."""
    cut_until = time.monotonic() + 1.5
    turns = iter(range(1_000_000))

    def respond(request: Request) -> Response | None:
        if request.path == "/v1/blocks" and time.monotonic() < cut_until:
            return (CUT if next(turns) % 2 else HANG_UP), {}, b""
        return None

    server.respond = respond
    sdk.init(server.url, "key", flush_interval=60)
    sdk._flusher.uploader.backoff = 0.05
    for i in range(8_250):  # hex text compresses little: a block of ~140 KB
        sdk.info(f"{i} {uuid.uuid4().hex}{uuid.uuid4().hex}")
    assert sdk.flush(timeout=30) is True
    stats = adds_up()
    no_loss(stats)
    assert stats["retries"] >= 2
    assert sdk._flusher.uploader.max_block_bytes == 1024 * 1024  # no size was guessed
    sizes = [len(r.body) for r in server.requests if r.path == "/v1/blocks"]
    assert max(sizes) > 100_000
    messages = [row["message"] for row in server.rows("log_entry")]
    assert len(messages) == len(set(messages)) == 8_250


def test_a_retry_after_longer_than_retry_for_is_cut_to_the_time_left(
    server: FakeServer, caplog: object
) -> None:
    """``Retry-After: 120`` for a block with 1 s of ``retry_for`` left: the SDK waits about
    that second, not two minutes, gives the block up and says how long it really tried."""
    server.respond = lambda request: (
        (503, {"Retry-After": "120"}, b"{}") if request.path == "/v1/blocks" else None
    )
    sdk.init(server.url, "key", flush_interval=60, retry_for=1.0)
    sdk.info("one")
    started = time.monotonic()
    assert sdk.flush(timeout=20) is False
    assert time.monotonic() - started < 5
    stats = adds_up()
    assert stats["dropped"]["retries_exhausted"] == 1 and stats["pending"] == 0
    assert "gave up a block after retrying it for 1." in caplog.text  # type: ignore[attr-defined]


def test_highly_compressible_records_pass_the_servers_budget(settings) -> None:
    """A single log of 0.6-4.1 MiB of one letter compresses over 64 times: the real server
    refuses a payload over 1 MiB at more than 64 times its compressed size. Every block the
    SDK sends passes the server's checks: a record too large is truncated visibly, a buffer of
    repetitive records split, the same long text many times kept within the text budgets."""
    settings = dataclasses.replace(settings, max_block_bytes=4 * 1024 * 1024)  # the default
    with LocalServer(settings, port=0) as server:
        # room for 3,000 events referencing one 100 KB text (estimated as if each had its own)
        sdk.init(server.url, next(iter(KEYS)), flush_interval=60, max_memory=1 << 30)
        cases = [600_000, 1_100_000, 2 << 20, 4 << 20, (4 << 20) + 100_000]
        for size in cases:
            sdk.info("a" * size, target=f"rep {size}")
            assert sdk.flush(timeout=30) is True, (size, sdk.stats())
        sdk.info(os.urandom(1 << 20).hex(), target="rand")
        for _ in range(3_000):  # 3,000 x 100 KB of one text: 300 MB once expanded
            sdk.info("b" * 100_000, target="many")
        assert sdk.flush(timeout=60) is True, sdk.stats()
        sdk.info("c" * 10_000, properties={f"k{i}": "v" * 10_000 for i in range(200)})
        trace = {"trace": "x" * 10_000}  # 3,000 times: 30 MB of map text, over its 16 MiB
        for _ in range(3_000):
            sdk.info("with a trace", properties=trace)
        assert sdk.flush(timeout=60) is True, sdk.stats()
        for _ in range(3_000):  # not ASCII: the server's own check decides
            sdk.info("é" * 50_000, target="many")
        assert sdk.flush(timeout=60) is True, sdk.stats()
        stats = adds_up()
        no_loss(stats)
        assert stats["truncated"] >= 3
        sdk.shutdown()


def test_events_after_shutdown_are_counted_and_warned_once(
    server: FakeServer, caplog: object
) -> None:
    """Recorded 101, acknowledged 1: the 100 recorded after ``shutdown()`` (logs, metrics,
    thread and async spans) are dropped as ``after_shutdown``, with one warning; the counters
    add up. ``init`` again records and sends as before."""
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("before")
    sdk.shutdown()
    for i in range(70):
        sdk.info(f"after {i}")
    for i in range(10):
        sdk.metric("m", i)
    for _ in range(5):
        with sdk.span("s"):  # a begin and an end each
            pass
    for _ in range(5):
        with sdk.async_span("a"):
            pass
    stats = adds_up()
    assert stats["acknowledged"] == 1 and stats["pending"] == 0, stats
    # 70 + 10 + 10 thread span events + 10 async span events: an async end whose begin was
    # not kept is lost with it, and counted, as under a full buffer
    assert stats["dropped"]["after_shutdown"] == 100, stats
    text = caplog.text  # type: ignore[attr-defined]
    assert text.count("recorded after shutdown()") == 1
    sdk.init(server.url, "key", flush_interval=60)
    sdk.info("again")
    assert sdk.flush(timeout=10) is True
    stats = adds_up()
    assert stats["acknowledged"] == 1 and stats["dropped"]["after_shutdown"] == 0
    assert [r["message"] for r in server.rows("log_entry")] == ["before", "again"]
