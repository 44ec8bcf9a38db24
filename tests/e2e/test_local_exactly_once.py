"""SDK → local server → ingest → ETL → SQL: every recorded event comes back exactly once."""

from __future__ import annotations

import time

import pytest

from blocklake import sdk
from blocklake.cli import post_query
from blocklake.config import Settings
from blocklake.server.http import LocalServer
from tests.exactly_once import THREADS, check_every_event_once, record_workload
from tests.helpers import KEYS

API_KEY = next(iter(KEYS))


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


def test_every_event_comes_back_exactly_once(server: LocalServer) -> None:
    sdk.init(server.url, API_KEY, flush_at=97)  # small blocks: many of them, spans across them
    record_workload()
    assert sdk.flush()
    server.lake.wait_converted()
    assert server.lake.failed_conversions == 0
    check_every_event_once(lambda sql: query(server, sql))
    assert query(server, "SELECT count(*) FROM streams WHERE list_contains(tags, 'cpu')") == [
        [THREADS]
    ]
    # sdk.stats(), not recording.logs.dropped: the flusher resets that as it counts the drops
    assert not any(sdk.stats()["dropped"].values())


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
    post_block = flusher.uploader.transport.post_block

    def post_twice(data: bytes) -> dict:
        sent.append(data)
        post_block(data)  # as if the first response was lost and the client retried
        return post_block(data)

    flusher.uploader.transport.post_block = post_twice
    assert sdk.flush()
    server.lake.wait_converted()
    assert sent
    assert query(server, "SELECT count(*) FROM log_entries WHERE target = 'retry'") == [[1]]
