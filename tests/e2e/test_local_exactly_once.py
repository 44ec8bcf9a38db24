"""SDK → local server → ingest → ETL → SQL: every recorded event comes back exactly once."""

from __future__ import annotations

import threading
import time

import pytest

from blocklake import sdk
from blocklake.cli import post_query
from blocklake.config import Settings
from blocklake.sdk import recording
from blocklake.server.http import LocalServer
from tests.helpers import KEYS

API_KEY = next(iter(KEYS))
THREADS, ITERATIONS = 3, 400


@pytest.fixture
def server(settings: Settings):
    with LocalServer(settings, port=0) as running:
        yield running
    sdk.shutdown()


def query(server: LocalServer, sql: str) -> list[list]:
    now = time.time_ns()
    result = post_query(
        server.url, API_KEY, {"sql": sql, "begin": now - 3600 * 10**9, "end": now + 60 * 10**9}
    )
    assert not result["truncated"]
    return result["rows"]


def _record(worker: int, outer: sdk.SpanScope) -> None:
    for i in range(ITERATIONS):
        with outer:
            sdk.info(
                f"w{worker} i{i}", target="e2e", properties={"worker": str(worker), "i": str(i)}
            )
            sdk.metric("e2e.value", worker * 10_000 + i + 0.25, "units")
            with sdk.span("inner"):
                if i % 100 == 50:  # cut this thread's stream while two spans are open
                    assert sdk.flush()
                if i % 3 == 0:
                    with sdk.span("leaf"):
                        pass


def test_every_event_comes_back_exactly_once(server: LocalServer) -> None:
    sdk.init(server.url, API_KEY, flush_at=97)
    outer = sdk.SpanScope("outer", "e2e")
    threads = [
        threading.Thread(target=_record, args=(w, outer), name=f"e2e-{w}") for w in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sdk.flush()
    server.lake.wait_converted()
    assert server.lake.failed_conversions == 0

    logs = query(
        server,
        "SELECT message, properties['worker'], properties['i'], level, target "
        "FROM log_entries WHERE target = 'e2e'",
    )
    expected = {
        (f"w{w} i{i}", str(w), str(i), "INFO", "e2e")
        for w in range(THREADS)
        for i in range(ITERATIONS)
    }
    assert len(logs) == len(expected) and {tuple(row) for row in logs} == expected

    values = query(server, "SELECT value, unit FROM measures WHERE name = 'e2e.value'")
    assert sorted(row[0] for row in values) == sorted(
        w * 10_000 + i + 0.25 for w in range(THREADS) for i in range(ITERATIONS)
    )

    spans = query(
        server,
        "SELECT name, depth, count(*), count(DISTINCT (stream_id, span_id)) "
        "FROM thread_spans GROUP BY ALL ORDER BY name",
    )
    leaves = THREADS * len(range(0, ITERATIONS, 3))
    assert spans == [
        ["inner", 1, THREADS * ITERATIONS, THREADS * ITERATIONS],
        ["leaf", 2, leaves, leaves],
        ["outer", 0, THREADS * ITERATIONS, THREADS * ITERATIONS],
    ]
    orphans = query(
        server,
        """
        SELECT count(*) FROM thread_spans child LEFT JOIN thread_spans parent
          ON child.stream_id = parent.stream_id AND child.parent_span_id = parent.span_id
        WHERE child.depth > 0 AND (parent.span_id IS NULL OR parent.depth != child.depth - 1
              OR child.begin < parent.begin OR child."end" > parent."end")""",
    )
    assert orphans == [[0]]
    streams = query(server, "SELECT count(*) FROM streams WHERE list_contains(tags, 'cpu')")
    assert streams == [[THREADS]]
    cpu_blocks = query(
        server,
        "SELECT count(*) FROM blocks JOIN streams USING (stream_id) "
        "WHERE list_contains(tags, 'cpu')",
    )
    assert cpu_blocks[0][0] >= THREADS * 4  # spans were open across block boundaries
    assert recording.logs.dropped == 0


def test_a_flushed_log_is_queryable_within_two_seconds(server: LocalServer) -> None:
    sdk.init(server.url, API_KEY)
    started = time.perf_counter()
    sdk.warn("visible soon", target="latency-check")
    assert sdk.flush()
    while not query(server, "SELECT 1 FROM log_entries WHERE target = 'latency-check'"):
        assert time.perf_counter() - started < 2.0, "log not visible in SQL within 2 s"
        time.sleep(0.02)
    assert time.perf_counter() - started < 2.0


def test_retried_uploads_do_not_duplicate(server: LocalServer) -> None:
    sdk.init(server.url, API_KEY)
    sdk.info("sent twice", target="retry")
    flusher = sdk._flusher
    sent: list[bytes] = []
    post_block = flusher.transport.post_block

    def post_twice(data: bytes) -> dict:
        sent.append(data)
        post_block(data)  # as if the first response was lost and the client retried
        return post_block(data)

    flusher.transport.post_block = post_twice
    assert sdk.flush()
    server.lake.wait_converted()
    assert sent
    assert query(server, "SELECT count(*) FROM log_entries WHERE target = 'retry'") == [[1]]
